package wal

import (
	"errors"
	"math"

	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

var (
	// ErrClosed is returned, once Close has been called, by the methods
	// that read or change the log: Append, AppendBatch (and their Apply
	// forms), Read, Sync, TruncateFront, TruncateBack, Checkpoint,
	// Snapshot, Reader.Next (NextContext, and the All and Follow loops,
	// through Err) and a second Close. FirstIndex, LastIndex,
	// Stats, Metrics, Recovered, Dir and CheckpointErr have no error to
	// return: they keep reporting the log as Close left it.
	ErrClosed = errors.New("journal: log is closed")
	// ErrLocked is returned by Open when another Log, in this process or
	// another, has the directory open.
	ErrLocked = vfs.ErrLocked
	// ErrCorrupt is returned (wrapped, usually in a *CorruptionError) when
	// stored bytes fail their checksum or damage is found inside data the log
	// had made durable.
	ErrCorrupt = errs.ErrCorrupt
	// ErrFormat is returned by Open when a file in the directory is not a
	// journal file of a format version this build reads.
	ErrFormat = errs.ErrFormat
	// ErrNotFound is returned by Read for an index outside
	// [FirstIndex, LastIndex].
	ErrNotFound = errors.New("journal: record not found")
	// ErrOutOfRange is returned by TruncateFront and TruncateBack for an
	// index they cannot truncate to, and by Append and AppendBatch (and
	// their Apply forms) for records that would pass MaxIndex (nothing is
	// written), and by checkpoint.Write for index 0.
	ErrOutOfRange = errs.ErrOutOfRange
	// ErrTooLarge is returned by Append and AppendBatch for a record larger
	// than MaxRecordSize or a batch larger than MaxBatchSize; nothing is
	// written.
	ErrTooLarge = errors.New("journal: record too large")
	// ErrInvalidOptions is returned by Open and OpenReadOnly for options
	// out of range or settings that would be ignored; the message names
	// the field.
	ErrInvalidOptions = errors.New("journal: invalid options")
	// ErrCompacted is returned by Reader.Next and NextContext (and by Err
	// after an All or Follow loop) when records the Reader has yet to
	// return were released from the front of the log (TruncateFront,
	// Checkpoint, Options.Retention) before it reached them, also while it
	// waits, and for a Reader created below FirstIndex. The message names
	// the records lost.
	ErrCompacted = errors.New("journal: records were released before the reader reached them")
	// ErrTruncated is returned when a TruncateBack dropped records a call
	// was given: by Append and AppendBatch (and their Apply forms) when a
	// TruncateBack that ran before the call returned dropped the records
	// it appended (they were written, and may have been durable, but are
	// no longer in the log, and their indexes may already hold other
	// records); by Reader.Next
	// when TruncateBack dropped the last record the Reader returned (what
	// it returned is no longer the log's history from that index on). The
	// message says which records.
	ErrTruncated = errors.New("journal: records were dropped by TruncateBack")
	// ErrFailed is returned by every write after a write, fdatasync or
	// file operation failed: the state on disk is unknown, so the log
	// refuses to go on (an fsync that failed once must not be retried as
	// if it had succeeded). Reopen the log to recover. Reads go on and
	// show the log as it was before the call that failed: that call's
	// outcome (records an append wrote, records a truncation dropped) is
	// known only once Open has read the disk.
	ErrFailed = errors.New("journal: log failed earlier; reopen it")
)

// CorruptionError says where damage was found: file, offset, index.
type CorruptionError = errs.CorruptionError

// Limits on what one call may append.
const (
	// MaxRecordSize is the largest record Append accepts.
	MaxRecordSize = segment.MaxRecordSize
	// MaxBatchSize bounds the total size of one AppendBatch.
	MaxBatchSize = segment.MaxBatchSize
	// MaxIndex is the largest index a record may have (and TruncateFront
	// accept): the index after the last record must be a uint64 too, since
	// that is where appends go on and how Open finds the end of the log.
	MaxIndex = math.MaxUint64 - 1
)
