package main

import (
	"fmt"
	"image/color"

	"github.com/gojournal/journal/bench"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// chart draws, per workload, each log's median appends/s as a multiple of
// the ideal group commit's: absolute figures span two orders of magnitude
// across workloads, ratios within one run are what compare.
func chart(path string, ps []bench.Peer, ws []bench.Workload, res map[key][]bench.Result, title string) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "appends/s, x the ideal group commit (median)"
	names := make([]string, len(ws))
	for i, w := range ws {
		names[i] = w.String()
	}
	p.NominalX(names...)
	width := vg.Points(60 / float64(len(ps)))
	top := 1.0
	for i, peer := range ps {
		vals := make(plotter.Values, len(ws))
		for j, w := range ws {
			ideal := bench.Median(bench.Pick(res[key{bench.Ideal, w}], bench.Result.AppendsPerSec))
			if ideal > 0 {
				vals[j] = bench.Median(bench.Pick(res[key{peer.Name, w}], bench.Result.AppendsPerSec)) / ideal
			}
			top = max(top, vals[j])
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		bars.LineStyle.Width = 0
		bars.Color = plotutil.Color(i)
		bars.Offset = width * vg.Length(float64(i)-float64(len(ps)-1)/2)
		p.Add(bars)
		p.Legend.Add(peer.Name, bars)
	}
	one := plotter.NewFunction(func(float64) float64 { return 1 })
	one.Color = color.Gray{Y: 100}
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	// Head room above the bars for the legend.
	p.Y.Min, p.Y.Max = 0, top*1.7
	p.Legend.Top = true
	p.Legend.Left = true
	return p.Save(24*vg.Centimeter, 12*vg.Centimeter, path)
}
