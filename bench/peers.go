package bench

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/record"
	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	prom "github.com/prometheus/client_golang/prometheus"
	tidwall "github.com/tidwall/wal"
	etcdwal "go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Appender is one log under test. Append returns once rec is durable and
// is called from many goroutines at once.
type Appender interface {
	Append(rec []byte) error
	// Syncs is the number of fdatasyncs (or fsyncs) issued so far, and
	// false when the peer offers no way to count them in process (the
	// strace verification run counts those).
	Syncs() (uint64, bool)
	Close() error
}

// Peer names a log and opens it in an empty directory.
type Peer struct {
	Name string
	Open func(dir string) (Appender, error)
}

// Ideal and Pebble are the names the ratios are taken against.
const (
	Ideal  = "ideal"
	Pebble = "pebble"
)

// Peers lists every log, in the order of the table.
var Peers = []Peer{
	{"journal", openJournal},
	{Ideal, openIdeal},
	{Pebble, openPebble},
	{"etcd", openEtcd},
	{"raft-wal", openRaftWAL},
	{"tidwall", openTidwall},
	{"naive", openNaive},
}

// journalLog: wal.Open (fdatasync on); its Metrics count the group-commit
// fdatasyncs and the bytes written.
type journalLog struct{ l *wal.Log }

// openJournal opens journal with default options.
func openJournal(dir string) (Appender, error) { return openJournalWith(wal.Options{})(dir) }

// openJournalWith opens journal with options o; only the Info line on Open
// is silenced.
func openJournalWith(o wal.Options) func(dir string) (Appender, error) {
	o.Logger = slog.New(slog.DiscardHandler)
	return func(dir string) (Appender, error) {
		l, err := wal.Open(dir, &o)
		if err != nil {
			return nil, err
		}
		return journalLog{l}, nil
	}
}

// Codecs are journal with each of its compression settings, for the
// compression benchmark (cmd/compressbench).
var Codecs = []Peer{
	{"none", openJournalWith(wal.Options{})},
	{"s2", openJournalWith(wal.Options{Compression: wal.S2})},
	{"zstd", openJournalWith(wal.Options{Compression: wal.Zstd})},
}

// Variants are journal with options other than the defaults, run only when
// named (peerbench -peers): 1 MiB segments show what a rotation every few
// hundred milliseconds does to p99; s2 and zstd what compression costs
// on random (incompressible) records; journal-release is a log that
// releases segments as it goes (a queue with retention: 8 MiB segments,
// about three kept), and journal-recycle the same with
// Options.RecycleSegments, whose appends go to released files with their
// blocks written already.
var Variants = []Peer{
	{"journal-seg1m", openJournalWith(wal.Options{SegmentSize: 1 << 20})},
	{"journal-s2", openJournalWith(wal.Options{Compression: wal.S2})},
	{"journal-zstd", openJournalWith(wal.Options{Compression: wal.Zstd})},
	{"journal-release", openJournalReleasing(false)},
	{"journal-recycle", openJournalReleasing(true)},
}

// releasingSegment is the segment size of journal-release and
// journal-recycle.
const releasingSegment = 8 << 20

// openJournalReleasing opens journal with retention keeping about three
// segments (and recycling released ones if recycle is set), then warms it
// up before the timed run: appends until it rotated 5 times and released
// 2 segments (and recycled one), so that the run measures the steady
// state, not the first segments' fresh space.
func openJournalReleasing(recycle bool) func(dir string) (Appender, error) {
	open := openJournalWith(wal.Options{SegmentSize: releasingSegment, RecycleSegments: recycle,
		Retention: wal.RetentionOptions{MaxBytes: 3 * releasingSegment}})
	return func(dir string) (Appender, error) {
		a, err := open(dir)
		if err != nil {
			return nil, err
		}
		if err := warmUp(a.(journalLog).l, recycle); err != nil {
			a.Close()
			return nil, err
		}
		return a, nil
	}
}

// warmUp appends 1 MiB batches until l has rotated 5 times and retention
// released 2 segments (with recycle, until one was recycled too).
func warmUp(l *wal.Log, recycle bool) error {
	batch := make([][]byte, 256)
	for i := range batch {
		batch[i] = make([]byte, 4096-64)
		fill(batch[i], uint64(i))
	}
	for {
		m := l.Metrics()
		if m.Rotations >= 5 && m.RetentionSegments >= 2 && (!recycle || m.SegmentsRecycled > 0) {
			return nil
		}
		if m.Rotations > 100 {
			return fmt.Errorf("warm-up: %d rotations, %d segments released, %d recycled", m.Rotations, m.RetentionSegments, m.SegmentsRecycled)
		}
		if _, err := l.AppendBatch(batch); err != nil {
			return err
		}
	}
}

func (j journalLog) Append(rec []byte) error { _, err := j.l.Append(rec); return err }
func (j journalLog) Syncs() (uint64, bool)   { return j.l.Metrics().Syncs, true }
func (j journalLog) Written() uint64         { return j.l.Metrics().Bytes }
func (j journalLog) Close() error            { return j.l.Close() }

// syncFile is the file under pebble's LogWriter. Its Sync is fdatasync,
// as with pebble's own vfs.SyncingFile (SyncData), and it counts them.
type syncFile struct {
	*os.File
	syncs atomic.Uint64
}

func (f *syncFile) Sync() error {
	f.syncs.Add(1)
	return unix.Fdatasync(int(f.Fd()))
}

// pebbleLog is record.LogWriter as pebble's commit pipeline drives it:
// SyncRecord under a mutex (the "external synchronisation" its doc asks
// for), then a wait on the WaitGroup, which the flush loop releases once
// the record's block is written and synced. QueueSemChan bounds the sync
// queue as pebble's DB does.
type pebbleLog struct {
	mu   sync.Mutex
	w    *record.LogWriter
	f    *syncFile
	qsem chan struct{}
}

func openPebble(dir string) (Appender, error) {
	f, err := os.Create(filepath.Join(dir, "000001.log"))
	if err != nil {
		return nil, err
	}
	// Pebble preallocates its WALs (vfs.SyncingFile, FALLOC_FL_KEEP_SIZE).
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, preallocChunk); err != nil {
		f.Close()
		return nil, err
	}
	sf := &syncFile{File: f}
	qsem := make(chan struct{}, record.SyncConcurrency-1)
	w := record.NewLogWriter(sf, 1, record.LogWriterConfig{QueueSemChan: qsem})
	return &pebbleLog{w: w, f: sf, qsem: qsem}, nil
}

func (p *pebbleLog) Append(rec []byte) error {
	var wg sync.WaitGroup
	var syncErr error
	wg.Add(1)
	p.qsem <- struct{}{} // released by the LogWriter once synced
	p.mu.Lock()
	_, err := p.w.SyncRecord(rec, &wg, &syncErr)
	p.mu.Unlock()
	if err != nil {
		return err
	}
	wg.Wait()
	return syncErr
}

func (p *pebbleLog) Syncs() (uint64, bool) { return p.f.syncs.Load(), true }
func (p *pebbleLog) Close() error          { return p.w.Close() }

// etcdLog is etcd's wal: each Save of one entry (with a HardState) is
// written and fdatasync'd before it returns; Save is serialized by the
// WAL's own lock. etcd batches entries in its raft loop, not in the WAL,
// so one entry per Save is what concurrent callers of the WAL get. Its
// fdatasyncs are counted by its own Prometheus histogram
// (etcd_disk_wal_fsync_duration_seconds), which it observes on every sync.
type etcdLog struct {
	mu    sync.Mutex
	w     *etcdwal.WAL
	index uint64
	base  uint64 // the histogram's count at open
}

func openEtcd(dir string) (Appender, error) {
	base, err := etcdSyncs()
	if err != nil {
		return nil, err
	}
	w, err := etcdwal.Create(zap.NewNop(), filepath.Join(dir, "wal"), nil)
	if err != nil {
		return nil, err
	}
	return &etcdLog{w: w, base: base}, nil
}

func (e *etcdLog) Append(rec []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.index++
	ents := []raftpb.Entry{{Term: 1, Index: e.index, Data: rec}}
	return e.w.Save(raftpb.HardState{Term: 1, Commit: e.index}, ents)
}

func (e *etcdLog) Syncs() (uint64, bool) {
	n, err := etcdSyncs()
	if err != nil {
		return 0, false
	}
	return n - e.base, true
}

func (e *etcdLog) Close() error { return e.w.Close() }

// etcdSyncs reads the count of etcd's WAL fsync histogram from the
// default Prometheus registry, where the wal package registers it.
func etcdSyncs() (uint64, error) {
	mfs, err := prom.DefaultGatherer.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == "etcd_disk_wal_fsync_duration_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount(), nil
		}
	}
	return 0, fmt.Errorf("bench: etcd's fsync histogram is not registered")
}

// raftWAL is hashicorp/raft-wal: StoreLogs writes and fsyncs before it
// returns, and needs consecutive indexes, so appenders take a lock to
// number their entries (as raft's single log-writing goroutine would).
type raftWAL struct {
	mu    sync.Mutex
	w     *raftwal.WAL
	index uint64
}

func openRaftWAL(dir string) (Appender, error) {
	w, err := raftwal.Open(dir)
	if err != nil {
		return nil, err
	}
	return &raftWAL{w: w}, nil
}

func (r *raftWAL) Append(rec []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.index++
	return r.w.StoreLogs([]*raft.Log{{Index: r.index, Term: 1, Type: raft.LogCommand, Data: rec}})
}

func (r *raftWAL) Syncs() (uint64, bool) { return 0, false }
func (r *raftWAL) Close() error          { return r.w.Close() }

// tidwallLog is tidwall/wal with its default options (NoSync false: an
// fsync after every Write), binary format. Write needs the next index,
// hence the lock.
type tidwallLog struct {
	mu    sync.Mutex
	l     *tidwall.Log
	index uint64
}

func openTidwall(dir string) (Appender, error) {
	l, err := tidwall.Open(filepath.Join(dir, "wal"), nil)
	if err != nil {
		return nil, err
	}
	return &tidwallLog{l: l}, nil
}

func (t *tidwallLog) Append(rec []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.index++
	return t.l.Write(t.index, rec)
}

func (t *tidwallLog) Syncs() (uint64, bool) { return 0, false }
func (t *tidwallLog) Close() error          { return t.l.Close() }

// fill gives a record distinct content, so no layer can shortcut zeros.
func fill(rec []byte, seed uint64) {
	for i := 0; i+8 <= len(rec); i += 8 {
		seed = seed*6364136223846793005 + 1442695040888963407
		binary.LittleEndian.PutUint64(rec[i:], seed)
	}
}
