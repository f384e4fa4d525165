package wal

import (
	"math/bits"
	"path/filepath"
	"time"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
)

// Metrics is a snapshot of what a Log has done since Open and of what it
// holds on disk. Counters only grow; the histograms are copied whole, so a
// snapshot is consistent and never shares memory with the log.
type Metrics struct {
	// Stats are the appends (Records), group commits (Writes), the
	// group-commit fdatasyncs (Syncs) and the bytes written (Bytes).
	Stats
	// RecordsPerWrite counts group commits by the number of records each
	// made readable: how well concurrent appends are batched.
	RecordsPerWrite Histogram
	// SyncMicros counts the group-commit fdatasyncs by duration, in
	// microseconds (the fdatasyncs that create, seal or close a segment
	// are not included).
	SyncMicros Histogram
	// Rotations counts segments sealed because they were full.
	Rotations uint64
	// Segments is the number of segment files in the log, the active one
	// included, and SegmentBytes the sum of their sizes (preallocated
	// space counts). Both are kept up to date from what Open found and
	// what the log wrote, sealed, created and removed since; no file is
	// read or statted to report them.
	Segments     int
	SegmentBytes int64
	// DiskBytes is SegmentBytes plus the sizes of the meta file, the
	// tail file, the clean-close manifest (after Close), the snapshot and
	// the spare file prepared for the next rotation (once ready), which
	// Metrics stats when called: the bytes the log directory holds
	// (temporary files of an operation in flight aside, and the cursors
	// subdirectory, which is not the log's to count).
	DiskBytes int64
	// RetentionSegments and RetentionBytes count the segments, and their
	// bytes, that background retention released (RetentionOptions).
	RetentionSegments uint64
	RetentionBytes    int64
	// SegmentsRecycled counts the released segment files kept as the
	// spare for a later segment (Options.RecycleSegments).
	SegmentsRecycled uint64
	// Checkpoints counts the checkpoints that committed a snapshot;
	// CheckpointLast and CheckpointMax are the durations of the latest
	// and of the longest: from the Checkpoint call (for a background one,
	// once State has returned) to the release of the records it covers,
	// waiting for a truncation in flight and the MaxRate bound included.
	Checkpoints                   uint64
	CheckpointLast, CheckpointMax time.Duration
	// Open is what Open's recovery took: how long Open ran, the bytes and
	// records of a torn tail it cut, and the files it removed (leftover
	// temporary files and obsolete segments). Recovered has the details.
	OpenDuration time.Duration
	CutBytes     int64
	CutRecords   int
	FilesRemoved int
}

// histBuckets is the number of buckets of a Histogram.
const histBuckets = 32

// Histogram counts values in power-of-two buckets: Counts[0] counts zeros,
// Counts[i] the values in [2^(i-1), 2^i), and the last bucket everything
// from 2^30 up. Recording a value neither allocates nor locks (the log's
// lock is already held).
type Histogram struct {
	Counts [histBuckets]uint64
	Sum    uint64 // the sum of the values recorded
}

// add records one value.
func (h *Histogram) add(v uint64) {
	h.Counts[min(bits.Len64(v), histBuckets-1)]++
	h.Sum += v
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile returns an upper bound of the q-quantile (q in [0, 1]) of the
// values recorded: the largest value the bucket holding it admits (2^i - 1
// for bucket i, so never more than twice the true value minus one). It is
// 0 when nothing was recorded. The last bucket has no bound: it reports
// its lower one.
func (h *Histogram) Quantile(q float64) uint64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			if i == histBuckets-1 {
				return 1 << (i - 1)
			}
			return 1<<i - 1
		}
	}
	return 0 // unreachable: seen reaches n
}

// Metrics reports the log's counters and what it holds on disk. It stats
// the meta, tail, manifest and snapshot files and a ready spare, takes the
// log's lock only to copy the counters, and waits for no disk operation.
// After Close it reports the log as Close left it. A read-only Log
// reports the segments of its latest view of the directory (its counters
// stay zero).
func (l *Log) Metrics() Metrics {
	l.mu.Lock()
	// A spare being prepared is an operation in flight: it is not counted
	// until ready, so that DiskBytes counts it whole or not at all. Metrics
	// used to wait for it, and a scrape then hung for as long as a
	// fallocate stuck on a sick disk (TestMetricsAdvScrapeDuringStuckSpare).
	spare := !l.preparing
	m := l.metrics
	m.Stats = l.stats
	m.Segments = len(l.sealed)
	m.SegmentBytes = l.active.size
	// A read-only Log whose view ends with a sealed segment has an empty
	// active segment after it, standing for no file: it was counted as
	// one more segment than the directory holds.
	if l.active.path != "" {
		m.Segments++
	}
	if s := l.sealing; s != nil {
		m.Segments++
		m.SegmentBytes += s.size
	}
	for _, s := range l.sealed {
		m.SegmentBytes += s.size
	}
	l.mu.Unlock()
	m.DiskBytes = m.SegmentBytes
	for _, name := range []string{recovery.MetaName, recovery.TailName, recovery.ManifestName, checkpoint.FileName, segment.SpareName} {
		if name == segment.SpareName && !spare {
			continue
		}
		if fi, err := l.fs.Stat(filepath.Join(l.dir, name)); err == nil {
			m.DiskBytes += fi.Size()
		}
	}
	return m
}

// noteRecovery keeps the figures of Open's recovery and logs them.
func (l *Log) noteRecovery(took time.Duration) {
	m := &l.metrics
	m.OpenDuration = took
	m.FilesRemoved = len(l.found.Removed)
	if t := l.found.Torn; t != nil {
		m.CutBytes, m.CutRecords = t.Bytes, t.Records
	}
	l.opts.Logger.Info("journal: opened", "dir", l.dir, "first", l.first, "last", l.last,
		"segments", len(l.sealed)+1, "took", took, "cut_bytes", m.CutBytes,
		"cut_records", m.CutRecords, "removed", m.FilesRemoved)
}

// noteCheckpoint counts a committed checkpoint. Called with mu held.
func (l *Log) noteCheckpoint(took time.Duration) {
	m := &l.metrics
	m.Checkpoints++
	m.CheckpointLast = took
	m.CheckpointMax = max(m.CheckpointMax, took)
}

// noteSync records the duration of a group-commit fdatasync. Called with
// mu held.
func (l *Log) noteSync(took time.Duration) {
	l.metrics.SyncMicros.add(uint64(took / time.Microsecond))
}

// warnSlowSync logs an fdatasync slower than Options.SlowSync. Called
// without mu: a slow logger must not hold up appends.
func (l *Log) warnSlowSync(path string, took time.Duration) {
	if l.opts.SlowSync > 0 && took >= l.opts.SlowSync {
		l.opts.Logger.Warn("journal: slow fdatasync", "file", path, "took", took, "threshold", l.opts.SlowSync)
	}
}
