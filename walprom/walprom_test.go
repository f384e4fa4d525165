package walprom

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/gojournal/journal/wal"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

var quiet = slog.New(slog.DiscardHandler)

// openLog opens a log of the smallest segments in a fresh directory, so a
// few hundred KiB of appends rotate.
func openLog(t *testing.T) *wal.Log {
	t.Helper()
	l, err := wal.Open(t.TempDir(), &wal.Options{SegmentSize: wal.MinSegmentSize, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// load appends from writers goroutines at once (so group commits batch),
// then one batch, then commits a checkpoint: every Metrics field but the
// recovery ones moves. It fails t, so it runs on the test's goroutine.
func load(t *testing.T, l *wal.Log, writers, each int) {
	t.Helper()
	if err := tryLoad(l, writers, each); err != nil {
		t.Fatal(err)
	}
}

func tryLoad(l *wal.Log, writers, each int) error {
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := l.Append(fmt.Appendf(nil, "writer %d record %d %s", w, i, strings.Repeat("x", 900))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	last, err := l.AppendBatch([][]byte{[]byte("a"), []byte("b"), []byte("c")})
	if err != nil {
		return err
	}
	return l.Checkpoint(last, func(w io.Writer) error { _, err := w.Write([]byte("state")); return err })
}

// gather collects c alone and returns its metric families by name.
func gather(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return byName
}

// value is the value of the one sample of a counter or gauge family.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	if !ok || len(mf.GetMetric()) != 1 {
		t.Fatalf("%s: not reported once (%v)", name, mf)
	}
	switch m := mf.GetMetric()[0]; mf.GetType() {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s: type %v, want a counter or a gauge", name, mf.GetType())
	return 0
}

func TestCollectorReportsMetrics(t *testing.T) {
	l := openLog(t)
	load(t, l, 8, 40)
	// The log is idle once a spare for the next rotation, which Metrics
	// leaves out while it is prepared, is ready: a snapshot equal before
	// and after the scrape is the one the scrape took.
	var mfs map[string]*dto.MetricFamily
	var m wal.Metrics
	for {
		before := l.Metrics()
		mfs = gather(t, NewCollector(l, nil))
		if m = l.Metrics(); m == before {
			break
		}
	}
	if m.Rotations == 0 || m.Checkpoints == 0 || m.Writes >= m.Records {
		t.Fatalf("the load did not rotate, checkpoint and batch: %+v", m)
	}
	want := map[string]float64{
		"journal_appends_total":                     float64(m.Records),
		"journal_commits_total":                     float64(m.Writes),
		"journal_fdatasyncs_total":                  float64(m.Syncs),
		"journal_written_bytes_total":               float64(m.Bytes),
		"journal_rotations_total":                   float64(m.Rotations),
		"journal_segments":                          float64(m.Segments),
		"journal_segment_bytes":                     float64(m.SegmentBytes),
		"journal_disk_bytes":                        float64(m.DiskBytes),
		"journal_segments_recycled_total":           float64(m.SegmentsRecycled),
		"journal_retention_released_segments_total": float64(m.RetentionSegments),
		"journal_retention_released_bytes_total":    float64(m.RetentionBytes),
		"journal_checkpoints_total":                 float64(m.Checkpoints),
		"journal_checkpoint_last_seconds":           m.CheckpointLast.Seconds(),
		"journal_checkpoint_max_seconds":            m.CheckpointMax.Seconds(),
		"journal_open_seconds":                      m.OpenDuration.Seconds(),
		"journal_open_cut_bytes":                    float64(m.CutBytes),
		"journal_open_cut_records":                  float64(m.CutRecords),
		"journal_open_removed_files":                float64(m.FilesRemoved),
	}
	for name, w := range want {
		if got := value(t, mfs, name); got != w {
			t.Errorf("%s = %v, Metrics() says %v", name, got, w)
		}
	}
	if len(mfs) != len(want)+2 {
		t.Errorf("%d metric families, want %d counters and gauges and 2 histograms", len(mfs), len(want))
	}
	checkHistogram(t, mfs["journal_records_per_commit"], &m.RecordsPerWrite, 1, func(i int) float64 { return float64(uint64(1)<<i - 1) })
	checkHistogram(t, mfs["journal_fdatasync_duration_seconds"], &m.SyncMicros, 1e-6, func(i int) float64 { return math.Ldexp(1e-6, i) })
}

// checkHistogram compares a histogram family with the wal.Histogram it
// came from: bucket i's bound is bound(i) and its cumulative count the
// counts of buckets 0 to i.
func checkHistogram(t *testing.T, mf *dto.MetricFamily, h *wal.Histogram, unit float64, bound func(int) float64) {
	t.Helper()
	if mf.GetType() != dto.MetricType_HISTOGRAM || len(mf.GetMetric()) != 1 {
		t.Fatalf("%s: %v, want one histogram", mf.GetName(), mf)
	}
	ph := mf.GetMetric()[0].GetHistogram()
	if ph.GetSampleCount() != h.Count() || ph.GetSampleSum() != float64(h.Sum)*unit {
		t.Errorf("%s: count %d sum %v, Metrics() has %d and %v", mf.GetName(), ph.GetSampleCount(), ph.GetSampleSum(), h.Count(), float64(h.Sum)*unit)
	}
	bs := ph.GetBucket()
	if len(bs) != len(h.Counts)-1 {
		t.Fatalf("%s: %d buckets, want %d", mf.GetName(), len(bs), len(h.Counts)-1)
	}
	var cum uint64
	for i, b := range bs {
		cum += h.Counts[i]
		if b.GetUpperBound() != bound(i) || b.GetCumulativeCount() != cum {
			t.Errorf("%s: bucket %d is le=%v count %d, want le=%v count %d", mf.GetName(), i, b.GetUpperBound(), b.GetCumulativeCount(), bound(i), cum)
		}
	}
}

// Appends made one at a time commit one record each: every commit lands in
// the bucket le=1, and there is one fdatasync per commit.
func TestCollectorSequentialAppends(t *testing.T) {
	l := openLog(t)
	for i := range 5 {
		if _, err := l.Append([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	c := NewCollector(l, nil)
	want := `
# HELP journal_appends_total Records appended since the log was opened.
# TYPE journal_appends_total counter
journal_appends_total 5
# HELP journal_commits_total Group commits since the log was opened (one write each; one that only fdatasyncs writes nothing).
# TYPE journal_commits_total counter
journal_commits_total 5
# HELP journal_segments Segment files in the log, the active one included.
# TYPE journal_segments gauge
journal_segments 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "journal_appends_total", "journal_commits_total", "journal_segments"); err != nil {
		t.Fatal(err)
	}
	mfs := gather(t, c)
	ph := mfs["journal_records_per_commit"].GetMetric()[0].GetHistogram()
	for _, b := range ph.GetBucket() {
		want := uint64(5)
		if b.GetUpperBound() < 1 {
			want = 0
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("records_per_commit le=%v: %d commits, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if n := mfs["journal_fdatasync_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); n != 5 {
		t.Errorf("fdatasync_duration_seconds counted %d fdatasyncs, want 5", n)
	}
}

// Two logs in one registry, told apart by a label, under another
// namespace: both register, lint clean, and each reports its own figures.
func TestCollectorSeveralLogs(t *testing.T) {
	orders, users := openLog(t), openLog(t)
	load(t, orders, 4, 10)
	load(t, users, 2, 3)
	reg := prometheus.NewPedanticRegistry()
	for name, l := range map[string]*wal.Log{"orders": orders, "users": users} {
		c := NewCollector(l, &Options{Namespace: "app_wal", Labels: prometheus.Labels{"log": name}})
		reg.MustRegister(c)
		if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
			t.Fatalf("lint %s: %v %v", name, err, problems)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint of the registry: %v %v", err, problems)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	appends := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "app_wal_") {
			t.Errorf("%s: not in the namespace app_wal", mf.GetName())
		}
		if len(mf.GetMetric()) != 2 {
			t.Errorf("%s: %d series, want one per log", mf.GetName(), len(mf.GetMetric()))
		}
		if mf.GetName() == "app_wal_appends_total" {
			for _, m := range mf.GetMetric() {
				appends[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if appends["orders"] != 4*10+3 || appends["users"] != 2*3+3 {
		t.Fatalf("appends_total by log: %v, want orders 43 and users 9", appends)
	}
}

func TestCollectorLint(t *testing.T) {
	l := openLog(t)
	load(t, l, 2, 5)
	problems, err := testutil.CollectAndLint(NewCollector(l, nil))
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
}

// A closed log still reports what Close left, so a scrape racing a
// shutdown does not fail.
func TestCollectorAfterClose(t *testing.T) {
	l := openLog(t)
	load(t, l, 2, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := value(t, gather(t, NewCollector(l, nil)), "journal_appends_total"); got != 2*5+3 {
		t.Fatalf("appends_total after Close = %v, want 13", got)
	}
}

// Scraped over HTTP through promhttp, every metric the collector
// describes is in the exposition.
func TestScrapeOverHTTP(t *testing.T) {
	l := openLog(t)
	load(t, l, 4, 10)
	reg := prometheus.NewRegistry()
	c := NewCollector(l, &Options{Labels: prometheus.Labels{"log": "main"}})
	reg.MustRegister(c)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: status %d, %v", resp.StatusCode, err)
	}
	names := []string{"journal_records_per_commit_bucket", "journal_fdatasync_duration_seconds_bucket"}
	for _, s := range scalars {
		names = append(names, "journal_"+s.name)
	}
	for _, name := range names {
		if !bytes.Contains(body, []byte("\n"+name+"{")) {
			t.Errorf("scrape has no %s series:\n%s", name, body)
		}
	}
	if !bytes.Contains(body, []byte(`journal_appends_total{log="main"} 43`)) {
		t.Errorf("scrape has not journal_appends_total{log=\"main\"} 43:\n%s", body)
	}
}

// Scrapes while appends, rotations and a checkpoint go on (run with
// -race): each scrape is one consistent snapshot, so its fdatasync
// histogram counts exactly its fdatasyncs_total.
func TestScrapeDuringLoad(t *testing.T) {
	l := openLog(t)
	c := NewCollector(l, nil)
	done := make(chan error, 1)
	go func() { done <- tryLoad(l, 4, 50) }()
	for scraping := true; scraping; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			scraping = false
		default:
		}
		mfs := gather(t, c)
		syncs := value(t, mfs, "journal_fdatasyncs_total")
		hist := mfs["journal_fdatasync_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount()
		if float64(hist) != syncs {
			t.Fatalf("one scrape: fdatasyncs_total %v, fdatasync_duration_seconds_count %d", syncs, hist)
		}
	}
}

// TestEveryMetricsFieldExported: scalars promises one metric per field of
// wal.Metrics; RetentionSegments and RetentionBytes were once left out.
// Fields are counted with the embedded Stats flattened, the two histograms
// aside.
func TestEveryMetricsFieldExported(t *testing.T) {
	var count func(reflect.Type) int
	count = func(typ reflect.Type) int {
		n := 0
		for i := range typ.NumField() {
			f := typ.Field(i)
			switch {
			case f.Anonymous:
				n += count(f.Type)
			case f.Type == reflect.TypeFor[wal.Histogram]():
			default:
				n++
			}
		}
		return n
	}
	if n := count(reflect.TypeFor[wal.Metrics]()); n != len(scalars) {
		t.Errorf("wal.Metrics has %d counter and gauge fields, walprom exports %d", n, len(scalars))
	}
}
