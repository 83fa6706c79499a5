package replica

import (
	"strings"
	"testing"

	"memstore/replica/storage/vfs"
)

// TestDataDirLock: one process per data folder, and a folder serves only
// the node it was first used by.
func TestDataDirLock(t *testing.T) {
	fsys := vfs.NewMem()
	first, err := lockDataDir(fsys, "/d/node2", 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(fsys, "/d/node2", 2); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second process on the folder: %v, want in use", err)
	}
	first.Close()
	if _, err := lockDataDir(fsys, "/d/node2", 9); err == nil || !strings.Contains(err.Error(), "of node 2, not of node 9") {
		t.Fatalf("node 9 on node 2's folder: %v", err)
	}
	again, err := lockDataDir(fsys, "/d/node2", 2)
	if err != nil {
		t.Fatalf("node 2 back on its folder: %v", err)
	}
	again.Close()
}
