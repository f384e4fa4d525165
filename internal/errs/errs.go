// Package errs holds the errors that the packages reading journal's files
// (segment, checkpoint, recovery) share, defined once, each message
// prefixed "journal:". Package wal re-exports them for users.
package errs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrCorrupt is returned when bytes on disk fail their checksum or break
// the format's rules in a place where the log says valid data must be.
var ErrCorrupt = errors.New("journal: corrupt")

// ErrFormat is returned when a file is not a journal file of a version
// this build can read (a foreign file, or a newer format).
var ErrFormat = errors.New("journal: unsupported file format")

// ErrOutOfRange is returned for an index a call cannot take: a
// truncation or append of the log past its ends, a snapshot at index 0.
var ErrOutOfRange = errors.New("journal: index out of range")

// ErrForeign is returned when a file is not a journal file at all (its
// magic is wrong), rather than one of a newer version. It satisfies
// errors.Is(err, ErrFormat).
var ErrForeign = fmt.Errorf("%w: not a journal file", ErrFormat)

// CorruptionError says where damage was found. It satisfies
// errors.Is(err, ErrCorrupt).
type CorruptionError struct {
	Path   string // file name
	Offset int64  // byte offset of the damaged frame or structure
	Index  uint64 // record index expected there, 0 when unknown
	Reason string // what check failed
}

// Error says where the damage is and what check failed.
func (e *CorruptionError) Error() string {
	s := fmt.Sprintf("journal: corrupt data in %s at offset %d", e.Path, e.Offset)
	if e.Index != 0 {
		s += fmt.Sprintf(" (record %d)", e.Index)
	}
	return s + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

// CheckVersion returns nil when found is among the versions this build
// reads of a kind of file ("segment", "snapshot", ...), and otherwise an
// ErrFormat that names both, such as "segment format version 7; this build
// reads versions 1 and 2". Each file kind keeps one list of the versions it
// reads and passes it here, so that the list and the message cannot
// disagree.
func CheckVersion(kind string, found uint32, reads []uint32) error {
	if slices.Contains(reads, found) {
		return nil
	}
	return fmt.Errorf("%w: %s format version %d; this build reads %s", ErrFormat, kind, found, versionList(reads))
}

// versionList spells a list of versions: "version 1", "versions 1 and 2",
// "versions 1, 2 and 3".
func versionList(vs []uint32) string {
	if len(vs) == 1 {
		return fmt.Sprintf("version %d", vs[0])
	}
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprint(v)
	}
	return "versions " + strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
