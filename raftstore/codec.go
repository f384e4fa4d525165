package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// On-disk entry layout (see the package doc).
const (
	entryVersion = 1
	entryHeader  = 3 // version 1 + type 1 + flags 1

	flagAppendedAt = 1 // AppendedAt follows the term, in Unix nanoseconds
	// flagWideTime: AppendedAt follows the term in Unix seconds and
	// nanoseconds, for a time whose Unix nanoseconds overflow an int64
	// (before 1678 or after 2262). Never set with flagAppendedAt.
	flagWideTime = 2
)

// appendEntry appends the encoding of e to b.
func appendEntry(b []byte, e *raft.Log) []byte {
	at := e.AppendedAt
	var flags byte
	switch {
	case at.IsZero():
	case time.Unix(0, at.UnixNano()).Equal(at):
		flags = flagAppendedAt
	default:
		flags = flagWideTime
	}
	b = append(b, entryVersion, byte(e.Type), flags)
	b = binary.AppendUvarint(b, e.Term)
	switch flags {
	case flagAppendedAt:
		b = binary.AppendVarint(b, at.UnixNano())
	case flagWideTime:
		b = binary.AppendVarint(b, at.Unix())
		b = binary.AppendUvarint(b, uint64(at.Nanosecond()))
	}
	b = binary.AppendUvarint(b, uint64(len(e.Extensions)))
	b = append(b, e.Extensions...)
	return append(b, e.Data...)
}

// decodeEntry fills e from rec, the record at index. e keeps slices of
// rec, which the caller must not reuse.
func decodeEntry(rec []byte, index uint64, e *raft.Log) error {
	bad := func(what string) error {
		return fmt.Errorf("%w: entry %d: %s", ErrFormat, index, what)
	}
	if len(rec) < entryHeader {
		return bad(fmt.Sprintf("%d bytes, shorter than its header", len(rec)))
	}
	if rec[0] != entryVersion {
		return bad(fmt.Sprintf("version %d, this build reads %d", rec[0], entryVersion))
	}
	flags := rec[2]
	if flags != 0 && flags != flagAppendedAt && flags != flagWideTime {
		return bad(fmt.Sprintf("unknown flags %#x", flags))
	}
	*e = raft.Log{Index: index, Type: raft.LogType(rec[1])}
	p := rec[entryHeader:]
	var n int
	if e.Term, n = binary.Uvarint(p); n <= 0 {
		return bad("term")
	}
	p = p[n:]
	var err error
	if e.AppendedAt, p, err = decodeTime(p, flags); err != nil {
		return bad(err.Error())
	}
	ext, n := binary.Uvarint(p)
	if n <= 0 || ext > uint64(len(p)-n) {
		return bad("extensions length")
	}
	p = p[n:]
	if ext > 0 {
		e.Extensions = p[:ext:ext]
	}
	if p = p[ext:]; len(p) > 0 {
		e.Data = p
	}
	return nil
}

// decodeTime decodes the AppendedAt that flags say starts p (the zero
// time when they say none does) and returns the rest of p.
func decodeTime(p []byte, flags byte) (time.Time, []byte, error) {
	switch flags {
	case flagAppendedAt:
		ns, n := binary.Varint(p)
		if n <= 0 {
			return time.Time{}, nil, errors.New("appended-at time")
		}
		return time.Unix(0, ns), p[n:], nil
	case flagWideTime:
		sec, n := binary.Varint(p)
		if n <= 0 {
			return time.Time{}, nil, errors.New("appended-at seconds")
		}
		ns, k := binary.Uvarint(p[n:])
		if k <= 0 || ns >= 1e9 {
			return time.Time{}, nil, errors.New("appended-at nanoseconds")
		}
		return time.Unix(sec, int64(ns)), p[n+k:], nil
	}
	return time.Time{}, p, nil
}

// On-disk layout of the shared log's records (see the package doc).
const (
	kindEntry  = 1 // a group's entry: group, index, then the entry
	kindDelete = 2 // a group's DeleteRange: group, first and last index deleted
)

// appendShared appends the head of a shared-log record to b.
func appendShared(b []byte, kind byte, group, index uint64) []byte {
	b = append(b, kind)
	b = binary.AppendUvarint(b, group)
	return binary.AppendUvarint(b, index)
}

// appendDelete appends the record of group's deletion of [from, to].
func appendDelete(b []byte, group, from, to uint64) []byte {
	return binary.AppendUvarint(appendShared(b, kindDelete, group, from), to)
}

// sharedRecord is a decoded shared-log record: an entry (index, and body
// its encoding) or a deletion of [index, to].
type sharedRecord struct {
	kind         byte
	group, index uint64
	to           uint64
	body         []byte
}

func (r sharedRecord) String() string {
	if r.kind == kindDelete {
		return fmt.Sprintf("group %d's deletion of [%d, %d]", r.group, r.index, r.to)
	}
	return fmt.Sprintf("group %d entry %d", r.group, r.index)
}

// decodeShared decodes the head of rec, the shared log's record j (an
// entry's body is left to decodeEntry).
func decodeShared(rec []byte, j uint64) (sharedRecord, error) {
	var r sharedRecord
	bad := func(what string) (sharedRecord, error) {
		return r, fmt.Errorf("%w: shared record %d: %s", ErrFormat, j, what)
	}
	if len(rec) == 0 || (rec[0] != kindEntry && rec[0] != kindDelete) {
		return bad("unknown kind")
	}
	r.kind = rec[0]
	p := rec[1:]
	var n int
	if r.group, n = binary.Uvarint(p); n <= 0 {
		return bad("group")
	}
	p = p[n:]
	if r.index, n = binary.Uvarint(p); n <= 0 || r.index == 0 {
		return bad("index")
	}
	p = p[n:]
	if r.kind == kindEntry {
		r.body = p
		return r, nil
	}
	if r.to, n = binary.Uvarint(p); n <= 0 || n != len(p) || r.to < r.index {
		return bad("deleted range")
	}
	return r, nil
}
