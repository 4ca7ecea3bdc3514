package main

import (
	"fmt"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// series is one named line of points.
type series struct {
	name string
	xy   plotter.XYs
}

// linePlot draws series as lines with points and saves a PNG.
func linePlot(path, title, xlabel, ylabel string, logX bool, ss []series, logY ...bool) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if len(logY) > 0 && logY[0] {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Legend.Top = true
	var args []any
	for _, s := range ss {
		if len(s.xy) == 0 {
			continue
		}
		sort.Slice(s.xy, func(i, j int) bool { return s.xy[i].X < s.xy[j].X })
		args = append(args, s.name, s.xy)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// plotRPC: requests/s against connections, one line per target and mode.
func plotRPC(path string, runs []RPCRun) error {
	byName := map[string]*series{}
	var order []string
	for _, r := range runs {
		if r.Target == "raw-redis" {
			continue
		}
		name := r.Target
		if r.Mode != "" {
			name += " " + r.Mode
		}
		s := byName[name]
		if s == nil {
			s = &series{name: name}
			byName[name] = s
			order = append(order, name)
		}
		s.xy = append(s.xy, plotter.XY{X: float64(r.Connections), Y: r.RPS})
	}
	var ss []series
	for _, n := range order {
		ss = append(ss, *byName[n])
	}
	return linePlot(path, "closed loop: requests/s by connections", "connections", "requests/s", true, ss)
}

// plotLatencyByConns: p50 and p99 against connections, one pair of lines per target and mode.
func plotLatencyByConns(path string, runs []RPCRun) error {
	byName := map[string]*series{}
	var order []string
	add := func(name string, x, y float64) {
		s := byName[name]
		if s == nil {
			s = &series{name: name}
			byName[name] = s
			order = append(order, name)
		}
		s.xy = append(s.xy, plotter.XY{X: x, Y: y})
	}
	for _, r := range runs {
		if r.Target == "raw-redis" || r.Replies == 0 {
			continue
		}
		name := strings.TrimSpace(r.Target + " " + r.Mode)
		add(name+" p50", float64(r.Connections), float64(r.P50us)/1000)
		add(name+" p99", float64(r.Connections), float64(r.P99us)/1000)
	}
	var ss []series
	for _, n := range order {
		ss = append(ss, *byName[n])
	}
	return linePlot(path, "closed loop: latency by connections", "connections", "latency (ms, log scale)", true, ss, true)
}

// plotRate: latency percentiles against the offered rate.
func plotRate(path string, steps []loadResult) error {
	var p50, p99, p999 series
	p50.name, p99.name, p999.name = "p50", "p99", "p99.9"
	for _, s := range steps {
		p50.xy = append(p50.xy, plotter.XY{X: s.TargetRate, Y: float64(s.P50us) / 1000})
		p99.xy = append(p99.xy, plotter.XY{X: s.TargetRate, Y: float64(s.P99us) / 1000})
		p999.xy = append(p999.xy, plotter.XY{X: s.TargetRate, Y: float64(s.P999us) / 1000})
	}
	return linePlot(path, "open loop: latency by offered rate (corrected for coordinated omission)",
		"offered requests/s", "latency (ms, log scale)", false, []series{p50, p99, p999}, true)
}

// plotIdle: gateway memory per connection against connections held.
func plotIdle(path string, points []IdleResult) error {
	rss, heap := series{name: "RSS / connection"}, series{name: "heap in use / connection"}
	for _, r := range points {
		rss.xy = append(rss.xy, plotter.XY{X: float64(r.Connections), Y: r.RSSPerConn})
		heap.xy = append(heap.xy, plotter.XY{X: float64(r.Connections), Y: r.HeapPerConn})
	}
	return linePlot(path, "idle: gateway memory per connection", "connections", "bytes", false, []series{rss, heap})
}
