package main

import (
	"fmt"
	"image/color"

	"github.com/gojournal/journal/bench"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

const chartWidth = 24 * vg.Centimeter

// palette has a distinct colour for each log of the table and its variants
// (plotutil's palettes repeat after seven).
var palette = []color.Color{
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // journal: red
	color.RGBA{R: 0xff, G: 0x98, B: 0x96, A: 0xff},
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
	color.RGBA{R: 0xbc, G: 0xbd, B: 0x22, A: 0xff},
	color.RGBA{R: 0x17, G: 0xbe, B: 0xcf, A: 0xff},
}

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
	// Each workload's bars fill about 70% of its slot of the plot's
	// width (about 21 of the 24 cm), however many workloads and logs.
	width := min(chartWidth*0.875*0.7/vg.Length(len(ws)*len(ps)), vg.Centimeter)
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
		bars.Color = palette[i%len(palette)]
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
	return p.Save(chartWidth, 12*vg.Centimeter, path)
}
