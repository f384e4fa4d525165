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
