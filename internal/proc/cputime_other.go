//go:build !linux

package proc

import "time"

// CPUTime is the CPU time the process has used so far: not known here
// (ok is false).
func (p *Proc) CPUTime() (d time.Duration, ok bool) { return 0, false }
