// Package sensor simulates raw sensor values and feeds them to a memstore
// cluster: temperature, humidity, pressure, a power counter and vibration,
// each with a realistic signal (bounded random walk, daily cycle, noise,
// occasional spikes and dropouts, monotonic counters), repeatable from a
// seed.
package sensor

import (
	"fmt"
	"math"
	"math/rand"
	"time"
)

// Kind is what a sensor measures.
type Kind int

// The kinds of sensor, in the order sensors are assigned them.
const (
	Temperature Kind = iota
	Humidity
	Pressure
	Power
	Vibration
	numKinds
)

var kindNames = [...]string{"temp", "hum", "pressure", "power", "vib"}

func (k Kind) String() string { return kindNames[k] }

// bounds of each kind's value.
var bounds = [...][2]float64{{-20, 50}, {0, 100}, {950, 1050}, {0, math.Inf(1)}, {0, 50}}

// Signal produces one sensor's values.
type Signal struct {
	kind  Kind
	rng   *rand.Rand
	walk  float64 // random-walk part
	total float64 // power counter
	last  time.Time
}

// NewSignal starts a signal of kind with its own seed.
func NewSignal(kind Kind, seed int64) *Signal {
	return &Signal{kind: kind, rng: rand.New(rand.NewSource(seed))}
}

// Next returns the value at t, or ok=false for a dropout (the sensor sends
// nothing this time, about 1 % of readings).
func (s *Signal) Next(t time.Time) (v float64, ok bool) {
	dt := 0.0
	if !s.last.IsZero() {
		dt = t.Sub(s.last).Seconds()
	}
	s.last = t
	if s.rng.Float64() < 0.01 {
		return 0, false
	}
	day := math.Sin(2 * math.Pi * (float64(t.Hour()*3600+t.Minute()*60+t.Second()) / 86400))
	noise := s.rng.NormFloat64()
	switch s.kind {
	case Temperature:
		s.walk = clamp(s.walk+0.05*noise, -5, 5)
		v = 18 + 6*day + s.walk + 0.1*s.rng.NormFloat64()
	case Humidity:
		s.walk = clamp(s.walk+0.2*noise, -15, 15)
		v = 55 - 15*day + s.walk
	case Pressure:
		s.walk = clamp(s.walk+0.05*noise, -40, 40)
		v = 1013 + s.walk
	case Power: // kWh counter, never decreases
		s.total += dt * (2 + 0.5*math.Abs(noise)) / 3600
		return round(s.total, 4), true
	case Vibration:
		v = math.Abs(0.2 * noise)
	}
	if s.rng.Float64() < 0.005 { // a spike
		v += (bounds[s.kind][1] - bounds[s.kind][0]) * 0.2 * (s.rng.Float64() - 0.3)
	}
	return round(clamp(v, bounds[s.kind][0], bounds[s.kind][1]), 2), true
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// Path names sensor i under prefix: prefix/line<N>/<kind><i>, ten sensors
// to a line.
func Path(prefix string, i int) string {
	return fmt.Sprintf("%s/line%d/%s%d", prefix, i/10+1, Kind(i%int(numKinds)), i)
}
