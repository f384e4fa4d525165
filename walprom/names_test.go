package walprom

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestNamesAndTypesAreStable: dashboards and alerts are written against
// the metric names and types, so they are pinned here, and the README's
// list of them (the Metrics section) must name exactly these, each with
// its type.
func TestNamesAndTypesAreStable(t *testing.T) {
	want := map[string]dto.MetricType{
		"appends_total": dto.MetricType_COUNTER, "commits_total": dto.MetricType_COUNTER,
		"fdatasyncs_total": dto.MetricType_COUNTER, "written_bytes_total": dto.MetricType_COUNTER,
		"rotations_total": dto.MetricType_COUNTER, "checkpoints_total": dto.MetricType_COUNTER,
		"segments_recycled_total":           dto.MetricType_COUNTER,
		"retention_released_segments_total": dto.MetricType_COUNTER,
		"retention_released_bytes_total":    dto.MetricType_COUNTER,
		"segments":                          dto.MetricType_GAUGE, "segment_bytes": dto.MetricType_GAUGE, "disk_bytes": dto.MetricType_GAUGE,
		"checkpoint_last_seconds": dto.MetricType_GAUGE, "checkpoint_max_seconds": dto.MetricType_GAUGE,
		"open_seconds": dto.MetricType_GAUGE, "open_cut_bytes": dto.MetricType_GAUGE,
		"open_cut_records": dto.MetricType_GAUGE, "open_removed_files": dto.MetricType_GAUGE,
		"records_per_commit":         dto.MetricType_HISTOGRAM,
		"fdatasync_duration_seconds": dto.MetricType_HISTOGRAM,
	}
	l := openLog(t)
	load(t, l, 2, 5)
	mfs := gather(t, NewCollector(l, nil))
	if len(mfs) != len(want) {
		t.Errorf("%d metric families, want %d", len(mfs), len(want))
	}
	for name, typ := range want {
		mf, ok := mfs["journal_"+name]
		if !ok || mf.GetType() != typ {
			t.Errorf("journal_%s: %v, want a %v", name, mf, typ)
		}
	}

	// The README: "Counters `journal_a`, `b`, ...; gauges `c`, ...;
	// histograms `d` and `e` ...".
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Skip("no README next to the module:", err)
	}
	text := string(b)
	start := strings.Index(text, "Counters `journal_")
	if start < 0 {
		t.Fatal("the README lists no counters")
	}
	para := text[start:]
	para = para[:strings.Index(para, "\n\n")]
	para = strings.ReplaceAll(para, "\n", " ")
	if end := strings.Index(para, ". "); end >= 0 {
		para = para[:end] // the list is one sentence
	}
	documented := map[string]dto.MetricType{}
	kinds := []struct {
		word string
		typ  dto.MetricType
	}{{"Counters", dto.MetricType_COUNTER}, {"gauges", dto.MetricType_GAUGE}, {"histograms", dto.MetricType_HISTOGRAM}}
	name := regexp.MustCompile("`([a-z_]+)`")
	for _, part := range strings.Split(para, ";") {
		part = strings.TrimSpace(part)
		k := slices.IndexFunc(kinds, func(k struct {
			word string
			typ  dto.MetricType
		}) bool {
			return strings.HasPrefix(part, k.word+" ")
		})
		if k < 0 {
			t.Fatalf("README: %q names no kind of metric", part)
		}
		for _, m := range name.FindAllStringSubmatch(part, -1) {
			documented[strings.TrimPrefix(m[1], "journal_")] = kinds[k].typ
		}
	}
	for n, typ := range want {
		// COUNTER is MetricType's zero value: a name missing from the
		// README must not pass for a documented counter.
		if got, ok := documented[n]; !ok {
			t.Errorf("README does not list %s", n)
		} else if got != typ {
			t.Errorf("README lists %s as a %v, want a %v", n, got, typ)
		}
	}
	for n := range documented {
		if _, ok := want[n]; !ok {
			t.Errorf("README lists %s, which is not exported", n)
		}
	}
}
