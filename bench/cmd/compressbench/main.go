// Command compressbench measures journal's record compression (none, s2,
// zstd) on JSON-like records: durable appends/s, the record bytes in and
// the bytes written to disk, at 1 and 64 writers, and prints a Markdown
// table with the median over repeats and the spread (min-max).
//
//	go run ./cmd/compressbench -d 3s -n 3 -dir /var/tmp
//
// The records are JSON events from bench.JSONRecords (seeded: -seed
// replays the same ones). Each repeat runs every (writers, codec) pair
// once, in turn, so a slow moment of the disk hits all codecs.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gojournal/journal/bench"
	"github.com/gojournal/journal/segment"
)

func main() {
	d := flag.Duration("d", 3*time.Second, "duration of each case")
	n := flag.Int("n", 3, "repeats")
	dir := flag.String("dir", os.TempDir(), "where the logs are written (fresh directories under it)")
	writers := flag.String("w", "1,64", "numbers of concurrent writers, comma-separated")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "seed of the generated records")
	pool := flag.Int("pool", 4096, "distinct records generated (writers take them in turn)")
	flag.Parse()
	log.SetFlags(0)

	ws, err := parseWriters(*writers)
	if err != nil {
		log.Fatal(err)
	}
	recs := bench.JSONRecords(*seed, *pool)
	res := map[key][]bench.Result{}
	for rep := range *n {
		for _, w := range ws {
			for _, c := range bench.Codecs {
				r, err := bench.RunRecords(c, w, bench.Pool(recs), *dir, *d)
				if err != nil {
					log.Fatalf("%s %d writers: %v", c.Name, w, err)
				}
				res[key{c.Name, w}] = append(res[key{c.Name, w}], r)
				fmt.Fprintf(os.Stderr, "repeat %d %-4s %2d writers %8.0f appends/s\n", rep+1, c.Name, w, r.AppendsPerSec())
			}
		}
	}
	host, _ := os.Hostname()
	fmt.Printf("%d repeats x %v per case; host %s; %d JSON records (seed %d) of %s; median (min-max) over repeats.\n\n",
		*n, *d, host, len(recs), *seed, sizes(recs))
	codecAlone(os.Stdout, recs)
	report(os.Stdout, ws, res)
}

type key struct {
	codec   string
	writers int
}

func parseWriters(s string) ([]int, error) {
	var ws []int
	for _, f := range strings.Split(s, ",") {
		w, err := strconv.Atoi(f)
		if err != nil || w < 1 {
			return nil, fmt.Errorf("bad number of writers %q", f)
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// sizes describes the record sizes: min, mean, max.
func sizes(recs [][]byte) string {
	lo, hi, sum := len(recs[0]), 0, 0
	for _, r := range recs {
		lo, hi, sum = min(lo, len(r)), max(hi, len(r)), sum+len(r)
	}
	return fmt.Sprintf("%d-%d B (mean %d B)", lo, hi, sum/len(recs))
}

// codecAlone prints what each codec does to the records one by one, as the
// log stores them (records under 64 B, and records that do not shrink,
// stay as they are), as payload and as frames (header and alignment
// included): the most compression can save before sector padding.
func codecAlone(out io.Writer, recs [][]byte) {
	var raw, rawFrames int64
	for _, r := range recs {
		raw += int64(len(r))
		rawFrames += segment.FrameSize(len(r))
	}
	fmt.Fprintf(out, "Each record compressed on its own, as the log stores it (no sector padding): payload in/stored, frames in/stored.\n\n")
	fmt.Fprintln(out, "| codec | payload ratio | frame ratio |")
	fmt.Fprintln(out, "|---|---|---|")
	for _, c := range []segment.Codec{segment.S2, segment.Zstd} {
		var stored, frames int64
		var buf []byte
		for _, r := range recs {
			n := len(r)
			if n >= 64 {
				buf = segment.Compress(c, buf[:0], r)
				n = min(n, len(buf))
			}
			stored += int64(n)
			frames += segment.FrameSize(n)
		}
		fmt.Fprintf(out, "| %v | %.2f | %.2f |\n", c, float64(raw)/float64(stored), float64(rawFrames)/float64(frames))
	}
	fmt.Fprintln(out)
}

// report prints one row per (writers, codec).
func report(out io.Writer, ws []int, res map[key][]bench.Result) {
	fmt.Fprintln(out, "On disk is what the log wrote (Metrics().Bytes): frames, and each group commit padded to a 512-byte sector.")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| writers | codec | appends/s | x none | MB/s in | MB/s on disk | on disk per record | in / on disk | p99 | CPU/append |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|")
	for _, w := range ws {
		none := bench.Median(bench.Pick(res[key{"none", w}], bench.Result.AppendsPerSec))
		for _, c := range bench.Codecs {
			rs := res[key{c.Name, w}]
			aps := bench.Pick(rs, bench.Result.AppendsPerSec)
			fmt.Fprintf(out, "| %d | %s | %s | %.2f | %.1f | %.1f | %.0f B | %.2f | %s | %.1fµs |\n",
				w, c.Name, bench.Spread(aps, "%.0f"), bench.Median(aps)/none,
				bench.Median(bench.Pick(rs, bench.Result.MBPerSec)),
				bench.Median(bench.Pick(rs, func(r bench.Result) float64 { return float64(r.Written) / 1e6 / r.Elapsed.Seconds() })),
				bench.Median(bench.Pick(rs, func(r bench.Result) float64 { return float64(r.Written) / float64(r.Appends) })),
				bench.Median(bench.Pick(rs, func(r bench.Result) float64 { return float64(r.Bytes) / float64(r.Written) })),
				time.Duration(bench.Median(bench.Pick(rs, func(r bench.Result) float64 { return float64(r.P99) }))).Round(time.Microsecond),
				bench.Median(bench.Pick(rs, func(r bench.Result) float64 { return float64(r.CPUPerAppend()) }))/float64(time.Microsecond))
		}
	}
}
