package proc

import (
	"path/filepath"
	"testing"
	"time"
)

// TestCPUTime: a process that spins has used CPU time, which only grows;
// once it has exited and been reaped, CPUTime says it is not known.
func TestCPUTime(t *testing.T) {
	p, err := Start("/bin/sh", filepath.Join(t.TempDir(), "log"), "-c", "while :; do :; done")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	time.Sleep(300 * time.Millisecond)
	first, ok := p.CPUTime()
	if !ok || first <= 0 {
		t.Fatalf("a spinning process used %v (%v)", first, ok)
	}
	time.Sleep(100 * time.Millisecond)
	if then, ok := p.CPUTime(); !ok || then < first {
		t.Fatalf("CPU time went from %v to %v (%v)", first, then, ok)
	}
	p.Kill()
	if d, ok := p.CPUTime(); ok {
		t.Fatalf("an exited process: %v", d)
	}
}
