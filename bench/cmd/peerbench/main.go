// Command peerbench runs journal and its peers side by side on durable
// appends and prints a Markdown table: for each workload and log, the
// median over repeats and the spread (min-max) of appends/s, with MB/s,
// latency, CPU per append and fdatasyncs, and ratios against the ideal
// group commit and against pebble.
//
//	go run ./cmd/peerbench -d 3s -n 3 -dir /var/tmp
//
// Each repeat runs every (workload, log) pair once, in turn, so a noisy
// moment of the disk hits all logs rather than one.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gojournal/journal/bench"
)

func main() {
	d := flag.Duration("d", 3*time.Second, "duration of each case")
	n := flag.Int("n", 3, "repeats")
	dir := flag.String("dir", os.TempDir(), "where the logs are written (fresh directories under it)")
	peers := flag.String("peers", "", "comma-separated logs to run (default all peers; journal-seg1m, journal-s2, journal-zstd, journal-release, journal-recycle only when named)")
	loads := flag.String("w", "1x128,8x128,64x128,1x4096,8x4096,64x4096", "workloads: writers x record bytes, comma-separated")
	seqMax := flag.Int64("seqmax", 1<<30, "most bytes the sequential bandwidth run writes (0: skip it)")
	ceiling := flag.Int("ceiling", 256<<10, "bytes per fdatasync of the commit-ceiling run (0: skip it)")
	png := flag.String("png", "", "also draw a chart of appends/s relative to the ideal group commit to this PNG file")
	flag.Parse()
	log.SetFlags(0)

	ps, err := selectPeers(*peers)
	if err != nil {
		log.Fatal(err)
	}
	ws, err := parseWorkloads(*loads)
	if err != nil {
		log.Fatal(err)
	}
	res := map[key][]bench.Result{}
	var seq []float64
	var ceils []*ceilingRun
	if *ceiling > 0 && *seqMax > 0 {
		ceils = ceilings(*dir, *d, min(*seqMax, 512<<20), *ceiling)
	}
	for rep := range *n {
		if *seqMax > 0 {
			bw, err := bench.SeqBandwidth(*dir, *d, *seqMax)
			if err != nil {
				log.Fatalf("sequential bandwidth: %v", err)
			}
			seq = append(seq, bw)
		}
		for _, c := range ceils {
			bw, err := c.run()
			if err != nil {
				log.Fatalf("%s: %v", c.label, err)
			}
			c.got = append(c.got, bw)
		}
		for _, w := range ws {
			for _, p := range ps {
				r, err := bench.Run(p, w, *dir, *d)
				if err != nil {
					log.Fatalf("%s %v: %v", p.Name, w, err)
				}
				k := key{p.Name, w}
				res[k] = append(res[k], r)
				fmt.Fprintf(os.Stderr, "repeat %d %-8s %-10v %9.0f appends/s %9d appends\n", rep+1, p.Name, w, r.AppendsPerSec(), r.Appends)
			}
		}
	}
	report(os.Stdout, ps, ws, res, seq, ceils, *d, *n)
	if *png != "" && slices.ContainsFunc(ps, func(p bench.Peer) bool { return p.Name == bench.Ideal }) {
		title := fmt.Sprintf("Durable appends, %d repeats x %v per case", *n, *d)
		if err := chart(*png, ps, ws, res, title); err != nil {
			log.Fatal(err)
		}
	}
}

// ceilingRun is one of the commit-ceiling lines: what commits of one size
// stream with no log around them, measured once per repeat.
type ceilingRun struct {
	label string
	run   func() (float64, error)
	got   []float64 // bytes per second, one per repeat
}

// journalZeroAhead is wal's zeroAheadSize: how far ahead of its data
// journal writes zeros into new space.
const journalZeroAhead = 1 << 20

// ceilings are the commit ceilings for commits of chunk bytes: into
// blocks written beforehand (as a recycled file, or space a log has
// zeroed and synced), and into new space, writing zeros ahead as journal
// does or into unwritten extents as the other logs do, and the same bytes
// split into four concurrent commits.
func ceilings(dir string, d time.Duration, max int64, chunk int) []*ceilingRun {
	kib := chunk >> 10
	return []*ceilingRun{
		{label: fmt.Sprintf("Commit ceiling (%d KiB writes into written blocks, an fdatasync after each: the most commits of that size stream)", kib),
			run: func() (float64, error) { return bench.CommitCeiling(dir, d, max, chunk) }},
		{label: fmt.Sprintf("Fresh-space ceiling, zeros ahead (%d KiB writes into new preallocated space, zeros written 1 MiB ahead as journal does, an fdatasync after each)", kib),
			run: func() (float64, error) { return bench.FreshCeiling(dir, d, max, chunk, journalZeroAhead) }},
		{label: fmt.Sprintf("Fresh-space ceiling, unwritten (%d KiB writes into new preallocated space, an fdatasync after each)", kib),
			run: func() (float64, error) { return bench.FreshCeiling(dir, d, max, chunk, 0) }},
		{label: fmt.Sprintf("Split ceiling, unwritten (the same %d KiB in flight as 4 concurrent commits of %d KiB, each written and fdatasync'd by its own thread, into new preallocated space)", kib, kib/4),
			run: func() (float64, error) { return bench.SplitCeiling(dir, d, max, chunk, 4) }},
	}
}

type key struct {
	peer string
	w    bench.Workload
}

func selectPeers(names string) ([]bench.Peer, error) {
	if names == "" {
		return bench.Peers, nil
	}
	var ps []bench.Peer
	for _, name := range strings.Split(names, ",") {
		all := slices.Concat(bench.Peers, bench.Variants)
		i := slices.IndexFunc(all, func(p bench.Peer) bool { return p.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown log %q", name)
		}
		ps = append(ps, all[i])
	}
	return ps, nil
}

func parseWorkloads(s string) ([]bench.Workload, error) {
	var ws []bench.Workload
	for _, f := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(f, "x")
		writers, err1 := strconv.Atoi(a)
		size, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || writers < 1 || size < 0 {
			return nil, fmt.Errorf("bad workload %q (want WRITERSxBYTES)", f)
		}
		ws = append(ws, bench.Workload{Writers: writers, Size: size})
	}
	return ws, nil
}

// report prints the machine line and one table row per (workload, log).
func report(out io.Writer, ps []bench.Peer, ws []bench.Workload, res map[key][]bench.Result, seq []float64, ceils []*ceilingRun, d time.Duration, n int) {
	host, _ := os.Hostname()
	fmt.Fprintf(out, "%d repeats x %v per case; host %s; median (min-max) over repeats.\n\n", n, d, host)
	if len(seq) > 0 {
		fmt.Fprintf(out, "Sequential bandwidth (1 MiB writes, one fdatasync at the end): %s MB/s\n\n",
			bench.Spread(scale(seq, 1e-6), "%.0f"))
	}
	for _, c := range ceils {
		fmt.Fprintf(out, "%s: %s MB/s\n\n", c.label, bench.Spread(scale(c.got, 1e-6), "%.0f"))
	}
	disk := bench.Median(seq) / 1e6
	fmt.Fprintln(out, "| workload | log | appends/s | MB/s | x disk | p50 | p99 | CPU/append | fdatasyncs/s | records/fdatasync | x ideal | x pebble |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, w := range ws {
		ideal := bench.Median(bench.Pick(res[key{bench.Ideal, w}], bench.Result.AppendsPerSec))
		pebble := bench.Median(bench.Pick(res[key{bench.Pebble, w}], bench.Result.AppendsPerSec))
		for _, p := range ps {
			rs := res[key{p.Name, w}]
			aps := bench.Pick(rs, bench.Result.AppendsPerSec)
			mbs := bench.Pick(rs, bench.Result.MBPerSec)
			fmt.Fprintf(out, "| %v | %s | %s | %.1f | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				w, p.Name, bench.Spread(aps, "%.0f"), bench.Median(mbs), ratio(bench.Median(mbs), disk),
				durMedian(rs, func(r bench.Result) time.Duration { return r.P50 }),
				durMedian(rs, func(r bench.Result) time.Duration { return r.P99 }),
				cpuMedian(rs),
				syncCol(rs, bench.Result.SyncsPerSec, "%.0f"),
				syncCol(rs, bench.Result.RecordsPerSync, "%.2f"),
				ratio(bench.Median(aps), ideal), ratio(bench.Median(aps), pebble))
		}
	}
	if slices.ContainsFunc(ps, func(p bench.Peer) bool { _, ok := syncsKnown(res, p.Name); return !ok }) {
		fmt.Fprintln(out, "\n\"n/c\": the log has no in-process count of its fsyncs; see the strace verification run.")
	}
}

func syncsKnown(res map[key][]bench.Result, name string) (int, bool) {
	for k, rs := range res {
		if k.peer == name && len(rs) > 0 {
			return 0, rs[0].SyncsKnown
		}
	}
	return 0, true
}

func syncCol(rs []bench.Result, f func(bench.Result) float64, format string) string {
	if len(rs) == 0 || !rs[0].SyncsKnown {
		return "n/c"
	}
	return fmt.Sprintf(format, bench.Median(bench.Pick(rs, f)))
}

func scale(v []float64, k float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x * k
	}
	return out
}

func durMedian(rs []bench.Result, f func(bench.Result) time.Duration) string {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = float64(f(r))
	}
	m := time.Duration(bench.Median(v))
	if m >= time.Millisecond {
		return m.Round(10 * time.Microsecond).String()
	}
	return m.Round(time.Microsecond).String()
}

// cpuMedian shows CPU per append to a tenth of a microsecond: at 64
// writers it is a few microseconds, and whole ones would hide the gaps.
func cpuMedian(rs []bench.Result) string {
	v := bench.Pick(rs, func(r bench.Result) float64 { return float64(r.CPUPerAppend()) })
	return fmt.Sprintf("%.1fµs", bench.Median(v)/float64(time.Microsecond))
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	if a/b < 0.01 {
		return "<0.01" // small records: far from any bandwidth limit
	}
	return fmt.Sprintf("%.2f", a/b)
}
