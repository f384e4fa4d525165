package wal

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// storedCodecs scans the segment file at path with the segment package's
// own scanner and returns the codec of each record frame, by index.
func storedCodecs(t *testing.T, path string) map[uint64]segment.Codec {
	t.Helper()
	h, err := segment.OpenHandle(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	codecs := map[uint64]segment.Codec{}
	sc := h.Scan()
	for sc.Next() {
		codecs[sc.Frame().Index] = sc.Frame().Codec
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return codecs
}

// AppendBatch compresses each record on its own, as Append does: records
// that compress are stored compressed, the others as they are.
func TestAppendBatchCompressesEachRecord(t *testing.T) {
	compressible := bytes.Repeat([]byte("journal batch record "), 50)
	incompressible := make([]byte, 1000)
	rand.NewChaCha8([32]byte{1}).Read(incompressible)
	batch := [][]byte{compressible, []byte("short"), incompressible, append([]byte("x"), compressible...)}
	for _, c := range []struct {
		name  string
		opt   Compression
		codec segment.Codec
	}{{"S2", S2, segment.S2}, {"Zstd", Zstd, segment.Zstd}, {"None", NoCompression, segment.None}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, dir, &Options{Compression: c.opt, Logger: quiet})
			first, err := l.AppendBatch(batch)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			codecs := storedCodecs(t, segmentPath(dir, 1))
			for k, rec := range batch {
				want := segment.None
				if len(segment.Compress(c.codec, nil, rec)) < len(rec) && len(rec) >= 64 {
					want = c.codec
				}
				if got := codecs[first+uint64(k)]; got != want {
					t.Errorf("record %d (%d bytes) stored with codec %v, want %v", k, len(rec), got, want)
				}
			}
			if codecs[first] != c.codec {
				t.Errorf("the compressible record is stored with %v, want %v", codecs[first], c.codec)
			}
			l = openT(t, dir, &Options{Logger: quiet})
			defer l.Close()
			r := l.NewReader(first)
			defer r.Close()
			for k, rec := range batch {
				i := first + uint64(k)
				if !r.Next() || r.Index() != i || !bytes.Equal(r.Record(), rec) {
					t.Fatalf("Reader at %d: %d (%v), want the batch's record %d", i, r.Index(), r.Err(), k)
				}
				if got, err := l.Read(i); err != nil || !bytes.Equal(got, rec) {
					t.Fatalf("Read(%d): %v, want the batch's record %d", i, err, k)
				}
			}
		})
	}
}

// Every method that reads or writes the log returns ErrClosed after Close;
// FirstIndex and LastIndex keep reporting the log as it was closed.
func TestErrClosed(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{Logger: quiet})
	appendN(t, l, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := l.NewReader(1)
	defer r.Close()
	_, snapErr := func() (uint64, error) {
		i, rc, err := l.Snapshot()
		if rc != nil {
			rc.Close()
		}
		return i, err
	}()
	calls := map[string]error{
		"Append":        second(l.Append([]byte("x"))),
		"AppendBatch":   second(l.AppendBatch([][]byte{[]byte("x")})),
		"Read":          second(l.Read(1)),
		"Sync":          l.Sync(),
		"TruncateFront": l.TruncateFront(2),
		"TruncateBack":  l.TruncateBack(2),
		"Checkpoint":    l.Checkpoint(2, func(io.Writer) error { return nil }),
		"Snapshot":      snapErr,
		"Close":         l.Close(),
		"Reader.Next":   func() error { r.Next(); return r.Err() }(),
	}
	for name, err := range calls {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if f, g := l.FirstIndex(), l.LastIndex(); f != 1 || g != 3 {
		t.Errorf("after Close the log reports [%d, %d], want [1, 3]", f, g)
	}
}

func second[T any](_ T, err error) error { return err }
