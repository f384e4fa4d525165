// Package walprom exports a journal log's Metrics to Prometheus.
//
// It lives in a module of its own so that programs importing the journal
// library do not pull in prometheus/client_golang unless they ask for this
// package.
//
//	l, err := wal.Open(dir, nil)
//	...
//	prometheus.MustRegister(walprom.NewCollector(l, &walprom.Options{
//		Labels: prometheus.Labels{"log": "orders"},
//	}))
//	http.Handle("/metrics", promhttp.Handler())
//
// Each scrape takes one (*wal.Log).Metrics snapshot, so the figures of a
// scrape are consistent with each other. Counters count since the log was
// opened: a reopened log needs a new Collector (unregister the old one),
// and Prometheus reads the drop to zero as a counter reset.
//
// The two histograms keep the log's own power-of-two buckets, so no
// observation is moved across a bucket boundary on the way out:
// journal_records_per_commit has the upper bounds 0, 1, 3, 7, ..., 2^30-1
// (exact, the values are integers) and journal_fdatasync_duration_seconds
// the bounds 1µs, 2µs, 4µs, ..., 2^30µs (about 18 minutes), each the end
// of the range of durations the log counted in that bucket.
package walprom

import (
	"github.com/gojournal/journal/wal"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultNamespace prefixes the metric names when Options.Namespace is empty.
const DefaultNamespace = "journal"

// Options configures a Collector. The zero value (or nil) gives metrics
// named journal_* with no labels.
type Options struct {
	// Namespace is the first part of every metric name (default
	// DefaultNamespace).
	Namespace string
	// Labels are constant labels put on every metric. Several logs in one
	// process register one Collector each, told apart by a label such as
	// {"log": "orders"}; their label names must then be the same.
	Labels prometheus.Labels
}

// Collector is a prometheus.Collector reporting one log's Metrics. It is
// safe for concurrent scrapes.
type Collector struct {
	log      *wal.Log
	scalars  []*prometheus.Desc // in the order of the scalars table
	perWrite *prometheus.Desc
	syncDur  *prometheus.Desc
}

// scalar is a counter or gauge taken from one Metrics field.
type scalar struct {
	name, help string
	kind       prometheus.ValueType
	value      func(*wal.Metrics) float64
}

const (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

// scalars lists every counter and gauge, one per field of wal.Metrics
// (the histograms aside).
var scalars = []scalar{
	{"appends_total", "Records appended since the log was opened.", counter,
		func(m *wal.Metrics) float64 { return float64(m.Records) }},
	{"commits_total", "Group commits since the log was opened (one write each; one that only fdatasyncs writes nothing).", counter,
		func(m *wal.Metrics) float64 { return float64(m.Writes) }},
	{"fdatasyncs_total", "Group-commit fdatasyncs since the log was opened.", counter,
		func(m *wal.Metrics) float64 { return float64(m.Syncs) }},
	{"written_bytes_total", "Bytes the group commits wrote since the log was opened: frames and the padding of each write to a sector boundary (segment headers and footers not included).", counter,
		func(m *wal.Metrics) float64 { return float64(m.Bytes) }},
	{"rotations_total", "Segments sealed because they were full, since the log was opened.", counter,
		func(m *wal.Metrics) float64 { return float64(m.Rotations) }},
	{"segments", "Segment files in the log, the active one included.", gauge,
		func(m *wal.Metrics) float64 { return float64(m.Segments) }},
	{"segment_bytes", "Sum of the segment files' sizes, preallocated space included.", gauge,
		func(m *wal.Metrics) float64 { return float64(m.SegmentBytes) }},
	{"disk_bytes", "Bytes the log directory holds: segments, meta, tail and manifest files, snapshot and spare segment.", gauge,
		func(m *wal.Metrics) float64 { return float64(m.DiskBytes) }},
	{"segments_recycled_total", "Released segment files kept as the spare for a later segment (Options.RecycleSegments) since the log was opened.", counter,
		func(m *wal.Metrics) float64 { return float64(m.SegmentsRecycled) }},
	{"retention_released_segments_total", "Segments that background retention released since the log was opened.", counter,
		func(m *wal.Metrics) float64 { return float64(m.RetentionSegments) }},
	{"retention_released_bytes_total", "Bytes of the segments that background retention released since the log was opened.", counter,
		func(m *wal.Metrics) float64 { return float64(m.RetentionBytes) }},
	{"checkpoints_total", "Checkpoints that committed a snapshot since the log was opened.", counter,
		func(m *wal.Metrics) float64 { return float64(m.Checkpoints) }},
	{"checkpoint_last_seconds", "Duration of the latest committed checkpoint.", gauge,
		func(m *wal.Metrics) float64 { return m.CheckpointLast.Seconds() }},
	{"checkpoint_max_seconds", "Duration of the longest committed checkpoint since the log was opened.", gauge,
		func(m *wal.Metrics) float64 { return m.CheckpointMax.Seconds() }},
	{"open_seconds", "How long Open (with its recovery) took.", gauge,
		func(m *wal.Metrics) float64 { return m.OpenDuration.Seconds() }},
	{"open_cut_bytes", "Bytes of a torn tail that Open cut.", gauge,
		func(m *wal.Metrics) float64 { return float64(m.CutBytes) }},
	{"open_cut_records", "Records of a torn tail that Open cut.", gauge,
		func(m *wal.Metrics) float64 { return float64(m.CutRecords) }},
	{"open_removed_files", "Leftover temporary files and obsolete segments that Open removed.", gauge,
		func(m *wal.Metrics) float64 { return float64(m.FilesRemoved) }},
}

// NewCollector returns a Collector for l. Register it once per log.
func NewCollector(l *wal.Log, o *Options) *Collector {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(opts.Namespace, "", name), help, nil, opts.Labels)
	}
	c := &Collector{
		log:      l,
		perWrite: desc("records_per_commit", "Records made durable by each group commit."),
		syncDur:  desc("fdatasync_duration_seconds", "Duration of the group-commit fdatasyncs."),
	}
	for _, s := range scalars {
		c.scalars = append(c.scalars, desc(s.name, s.help))
	}
	return c
}

// Describe sends the descriptors of every metric the Collector reports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.scalars {
		ch <- d
	}
	ch <- c.perWrite
	ch <- c.syncDur
}

// Collect takes one Metrics snapshot of the log and sends every metric.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	m := c.log.Metrics()
	for i, s := range scalars {
		ch <- prometheus.MustNewConstMetric(c.scalars[i], s.kind, s.value(&m))
	}
	ch <- constHistogram(c.perWrite, &m.RecordsPerWrite, recordsBound, 1)
	ch <- constHistogram(c.syncDur, &m.SyncMicros, microsBound, 1e-6)
}

// recordsBound is the largest count bucket i of a wal.Histogram holds:
// bucket 0 holds zeros and bucket i the values in [2^(i-1), 2^i).
func recordsBound(i int) float64 { return float64(uint64(1)<<i - 1) }

// microsBound is the end of the durations bucket i of SyncMicros counts,
// in seconds: a duration is counted by its whole microseconds, so bucket i
// holds the durations below 2^i µs.
func microsBound(i int) float64 { return float64(uint64(1)<<i) * 1e-6 }

// constHistogram turns h into a Prometheus histogram with one upper bound
// per bucket of h but the last, which has none (it is +Inf); unit scales
// h's sum to the metric's unit.
func constHistogram(d *prometheus.Desc, h *wal.Histogram, bound func(int) float64, unit float64) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Counts)-1)
	var cum uint64
	for i, n := range h.Counts[:len(h.Counts)-1] {
		cum += n
		buckets[bound(i)] = cum
	}
	return prometheus.MustNewConstHistogram(d, cum+h.Counts[len(h.Counts)-1], float64(h.Sum)*unit, buckets)
}
