package sensor

import (
	"testing"
	"time"
)

// TestSignalsAreBoundedRepeatableAndCountersMonotonic.
func TestSignals(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for k := Kind(0); k < numKinds; k++ {
		a, b := NewSignal(k, 7), NewSignal(k, 7)
		prev, dropouts := -1.0, 0
		for i := 0; i < 20000; i++ {
			at := t0.Add(time.Duration(i) * 10 * time.Second)
			v, ok := a.Next(at)
			w, okb := b.Next(at)
			if v != w || ok != okb {
				t.Fatalf("%v: same seed, different values at %d: %v %v", k, i, v, w)
			}
			if !ok {
				dropouts++
				continue
			}
			if v < bounds[k][0] || v > bounds[k][1] {
				t.Fatalf("%v: %v out of bounds %v", k, v, bounds[k])
			}
			if k == Power && v < prev {
				t.Fatalf("power counter went back: %v after %v", v, prev)
			}
			prev = v
		}
		if dropouts == 0 || dropouts > 400 {
			t.Fatalf("%v: %d dropouts in 20,000 readings", k, dropouts)
		}
	}
	if p := Path("plant1", 13); p != "plant1/line2/power13" {
		t.Fatalf("path %s", p)
	}
}
