package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"
)

// syncsEveryRecord are the logs that must issue at least one fdatasync per
// append: they do not batch concurrent callers.
var syncsEveryRecord = map[string]bool{"naive": true, "etcd": true}

// TestPeersAppendAndSync runs every log briefly with concurrent writers
// and checks that appends succeed and, where the log counts its
// fdatasyncs, that they were issued: at least one per append for the logs
// that do not batch.
func TestPeersAppendAndSync(t *testing.T) {
	for _, p := range slices.Concat(Peers, Variants) {
		t.Run(p.Name, func(t *testing.T) {
			r, err := Run(p, Workload{Writers: 4, Size: 128}, t.TempDir(), 200*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if r.Appends == 0 {
				t.Fatal("no append completed")
			}
			if !r.SyncsKnown {
				return // counted by the strace run (verify-syncs.sh)
			}
			if r.Syncs == 0 {
				t.Fatalf("%d appends returned without an fdatasync", r.Appends)
			}
			if syncsEveryRecord[p.Name] && r.Syncs < uint64(r.Appends) {
				t.Fatalf("%d appends but only %d fdatasyncs", r.Appends, r.Syncs)
			}
			t.Logf("%d appends, %d fdatasyncs", r.Appends, r.Syncs)
		})
	}
}

func TestIdealBatches(t *testing.T) {
	r, err := Run(Peer{Ideal, openIdeal}, Workload{Writers: 16, Size: 128}, t.TempDir(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Syncs >= uint64(r.Appends) {
		t.Fatalf("16 writers: %d appends in %d fdatasyncs, no batching", r.Appends, r.Syncs)
	}
}

// The JSON records replay from their seed, parse, and vary in size.
func TestJSONRecordsSeeded(t *testing.T) {
	const seed = 42
	t.Logf("seed %d", seed)
	a, b := JSONRecords(seed, 500), JSONRecords(seed, 500)
	sizes := map[int]bool{}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("record %d differs between two draws of seed %d", i, seed)
		}
		if !json.Valid(a[i]) {
			t.Fatalf("record %d is not JSON: %s", i, a[i])
		}
		sizes[len(a[i])] = true
	}
	if len(sizes) < 100 {
		t.Fatalf("500 records have only %d distinct sizes", len(sizes))
	}
	if c := JSONRecords(seed+1, 1); bytes.Equal(c[0], a[0]) {
		t.Fatal("seeds 42 and 43 drew the same first record")
	}
}

// Each codec appends the pool's records and reports the bytes it wrote.
func TestCodecsCountBytes(t *testing.T) {
	pool := JSONRecords(7, 64)
	lo, hi := len(pool[0]), 0
	for _, r := range pool {
		lo, hi = min(lo, len(r)), max(hi, len(r))
	}
	for _, c := range Codecs {
		t.Run(c.Name, func(t *testing.T) {
			r, err := RunRecords(c, 4, Pool(pool), t.TempDir(), 200*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if r.Appends == 0 || r.Written == 0 {
				t.Fatalf("%d appends, %d bytes written", r.Appends, r.Written)
			}
			if per := r.Bytes / int64(r.Appends); per < int64(lo) || per > int64(hi) {
				t.Fatalf("%d record bytes per append, outside the pool's %d-%d", per, lo, hi)
			}
		})
	}
}

// TestCeilings runs each disk baseline briefly: each must measure a rate
// and leave nothing behind in its directory. FreshCeiling must stop at
// its byte bound, whatever the zeros ahead, and so must SplitCeiling's
// threads together.
func TestCeilings(t *testing.T) {
	runs := map[string]func(dir string) (float64, error){
		"sequential":         func(dir string) (float64, error) { return SeqBandwidth(dir, 100*time.Millisecond, 8<<20) },
		"written blocks":     func(dir string) (float64, error) { return CommitCeiling(dir, 100*time.Millisecond, 8<<20, 256<<10) },
		"fresh, zeros ahead": func(dir string) (float64, error) { return FreshCeiling(dir, time.Minute, 8<<20, 256<<10, 1<<20) },
		"fresh, unwritten":   func(dir string) (float64, error) { return FreshCeiling(dir, time.Minute, 8<<20, 256<<10, 0) },
		"split, unwritten":   func(dir string) (float64, error) { return SplitCeiling(dir, time.Minute, 8<<20, 256<<10, 4) },
	}
	for name, run := range runs {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			bw, err := run(dir)
			if err != nil {
				t.Fatal(err)
			}
			if bw <= 0 {
				t.Fatalf("rate %v", bw)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Fatalf("left behind: %v", left)
			}
			t.Logf("%.0f MB/s", bw/1e6)
		})
	}
}
