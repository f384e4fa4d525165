package wal

import (
	"errors"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("journal: log is closed")
	// ErrLocked is returned by Open when another Log, in this process or
	// another, has the directory open.
	ErrLocked = vfs.ErrLocked
	// ErrCorrupt is returned (wrapped, usually in a *CorruptionError) when
	// stored bytes fail their checksum or damage is found inside data the log
	// had made durable.
	ErrCorrupt = segment.ErrCorrupt
	// ErrFormat is returned by Open when a file in the directory is not a
	// journal file of a format version this build reads.
	ErrFormat = segment.ErrFormat
	// ErrNotFound is returned by Read for an index outside
	// [FirstIndex, LastIndex].
	ErrNotFound = errors.New("journal: record not found")
	// ErrOutOfRange is returned by TruncateFront and TruncateBack for an
	// index they cannot truncate to.
	ErrOutOfRange = errors.New("journal: index out of range")
	// ErrTooLarge is returned by Append and AppendBatch for a record larger
	// than MaxRecordSize or a batch larger than MaxBatchSize; nothing is
	// written.
	ErrTooLarge = errors.New("journal: record too large")
	// ErrTruncated is returned by Append and AppendBatch when a
	// TruncateBack that ran before the call returned dropped the records
	// it appended: they were written (and may have been durable) but are
	// no longer in the log, and their indexes may already hold other
	// records.
	ErrTruncated = errors.New("journal: appended records were dropped by a concurrent TruncateBack")
	// ErrInvalidOptions is returned by Open for options out of range.
	ErrInvalidOptions = errors.New("journal: invalid options")
	// ErrFailed is returned by every write after a write, fdatasync or
	// file operation failed: the state on disk is unknown, so the log
	// refuses to go on (an fsync that failed once must not be retried as
	// if it had succeeded). Reopen the log to recover.
	ErrFailed = errors.New("journal: log failed earlier; reopen it")
)

// CorruptionError says where damage was found: file, offset, index.
type CorruptionError = segment.CorruptionError

// Limits on what one call may append.
const (
	// MaxRecordSize is the largest record Append accepts.
	MaxRecordSize = segment.MaxRecordSize
	// MaxBatchSize bounds the total size of one AppendBatch.
	MaxBatchSize = segment.MaxBatchSize
)
