package segment

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
)

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// compressible returns n bytes of text-like data that every codec shrinks.
func compressible(n int) []byte {
	return bytes.Repeat([]byte("journal segment frame "), n/22+1)[:n]
}

const testSalt = 0x5a17_5a17_5a17_5a17

// first is the first index of the segments most tests build.
const first = 100

// segmentBuilder writes a segment the way the log does: frames from
// DataStart on, writes padded to a sector boundary (endWrite), and each
// frame's synced field set to where the file was durable when it was
// written (markDurable moves that to the end of the writes so far).
type segmentBuilder struct {
	h       Header
	buf     []byte
	next    uint64
	synced  int64
	starts  []int64 // start of each record frame appended, in order
	ends    []int64 // end of each record frame, before any write padding
	records [][]byte
	syncs   []int64 // start of each TypeSync frame appended, in order
	times   Times   // the append times sealed() writes (version 3)
}

func newSegmentBuilder(first, salt uint64) *segmentBuilder {
	h := Header{FirstIndex: first, Salt: salt, Version: Version}
	buf := appendHeader(nil, h)
	buf = append(buf, make([]byte, DataStart-len(buf))...)
	return &segmentBuilder{h: h, buf: buf, next: first, synced: DataStart}
}

func (b *segmentBuilder) end() int64 { return int64(len(b.buf)) }

// frameStart and frameEnd locate the k-th appended frame (1-based);
// frameEnd(0) is DataStart.
func (b *segmentBuilder) frameStart(k int) int64 { return b.starts[k-1] }

func (b *segmentBuilder) frameEnd(k int) int64 {
	if k == 0 {
		return DataStart
	}
	return b.ends[k-1]
}

// span is the k-th record's span (0-based) as the footer gives it: up to
// the next frame, or to the footer.
func (b *segmentBuilder) span(k int) (off, size int64) {
	end := b.footerAt()
	if k+1 < len(b.starts) {
		end = b.starts[k+1]
	}
	return b.starts[k], end - b.starts[k]
}

func (b *segmentBuilder) add(t Type, c Codec, rec []byte) *segmentBuilder {
	b.starts = append(b.starts, b.end())
	b.records = append(b.records, rec)
	b.buf = AppendFrame(b.buf, b.h.Salt, t, c, b.next, b.synced, Compress(c, nil, rec))
	b.ends = append(b.ends, b.end())
	b.next++
	return b
}

func (b *segmentBuilder) record(rec string) *segmentBuilder {
	return b.add(TypeRecord, None, []byte(rec))
}
func (b *segmentBuilder) batch(rec string) *segmentBuilder {
	return b.add(TypeBatch, None, []byte(rec))
}

// syncFrame appends a TypeSync frame as a NoSync log does after an
// fdatasync: it ends the write and marks it durable, then writes the frame
// (no payload, the next record's index, synced = its own offset) as a
// write of its own. It holds no record: frameStart and frameEnd do not
// count it.
func (b *segmentBuilder) syncFrame() *segmentBuilder {
	b.markDurable()
	b.syncs = append(b.syncs, b.end())
	b.buf = AppendFrame(b.buf, b.h.Salt, TypeSync, None, b.next, b.end(), nil)
	return b
}

// syncEnd is the end of the k-th TypeSync frame appended (1-based).
func (b *segmentBuilder) syncEnd(k int) int64 { return b.syncs[k-1] + FrameHeader }

// endWrite pads the current write with zeros to a sector boundary.
func (b *segmentBuilder) endWrite() *segmentBuilder {
	b.buf = append(b.buf, make([]byte, AlignSector(b.end())-b.end())...)
	return b
}

// markDurable ends the current write and records that it was synced.
func (b *segmentBuilder) markDurable() *segmentBuilder {
	b.endWrite()
	b.synced = b.end()
	return b
}

func (b *segmentBuilder) offsets() []uint32 {
	offs := make([]uint32, len(b.starts))
	for i, s := range b.starts {
		offs[i] = uint32(s)
	}
	return offs
}

// footerAt is where sealing puts the footer: the sector boundary at or
// after the end of the writes.
func (b *segmentBuilder) footerAt() int64 { return AlignSector(b.end()) }

func (b *segmentBuilder) sealed() []byte {
	file := append(bytes.Clone(b.buf), make([]byte, b.footerAt()-b.end())...)
	return appendFooter(file, b.h, b.footerAt(), b.offsets(), b.times)
}

func (b *segmentBuilder) bytes() []byte { return bytes.Clone(b.buf) }

// resealFrame recomputes the checksum of the frame at the start of f after a
// test changed one of its fields, so only the field check can reject it.
func resealFrame(f []byte, salt uint64) {
	n := int64(binary.LittleEndian.Uint32(f[24:]))
	if FrameHeader+n <= int64(len(f)) {
		binary.LittleEndian.PutUint64(f, checksum(salt, f[8:FrameHeader+n]))
	}
}

func resealHeader(h []byte) {
	binary.LittleEndian.PutUint64(h[32:], checksum(0, h[:32]))
}
