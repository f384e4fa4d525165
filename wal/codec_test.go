package wal

import (
	"bytes"
	"encoding/binary"
	"maps"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/segment"
)

// One log, written by sessions that each chose a different Compression
// (and a crash between two of them): every record stays readable whatever
// the session reading it chose, a session appends after records of another
// codec in the segment it resumes, and each record is stored the way its
// own session chose (or raw, when that did not help).
func TestCompressionChangesBetweenSessions(t *testing.T) {
	rng := seedtest.Rand(t)
	f := newFixture(t, MinSegmentSize)
	var recs [][]byte
	var want []segment.Codec // the codec each record must carry on disk
	sessions := []Compression{Zstd, NoCompression, S2, Zstd, S2, NoCompression}
	for s, c := range sessions {
		f.opts.Compression = c
		l := f.open()
		checkRecords(t, l, recs)
		for range 40 + rng.IntN(80) {
			rec := bytes.Repeat([]byte{byte('a' + s)}, 64+rng.IntN(2000))
			codec := c.codec()
			if rng.IntN(3) == 0 { // incompressible: stored raw under every codec
				for i := range rec {
					rec[i] = byte(rng.Uint32())
				}
				codec = segment.None
			}
			if _, err := l.Append(rec); err != nil {
				t.Fatal(err)
			}
			recs, want = append(recs, rec), append(want, codec)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if s == 2 {
			f.unclose() // as a crash leaves it: the next session scans for its end
		}
	}
	l := openT(t, f.dir, &Options{Logger: quiet})
	defer l.Close()
	checkRecords(t, l, recs)
	got := map[uint64]segment.Codec{}
	for _, name := range listDir(t, f.dir) {
		if _, ok := segment.ParseName(name); ok {
			maps.Copy(got, storedCodecs(t, filepath.Join(f.dir, name)))
		}
	}
	for i, c := range want {
		if got[uint64(i+1)] != c {
			t.Fatalf("record %d stored with codec %v, want %v", i+1, got[uint64(i+1)], c)
		}
	}
}

// checkRecords checks that l holds exactly recs, from index 1.
func checkRecords(t *testing.T, l *Log, recs [][]byte) {
	t.Helper()
	if l.FirstIndex() != 1 || l.LastIndex() != uint64(len(recs)) {
		t.Fatalf("log holds [%d, %d], want [1, %d]", l.FirstIndex(), l.LastIndex(), len(recs))
	}
	for i, rec := range recs {
		if got, err := l.Read(uint64(i + 1)); err != nil || !bytes.Equal(got, rec) {
			t.Fatalf("Read(%d) = %d bytes, %v; want the %d bytes appended", i+1, len(got), err, len(rec))
		}
	}
}

// A record of MaxRecordSize goes in and comes out with compression on:
// compressible (stored compressed) or not (stored raw). Each codec gets
// one of the two at random, to keep the test near a second. Only on amd64
// and arm64: two such records and their compressed copies do not fit a
// 32-bit address space, and CI runs s390x under emulation, where writing
// them takes minutes; the race detector makes it 20 s.
func TestLargestRecordWithCompression(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" || raceEnabled {
		t.Skip("a 256 MiB record is for native 64-bit runs without -race (20 s with it)")
	}
	rng := seedtest.Rand(t)
	for _, c := range []Compression{S2, Zstd} {
		t.Run(c.codec().String(), func(t *testing.T) {
			dir := t.TempDir()
			rec, stored := bytes.Repeat([]byte("journal "), MaxRecordSize/8), c.codec()
			if rng.IntN(2) == 0 {
				for i := 0; i < len(rec); i += 8 {
					binary.LittleEndian.PutUint64(rec[i:], rng.Uint64())
				}
				stored = segment.None
			}
			l := openT(t, dir, &Options{Compression: c, NoSync: true, Logger: quiet})
			if _, err := l.Append(rec); err != nil {
				t.Fatalf("Append of %d bytes: %v", len(rec), err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openT(t, dir, &Options{Logger: quiet})
			defer l.Close()
			if got, err := l.Read(1); err != nil || !bytes.Equal(got, rec) {
				t.Fatalf("Read(1) = %d bytes, %v", len(got), err)
			}
			if got := storedCodecs(t, segmentPath(dir, 1))[1]; got != stored {
				t.Fatalf("stored with codec %v, want %v", got, stored)
			}
		})
	}
}
