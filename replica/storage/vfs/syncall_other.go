//go:build !linux

package vfs

// SyncAllIsOneCall says SyncAll costs one system call: not here, where it
// walks the whole folder.
const SyncAllIsOneCall = false

// SyncAll implements FS where there is no syncfs(2): a fsync of every file
// and folder under name.
func (o osFS) SyncAll(name string) error { return o.syncEach(name) }
