package wal

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// Compression selects how records are compressed on disk. Each record is
// compressed on its own and stored uncompressed when that is not smaller.
type Compression uint8

const (
	// NoCompression stores records as they are (the default).
	NoCompression Compression = iota
	// S2 compresses with klauspost/compress/s2: fast, modest ratio.
	S2
	// Zstd compresses with klauspost/compress/zstd: slower, better ratio.
	Zstd
)

func (c Compression) codec() segment.Codec {
	switch c {
	case S2:
		return segment.S2
	case Zstd:
		return segment.Zstd
	}
	return segment.None
}

// Defaults and bounds for Options.
const (
	DefaultSegmentSize = 64 << 20
	MinSegmentSize     = 64 << 10
	// MaxSegmentSize is typed: 2 GiB does not fit a 32-bit int.
	MaxSegmentSize int64 = segment.MaxSegmentSize
	// DefaultSlowSync is the default Options.SlowSync: an fdatasync slower
	// than this holds every waiting append up for longer than a disk
	// in good health should.
	DefaultSlowSync = 100 * time.Millisecond
)

// Options configures a Log. The zero value (or a nil *Options) gives the
// defaults. Open refuses, with ErrInvalidOptions naming the field, values
// out of range and settings that would be ignored. OpenReadOnly refuses
// the same values, so a writer and its followers can share one Options,
// but it uses only FS and Verify and ignores the other fields.
type Options struct {
	// SegmentSize is the size at which a segment is sealed and the next one
	// started: a multiple of 512 from MinSegmentSize to MaxSegmentSize,
	// default 64 MiB. Segments are preallocated to this size.
	SegmentSize int64
	// NoSync skips the fdatasync after each group of appends: Append
	// returns once the record is written to the OS, and only Sync (or
	// Close) makes it durable. A process crash loses nothing; a power loss
	// can lose what was not synced.
	NoSync bool
	// Verify makes Open check every record of every segment (and never
	// believe the clean-close manifest). By default Open reads only the
	// checksummed header and footer of sealed segments, so a large log
	// opens quickly; a damaged record in a sealed segment is then reported
	// (ErrCorrupt) when it is read, and by `wal verify`. Close seals the
	// newest segment too and writes the manifest, which describes every
	// sealed segment: a cleanly closed log then opens without opening any
	// but the newest, and a damaged sealed footer is reported on the
	// segment's first use. After a crash Open reads every sealed segment's
	// footer and the newest segment's records (what was written, and at
	// most 1 MiB of zeros written ahead of it, never the rest of its
	// preallocated space; the rest of a recycled file, see
	// RecycleSegments). With OpenReadOnly it checks every record the
	// log holds when it opens, as Open does.
	Verify bool
	// Compression compresses each record (default NoCompression).
	Compression Compression
	// Logger receives a writer's recovery reports and failures (default
	// slog.Default()): Info on Open (what recovery did and how long it
	// took), on each rotation, each checkpoint and each release by
	// retention; Warn on a cut torn tail and on a slow fdatasync
	// (SlowSync); Error on a failed background checkpoint or retention
	// pass. A Log opened with OpenReadOnly logs nothing.
	Logger *slog.Logger
	// SlowSync is the duration from which a group-commit fdatasync is
	// logged at Warn level: zero means DefaultSlowSync, negative turns the
	// warning off. A positive value below a microsecond (the resolution of
	// Metrics.SyncMicros) is refused: it would log every fdatasync.
	SlowSync time.Duration
	// Checkpoint configures snapshots and background checkpoints.
	Checkpoint CheckpointOptions
	// Retention releases records in the background by age, by size and
	// once consumers have acknowledged them (default: never).
	Retention RetentionOptions
	// RecycleSegments keeps one segment file that TruncateFront, a
	// Checkpoint or Retention released, instead of deleting it, as the
	// file of a later segment: the largest of those a release drops,
	// while no recycled file is held already. A fresh segment's blocks
	// are written twice (zeros ahead of the frames, so that an fdatasync
	// need not commit the file system's journal for the blocks it first
	// writes, then the frames); a recycled file's blocks are written
	// already, so appends write them once. Turn it on for logs that
	// release segments steadily (a queue with retention, a state machine
	// with frequent checkpoints), where appends are bound by the disk's
	// bandwidth. What it costs: the file holds the old segment's bytes
	// past the new frames, which recovery reads as a torn tail (their
	// checksums use the old segment's salt, so they never pass for
	// records), so an Open after a crash in a recycled segment reads the
	// rest of that segment, up to SegmentSize, where it skips a fresh
	// segment's unwritten space; and one released file stays on disk as
	// the spare (counted in Metrics.DiskBytes). On a full disk, or if
	// recycling fails, the file is deleted as without the option.
	RecycleSegments bool
	// FS is the file system (default vfs.Default, the OS). Tests substitute
	// one that simulates crashes or injects errors.
	FS vfs.FS
}

func (o *Options) withDefaults() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if r.SegmentSize == 0 {
		r.SegmentSize = DefaultSegmentSize
	}
	if r.SegmentSize < MinSegmentSize || r.SegmentSize > MaxSegmentSize {
		return r, fmt.Errorf("%w: SegmentSize %d not in [%d, %d]", ErrInvalidOptions, r.SegmentSize, MinSegmentSize, MaxSegmentSize)
	}
	// Each write is padded to a sector boundary: with a multiple of the
	// sector size, a write that fits stays inside the preallocated file
	// even padded, so its fdatasync never has a size change to flush.
	if r.SegmentSize%segment.SectorSize != 0 {
		return r, fmt.Errorf("%w: SegmentSize %d is not a multiple of %d", ErrInvalidOptions, r.SegmentSize, segment.SectorSize)
	}
	if r.SlowSync == 0 {
		r.SlowSync = DefaultSlowSync
	}
	if r.SlowSync > 0 && r.SlowSync < time.Microsecond {
		return r, fmt.Errorf("%w: SlowSync %v is below 1µs: every fdatasync would be logged (negative turns the warning off)", ErrInvalidOptions, r.SlowSync)
	}
	if r.Compression > Zstd {
		return r, fmt.Errorf("%w: unknown Compression %d", ErrInvalidOptions, r.Compression)
	}
	if err := r.Checkpoint.check(); err != nil {
		return r, err
	}
	if err := r.Retention.check(); err != nil {
		return r, err
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.FS == nil {
		r.FS = vfs.Default
	}
	return r, nil
}

// minInterval is the shortest period of background work Open accepts: a
// shorter one is most likely a bare number meant as seconds (a Duration
// counts nanoseconds), and would checkpoint or scan the log without pause.
const minInterval = time.Millisecond

// checkInterval refuses a negative period, or one below minInterval, for
// the field named.
func checkInterval(field string, d time.Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("%w: %s %v is negative", ErrInvalidOptions, field, d)
	case d < minInterval:
		return fmt.Errorf("%w: %s %v is below %v (a bare number counts nanoseconds: write 5 * time.Second)", ErrInvalidOptions, field, d, minInterval)
	}
	return nil
}

// check refuses checkpoint options that would be ignored: the triggers,
// State and OnError only serve background checkpoints, which need all of
// State and a trigger (an explicit Checkpoint call is given its state).
func (c *CheckpointOptions) check() error {
	switch {
	case c.EveryBytes < 0:
		return fmt.Errorf("%w: Checkpoint.EveryBytes %d is negative", ErrInvalidOptions, c.EveryBytes)
	case c.EveryInterval != 0:
		if err := checkInterval("Checkpoint.EveryInterval", c.EveryInterval); err != nil {
			return err
		}
	}
	trigger := c.EveryBytes > 0 || c.EveryInterval > 0
	switch {
	case trigger && c.State == nil:
		return fmt.Errorf("%w: Checkpoint.EveryBytes or EveryInterval set without Checkpoint.State", ErrInvalidOptions)
	case !trigger && c.State != nil:
		return fmt.Errorf("%w: Checkpoint.State set without Checkpoint.EveryBytes or EveryInterval: it would never be called", ErrInvalidOptions)
	case c.OnError != nil && c.State == nil:
		return fmt.Errorf("%w: Checkpoint.OnError set without background checkpoints (Checkpoint.State): it would never be called", ErrInvalidOptions)
	}
	return nil
}
