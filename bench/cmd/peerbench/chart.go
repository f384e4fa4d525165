package main

import (
	"fmt"
	"image/color"
	"slices"

	"github.com/gojournal/journal/bench"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

const chartWidth = 24 * vg.Centimeter

// palette has a distinct colour for each log of the table and its variants
// (plotutil's palettes repeat after seven), in the order of bench.Peers
// then bench.Variants, so a log has the same colour in every chart.
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
	p.Y.Label.Text = "appends/s, x the ideal group commit's median"
	p.X.Label.Text = "bars: median over repeats; lines: min to max"
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
		spread := whiskers{lo: make([]float64, len(ws)), hi: make([]float64, len(ws))}
		for j, w := range ws {
			ideal := bench.Median(bench.Pick(res[key{bench.Ideal, w}], bench.Result.AppendsPerSec))
			aps := bench.Pick(res[key{peer.Name, w}], bench.Result.AppendsPerSec)
			if ideal > 0 && len(aps) > 0 {
				vals[j] = bench.Median(aps) / ideal
				spread.lo[j], spread.hi[j] = slices.Min(aps)/ideal, slices.Max(aps)/ideal
			}
			top = max(top, spread.hi[j])
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		bars.LineStyle.Width = 0
		bars.Color = colour(peer.Name)
		bars.Offset = width * vg.Length(float64(i)-float64(len(ps)-1)/2)
		spread.offset = bars.Offset
		p.Add(bars, spread)
		p.Legend.Add(peer.Name, bars)
	}
	one := plotter.NewFunction(func(float64) float64 { return 1 })
	one.Color = color.Gray{Y: 100}
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	// Head room above the bars for the legend.
	p.Y.Min, p.Y.Max = 0, top*1.5
	p.Legend.Top = true
	p.Legend.Left = true
	return p.Save(chartWidth, 12*vg.Centimeter, path)
}

// whiskers draws a vertical line from lo[j] to hi[j] through the middle of
// the bar of workload j (bars sit at x = j, moved by offset).
type whiskers struct {
	lo, hi []float64
	offset vg.Length
}

func (w whiskers) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, trY := plt.Transforms(&c)
	style := draw.LineStyle{Color: color.Black, Width: vg.Points(0.8)}
	for j := range w.lo {
		x := trX(float64(j)) + w.offset
		c.StrokeLine2(style, x, trY(w.lo[j]), x, trY(w.hi[j]))
	}
}

// colour is the log's colour in every chart.
func colour(name string) color.Color {
	i := slices.IndexFunc(slices.Concat(bench.Peers, bench.Variants), func(p bench.Peer) bool { return p.Name == name })
	return palette[max(i, 0)%len(palette)]
}
