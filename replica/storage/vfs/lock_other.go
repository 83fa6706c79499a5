//go:build !unix

package vfs

import "os"

// Lock implements FS where there is no flock(2): it opens the file and
// locks nothing.
func (osFS) Lock(name string) (File, error) {
	f, err := openFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}
