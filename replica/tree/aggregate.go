package tree

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"
)

// MaxBuckets bounds the buckets of one aggregate.
const MaxBuckets = 10_000

// AggQuery selects the versions of one path to aggregate.
type AggQuery struct {
	// Since and Until bound the time, both included; zero is an open end.
	Since, Until time.Time
	// Every splits the range into buckets of this width, aligned on
	// multiples of it since the Unix epoch; 0 is one summary only.
	Every time.Duration
	// ByEvent selects and buckets by event time (the commit time of a
	// version that has none) instead of commit time.
	ByEvent bool
}

// Stats summarises a set of versions. Min, Max and Sum are over the values
// that are JSON numbers, Numeric of the Count; First and Last are the
// earliest and latest version by the chosen time (seq breaks ties).
type Stats struct {
	Count, Numeric int
	Min, Max, Sum  float64
	First, Last    Version
	first, last    mark
}

// mark is a candidate for first or last: its time, seq and line (a buffer
// reused as candidates change, decoded once at the end).
type mark struct {
	at   int64
	seq  uint64
	line []byte
}

func (s *Stats) add(seq uint64, at int64, line []byte, num float64, isNum bool) {
	if s.Count == 0 || at < s.first.at || at == s.first.at && seq < s.first.seq {
		s.first = mark{at, seq, append(s.first.line[:0], line...)}
	}
	if s.Count == 0 || at > s.last.at || at == s.last.at && seq > s.last.seq {
		s.last = mark{at, seq, append(s.last.line[:0], line...)}
	}
	s.Count++
	if !isNum {
		return
	}
	if s.Numeric == 0 {
		s.Min, s.Max = num, num
	}
	s.Min, s.Max, s.Sum = math.Min(s.Min, num), math.Max(s.Max, num), s.Sum+num
	s.Numeric++
}

// finish decodes First and Last.
func (s *Stats) finish() error {
	if s.Count == 0 {
		return nil
	}
	var err error
	if s.First, err = decodeVersion(s.first.line); err == nil {
		s.Last, err = decodeVersion(s.last.line)
	}
	s.first, s.last = mark{}, mark{}
	return err
}

// Bucket is the summary of the versions in [Start, Start+Every).
type Bucket struct {
	Start time.Time
	Stats
}

// Agg is the answer of Aggregate: the summary of the whole range and, with
// Every, of each bucket that holds a version, in time order.
type Agg struct {
	Stats
	Buckets []Bucket
}

// number reads a JSON value that is a number.
func number(raw []byte) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}

// Aggregate summarises a path's versions in a time range, in the store:
// count, min, max, sum (so mean), first and last, overall and per bucket.
// By commit time the index bounds the range and only its bytes are read; by
// event time every version is read, since event times may come out of
// order. The file is read without the lock, so writers are not held up.
func (t *Tree) Aggregate(p string, q AggQuery) (Agg, error) {
	if err := ValidatePath(p); err != nil {
		return Agg{}, err
	}
	if q.Every < 0 {
		return Agg{}, fmt.Errorf("tree: negative bucket width %v", q.Every)
	}
	t.mu.RLock()
	ps := t.paths[p]
	if ps == nil {
		t.mu.RUnlock()
		return Agg{}, fmt.Errorf("%w: %s", ErrNotFound, p)
	}
	refs := ps.refs // elements are never changed in place: safe after unlock
	i, end := 0, len(refs)
	if !q.ByEvent {
		i, end = timeRange(refs, q.Since, q.Until)
	}
	firstRecent := len(refs) - len(ps.recent)
	fileEnd := min(end, firstRecent)
	recent := slices.Clone(ps.recent[max(i, firstRecent)-firstRecent : max(end, firstRecent)-firstRecent])
	l := t.lines(p, ps)
	defer l.Close()
	if i < fileEnd && refs[i].off() < l.disk {
		if err := l.open(); err != nil {
			t.mu.RUnlock()
			return Agg{}, fmt.Errorf("tree: aggregate %s: %w", p, err)
		}
	}
	t.mu.RUnlock()

	a := aggregator{q: q, buckets: map[int64]*Stats{}}
	if i < fileEnd {
		from, to := refs[i].off(), refs[fileEnd-1].off()+refs[fileEnd-1].n()+1
		sc := bufio.NewScanner(io.NewSectionReader(l, from, to-from))
		sc.Buffer(make([]byte, 256<<10), 1<<lenBits+1)
		for k := i; k < fileEnd && sc.Scan(); k++ {
			if err := a.add(sc.Bytes(), refs[k]); err != nil {
				return Agg{}, fmt.Errorf("tree: aggregate %s: %w", p, err)
			}
		}
		if err := sc.Err(); err != nil {
			return Agg{}, fmt.Errorf("tree: aggregate %s: %w", p, err)
		}
	}
	for k, line := range recent {
		if err := a.add(line, refs[max(i, firstRecent)+k]); err != nil {
			return Agg{}, fmt.Errorf("tree: aggregate %s: %w", p, err)
		}
	}
	return a.result()
}

type aggregator struct {
	q       AggQuery
	all     Stats
	buckets map[int64]*Stats
	prefix  []byte // scratch: the start a line of the expected seq has
}

var (
	valueKey   = []byte(`,"value":`)
	eventTSKey = []byte(`,"event_ts":"`)
)

// fields finds a line's value and event time without decoding the whole
// line. The line is {"seq":…,"ts":"…","event_ts":"…","user":"…","value":…}
// as Apply encodes it: the fields before value are numbers or strings, in
// which a quote is always escaped, so the first ,"value": is the field.
func fields(line []byte) (value, eventTS []byte, ok bool) {
	i := bytes.Index(line, valueKey)
	if i < 0 || line[len(line)-1] != '}' {
		return nil, nil, false
	}
	head := line[:i]
	if j := bytes.Index(head, eventTSKey); j >= 0 {
		rest := head[j+len(eventTSKey):]
		k := bytes.IndexByte(rest, '"')
		if k < 0 {
			return nil, nil, false
		}
		eventTS = rest[:k]
	}
	return line[i+len(valueKey) : len(line)-1], eventTS, true
}

func (a *aggregator) add(line []byte, r ref) error {
	a.prefix = strconv.AppendUint(append(a.prefix[:0], `{"seq":`...), r.seq, 10)
	value, eventTS, ok := fields(line)
	if !ok || !bytes.HasPrefix(line, append(a.prefix, ',')) {
		return fmt.Errorf("%w: line %.60q is not the version of seq %d the index names", ErrCorrupt, line, r.seq)
	}
	at := r.ts
	if a.q.ByEvent {
		if len(eventTS) > 0 {
			et, err := time.Parse(time.RFC3339Nano, string(eventTS))
			if err != nil {
				return fmt.Errorf("%w: event ts %q of seq %d", ErrCorrupt, eventTS, r.seq)
			}
			at = et.UnixNano()
		}
		if !a.q.Since.IsZero() && at < a.q.Since.UnixNano() || !a.q.Until.IsZero() && at > a.q.Until.UnixNano() {
			return nil
		}
	}
	num, isNum := number(value)
	a.all.add(r.seq, at, line, num, isNum)
	if a.q.Every == 0 {
		return nil
	}
	w := a.q.Every.Nanoseconds()
	key := at / w
	if at%w < 0 {
		key-- // floor, for times before 1970
	}
	b := a.buckets[key]
	if b == nil {
		if len(a.buckets) == MaxBuckets {
			return fmt.Errorf("%w: more than %d buckets of %v", ErrTooLarge, MaxBuckets, a.q.Every)
		}
		b = &Stats{}
		a.buckets[key] = b
	}
	b.add(r.seq, at, line, num, isNum)
	return nil
}

func (a *aggregator) result() (Agg, error) {
	if err := a.all.finish(); err != nil {
		return Agg{}, err
	}
	out := Agg{Stats: a.all}
	keys := make([]int64, 0, len(a.buckets))
	for k := range a.buckets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b := a.buckets[k]
		if err := b.finish(); err != nil {
			return Agg{}, err
		}
		out.Buckets = append(out.Buckets, Bucket{Start: time.Unix(0, k*a.q.Every.Nanoseconds()).UTC(), Stats: *b})
	}
	return out, nil
}

// timeRange returns the index range of the versions whose commit time is in
// [since, until] (zero times are open ends).
func timeRange(refs []ref, since, until time.Time) (int, int) {
	i, end := 0, len(refs)
	if !since.IsZero() {
		s := since.UnixNano()
		i = sort.Search(len(refs), func(i int) bool { return refs[i].ts >= s })
	}
	if !until.IsZero() {
		u := until.UnixNano()
		end = sort.Search(len(refs), func(i int) bool { return refs[i].ts > u })
	}
	return i, max(i, end)
}
