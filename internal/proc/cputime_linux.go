package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: 1/100 s on
// every Linux architecture (USER_HZ).
const userHZ = 100

// CPUTime is the CPU time (user and system) the process has used so far,
// in steps of 10 ms; ok is false once the process has exited.
func (p *Proc) CPUTime() (d time.Duration, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid … utime stime: comm may hold spaces, so count
	// from its closing parenthesis; utime and stime are the 12th and 13th
	// fields after it.
	f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * time.Second / userHZ, true
}
