package raftstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// On-disk entry layout (see the package doc).
const (
	entryVersion = 1
	entryHeader  = 3 // version 1 + type 1 + flags 1

	flagAppendedAt = 1 // AppendedAt follows the term
)

// appendEntry appends the encoding of e to b.
func appendEntry(b []byte, e *raft.Log) []byte {
	var flags byte
	if !e.AppendedAt.IsZero() {
		flags |= flagAppendedAt
	}
	b = append(b, entryVersion, byte(e.Type), flags)
	b = binary.AppendUvarint(b, e.Term)
	if flags&flagAppendedAt != 0 {
		b = binary.AppendVarint(b, e.AppendedAt.UnixNano())
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
	if flags&^flagAppendedAt != 0 {
		return bad(fmt.Sprintf("unknown flags %#x", flags))
	}
	*e = raft.Log{Index: index, Type: raft.LogType(rec[1])}
	p := rec[entryHeader:]
	var n int
	if e.Term, n = binary.Uvarint(p); n <= 0 {
		return bad("term")
	}
	p = p[n:]
	if flags&flagAppendedAt != 0 {
		var ns int64
		if ns, n = binary.Varint(p); n <= 0 {
			return bad("appended-at time")
		}
		e.AppendedAt, p = time.Unix(0, ns), p[n:]
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
