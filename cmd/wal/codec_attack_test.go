package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/wal"
)

// A compressed frame whose checksum is valid but whose payload lies, as a
// hostile or buggy writer would leave it: the frame checksum is recomputed
// over the forged bytes (xxhash64 seeded with the segment's salt over
// bytes [8, 32+n) of the frame), so only decoding can catch the lie. Each
// case must come out as a clear error (ErrCorrupt from Read and from a
// Reader, damage from verify), never a wrong record, a panic, a hang or an
// allocation far beyond the frame.
func TestForgedCompressedFrames(t *testing.T) {
	const victim = 5 // a record in the middle of the first (sealed) segment
	type forge func(codec byte, p []byte) (byte, []byte)
	withLength := func(n uint32) forge {
		return func(c byte, p []byte) (byte, []byte) { binary.LittleEndian.PutUint32(p, n); return c, p }
	}
	garbage := func(c byte, p []byte) (byte, []byte) {
		for i := 4; i < len(p); i++ {
			p[i] = byte(i*131 + 7)
		}
		return c, p
	}
	// zstdWindow replaces the payload by a zstd frame whose window
	// descriptor asks for 2^(10+exp) bytes, with no content size, and one
	// raw block of the record's first bytes.
	zstdWindow := func(exp byte) forge {
		return func(c byte, p []byte) (byte, []byte) {
			raw := p[4:][:min(16, len(p)-4)]
			f := binary.LittleEndian.AppendUint32(nil, uint32(len(raw)))
			f = append(f, 0x28, 0xb5, 0x2f, 0xfd, 0x00, exp<<3)
			bh := uint32(len(raw))<<3 | 1
			f = append(f, byte(bh), byte(bh>>8), byte(bh>>16))
			f = append(f, raw...)
			return c, append(f, make([]byte, len(p)-len(f))...) // same frame length; the zeros are trailing garbage
		}
	}
	cases := []struct {
		name  string
		codec wal.Compression
		forge forge
	}{
		{"S2ClaimsMaxRecordSize", wal.S2, withLength(segment.MaxRecordSize)},
		{"ZstdClaimsMaxRecordSize", wal.Zstd, withLength(segment.MaxRecordSize)},
		{"S2ClaimsFourGiB", wal.S2, withLength(^uint32(0))},
		{"ZstdClaimsFourGiB", wal.Zstd, withLength(^uint32(0))},
		{"S2ClaimsOneMore", wal.S2, func(c byte, p []byte) (byte, []byte) {
			return withLength(binary.LittleEndian.Uint32(p)+1)(c, p)
		}},
		{"ZstdClaimsOneLess", wal.Zstd, func(c byte, p []byte) (byte, []byte) {
			return withLength(binary.LittleEndian.Uint32(p)-1)(c, p)
		}},
		{"S2Garbage", wal.S2, garbage},
		{"ZstdGarbage", wal.Zstd, garbage},
		{"S2PayloadMarkedZstd", wal.S2, func(_ byte, p []byte) (byte, []byte) { return byte(segment.Zstd), p }},
		{"ZstdPayloadMarkedS2", wal.Zstd, func(_ byte, p []byte) (byte, []byte) { return byte(segment.S2), p }},
		{"ZstdWindowOf1TiB", wal.Zstd, zstdWindow(30)},
		{"ZstdWindowOf2GiB", wal.Zstd, zstdWindow(21)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := compressedLog(t, tc.codec, 300)
			path, off := seg(dir, 1), recordOffset(t, seg(dir, 1), victim)
			forgeFrame(t, path, off, tc.forge)
			wantReadsRefuse(t, dir, victim)
			r := want(t, 1, "verify", "--json", dir)
			j := decodeJSON(t, r.stdout)
			damage, _ := j["damage"].([]any)
			if j["status"] != "damaged" || len(damage) != 1 || damage[0].(map[string]any)["index"] != float64(victim) {
				t.Fatalf("verify --json: want one damaged record, %d: %s", victim, r.stdout)
			}
		})
	}
}

// An unknown codec byte on a record frame, or any codec on a footer or a
// sync frame, makes the frame invalid. In a sealed segment nothing reads
// the frames until a Read, which must refuse with ErrCorrupt as for a
// frame whose checksum fails, and verify reports the damage; a sync frame
// followed by durable frames makes Open refuse the log, naming the file.
func TestForgedCodecBytes(t *testing.T) {
	for _, codec := range []byte{3, 255} {
		t.Run(fmt.Sprintf("Record%d", codec), func(t *testing.T) {
			dir := compressedLog(t, wal.Zstd, 300)
			path := seg(dir, 1)
			forgeFrame(t, path, recordOffset(t, path, 5), func(byte, []byte) (byte, []byte) { return codec, nil })
			wantReadsRefuse(t, dir, 5)
			want(t, 1, "verify", dir)
		})
	}
	for _, codec := range []byte{1, 2, 255} {
		t.Run(fmt.Sprintf("Footer%d", codec), func(t *testing.T) {
			dir := compressedLog(t, wal.S2, 300)
			path := seg(dir, 1)
			forgeFrame(t, path, footerOffset(t, path), func(byte, []byte) (byte, []byte) { return codec, nil })
			r := want(t, 1, "verify", dir)
			if !strings.Contains(r.stdout, "bad codec") || !strings.Contains(r.stdout, "--salvage") {
				t.Errorf("verify does not name the bad codec or the salvage:\n%s", r.stdout)
			}
			wantReadsRefuse(t, dir, 1)
		})
		t.Run(fmt.Sprintf("Sync%d", codec), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			o := logOptions()
			o.Compression, o.NoSync = wal.S2, true
			l, err := wal.Open(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 20; i++ {
				if _, err := l.Append(record(i)); err != nil {
					t.Fatal(err)
				}
				if i == 10 {
					if err := l.Sync(); err != nil { // writes a sync frame after record 10
						t.Fatal(err)
					}
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			path := seg(dir, 1)
			off := recordOffset(t, path, 10) // from the footer, before it is lifted
			unsealNewest(t, dir)             // as a crash leaves it: Open scans the frames
			forgeFrame(t, path, syncFrameAfter(t, path, off), func(byte, []byte) (byte, []byte) { return codec, nil })
			wantDamage(t, dir, path)
		})
	}
}

// syncFrameAfter returns the offset of the first sync frame after the
// frame at off in path.
func syncFrameAfter(t *testing.T, path string, off int64) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off += segment.FrameAlign; off+segment.FrameHeader <= int64(len(b)); off += segment.FrameAlign {
		if binary.LittleEndian.Uint64(b[off:]) != 0 && b[off+28] == byte(segment.TypeSync) && binary.LittleEndian.Uint32(b[off+24:]) == 0 {
			return off
		}
	}
	t.Fatalf("no sync frame after offset %d in %s", off, path)
	return 0
}

// compressedLog writes records 1..n, compressible, under codec c.
func compressedLog(t *testing.T, c wal.Compression, n int) string {
	t.Helper()
	o := logOptions()
	o.Compression = c
	return makeLogWith(t, o, n)
}

// forgeFrame rewrites the frame at off in path: forge gets its codec byte
// and a copy of its payload and returns the new ones (a nil payload keeps
// the old; a new one must have the same length). The checksum is then
// computed as package segment does, so the frame stays valid as a frame.
func forgeFrame(t *testing.T, path string, off int64, forge func(codec byte, p []byte) (byte, []byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fr := b[off:]
	n := int(binary.LittleEndian.Uint32(fr[24:]))
	p := append([]byte(nil), fr[segment.FrameHeader:segment.FrameHeader+n]...)
	codec, forged := forge(fr[29], p)
	if forged == nil {
		forged = p
	}
	if len(forged) != n {
		t.Fatalf("forge changed the payload length from %d to %d", n, len(forged))
	}
	fr[29] = codec
	copy(fr[segment.FrameHeader:], forged)
	salt := binary.LittleEndian.Uint64(b[24:])
	d := xxhash.NewWithSeed(salt)
	d.Write(fr[8 : segment.FrameHeader+n])
	binary.LittleEndian.PutUint64(fr, d.Sum64())
	writeAt(t, path, off, fr[:segment.FrameHeader+n])
}

// wantReadsRefuse opens the log (the scan never decompresses, so it
// opens) and checks that Read and a Reader refuse record bad with
// ErrCorrupt, having returned the records before it intact, and that
// neither allocated more than a few MiB doing so.
func wantReadsRefuse(t *testing.T, dir string, bad uint64) {
	t.Helper()
	l, err := wal.Open(dir, logOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer l.Close()
	var rec []byte
	allocated := bytesAllocatedBy(func() { rec, err = l.Read(bad) })
	if !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("Read(%d) = %d bytes, %v; want ErrCorrupt", bad, len(rec), err)
	}
	if allocated > 4<<20 {
		t.Errorf("Read(%d) allocated %d bytes to refuse a forged frame", bad, allocated)
	}
	r := l.NewReader(1)
	defer r.Close()
	next := uint64(1)
	allocated = bytesAllocatedBy(func() {
		for r.Next() {
			if r.Index() != next || string(r.Record()) != string(record(int(next))) {
				t.Fatalf("Reader returned record %d = %.20q, want record %d", r.Index(), r.Record(), next)
			}
			next++
		}
	})
	if !errors.Is(r.Err(), wal.ErrCorrupt) || next != bad {
		t.Fatalf("Reader stopped after %d records with %v; want ErrCorrupt at %d", next-1, r.Err(), bad)
	}
	if allocated > 16<<20 {
		t.Errorf("a Reader over %d records allocated %d bytes", bad, allocated)
	}
}

// wantDamage checks that Open refuses the log with ErrCorrupt naming path,
// and that verify finds it damaged.
func wantDamage(t *testing.T, dir, path string) {
	t.Helper()
	l, err := wal.Open(dir, logOptions())
	if err == nil {
		l.Close()
		t.Fatal("Open succeeded on a log with an invalid frame before durable ones")
	}
	if !errors.Is(err, wal.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(path)) {
		t.Fatalf("Open: %v; want ErrCorrupt naming %s", err, filepath.Base(path))
	}
	want(t, 1, "verify", dir)
}

func bytesAllocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
