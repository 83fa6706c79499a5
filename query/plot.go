package query

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"memstore/client"
)

// Series is one line of a chart: a path's numeric values over time.
type Series struct {
	Name   string
	Times  []time.Time
	Values []float64
}

// ErrNothingToPlot means no path had a numeric value in the range.
var ErrNothingToPlot = errors.New("query: no numeric values to plot")

// LoadSeries reads what to plot of each path: its numeric values in the
// range, or with q.Every the mean of each bucket, computed in the store.
// Times are commit times, or event times with q.ByEvent.
func LoadSeries(ctx context.Context, cl *client.Client, paths []string, q AggQuery) ([]Series, error) {
	var out []Series
	for _, p := range paths {
		s := Series{Name: p}
		if q.Every > 0 {
			aq := q
			aq.Path = p
			rep, err := Agg(ctx, cl, aq)
			if err != nil {
				return nil, fmt.Errorf("query: plot %s: %w", p, err)
			}
			for _, b := range rep.Buckets {
				t, err := time.Parse(time.RFC3339Nano, b.Start)
				if err != nil || b.Mean == nil {
					continue
				}
				s.Times, s.Values = append(s.Times, t), append(s.Values, *b.Mean)
			}
		} else {
			rows, err := History(ctx, cl, p, q.Since, q.Until, 0)
			if err != nil {
				return nil, fmt.Errorf("query: plot %s: %w", p, err)
			}
			for i, v := range Numbers(rows) {
				ts := rows[i].TS
				if q.ByEvent && rows[i].EventTS != "" {
					ts = rows[i].EventTS
				}
				t, err := time.Parse(time.RFC3339Nano, ts)
				if err != nil || math.IsNaN(v) {
					continue
				}
				s.Times, s.Values = append(s.Times, t), append(s.Values, v)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// Plot draws the series as a line chart over time and writes it as PNG.
func Plot(w io.Writer, title string, series []Series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "time (UTC)"
	p.X.Tick.Marker = plot.TimeTicks{Format: "01-02\n15:04:05"}
	p.Y.Tick.Marker = valueTicks{}
	p.Add(plotter.NewGrid())
	var lines []any
	for _, s := range series {
		if len(s.Values) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(s.Values))
		for i := range s.Values {
			xys[i].X = float64(s.Times[i].UnixNano()) / 1e9
			xys[i].Y = s.Values[i]
		}
		lines = append(lines, s.Name, xys)
	}
	if len(lines) == 0 {
		return ErrNothingToPlot
	}
	if err := plotutil.AddLines(p, lines...); err != nil {
		return fmt.Errorf("query: plot: %w", err)
	}
	wt, err := p.WriterTo(24*vg.Centimeter, 12*vg.Centimeter, "png")
	if err != nil {
		return fmt.Errorf("query: plot: %w", err)
	}
	if _, err := wt.WriteTo(w); err != nil {
		return fmt.Errorf("query: write plot: %w", err)
	}
	return nil
}

// valueTicks labels the value axis with enough digits to tell ticks apart.
type valueTicks struct{}

func (valueTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'g', 6, 64)
		}
	}
	return ticks
}
