package vfs

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SyncAllIsOneCall says SyncAll costs one system call, whatever the number
// of files: a caller with many files to make durable does better with it.
// It is false before Linux 5.8, whose syncfs(2) does not report write-back
// errors: SyncAll fsyncs every file there, so a failed write is never
// taken as durable.
var SyncAllIsOneCall = syncfsReportsErrors(kernelRelease())

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// syncfsReportsErrors reports whether a kernel release ("6.1.0-13-amd64")
// is Linux 5.8 or later; an unreadable one is taken as older.
func syncfsReportsErrors(release string) bool {
	major, rest, _ := strings.Cut(release, ".")
	minor, _, _ := strings.Cut(rest, ".")
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i] // 5.8-rc1
	}
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	return err1 == nil && err2 == nil && (ma > 5 || ma == 5 && mi >= 8)
}

// SyncAll implements FS with syncfs(2), or, before Linux 5.8, a fsync of
// every file and folder under name.
func (o osFS) SyncAll(name string) error {
	if !SyncAllIsOneCall {
		return o.syncEach(name)
	}
	d, err := os.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: name, Err: err}
	}
	return nil
}
