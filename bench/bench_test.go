package bench

import (
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
	for _, p := range Peers {
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
