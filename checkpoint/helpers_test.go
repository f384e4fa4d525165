package checkpoint_test

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/vfs"
)

// state generates n bytes of database-like state on the fly (numbered
// lines of letters, about 2:1 compressible with zstd) so that tests and
// benchmarks can stream far more than they could buffer. The same seed
// always gives the same bytes.
type state struct {
	seed uint64
	n    int64

	// Filled in by write: the contents' xxhash64 and the peak heap seen
	// while generating them (sampled every sampleEvery bytes).
	sum      uint64
	peakHeap uint64
}

const sampleEvery = 4 << 20

// write streams the state into w; it is a checkpoint.Write callback.
func (s *state) write(w io.Writer) error {
	rng := rand.NewChaCha8([32]byte{byte(s.seed), byte(s.seed >> 8), byte(s.seed >> 16), byte(s.seed >> 24)})
	buf := make([]byte, 64<<10)
	d := xxhash.New()
	line := uint64(0)
	for left := s.n; left > 0; {
		rng.Read(buf)
		for i := 0; i+64 <= len(buf); i += 64 {
			// "%015x:" line number, 47 letters from a 16-letter
			// alphabet, newline.
			const hexdigits = "0123456789abcdef"
			for j := 14; j >= 0; j-- {
				buf[i+j] = hexdigits[(line>>(4*(14-j)))&0xf]
			}
			buf[i+15] = ':'
			for j := i + 16; j < i+63; j++ {
				buf[j] = 'a' + buf[j]&0x0f
			}
			buf[i+63] = '\n'
			line++
		}
		chunk := buf[:min(int64(len(buf)), left)]
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		d.Write(chunk)
		left -= int64(len(chunk))
		if (s.n-left)%sampleEvery < int64(len(chunk)) {
			s.sample()
		}
	}
	s.sum = d.Sum64()
	return nil
}

func (s *state) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.peakHeap = max(s.peakHeap, ms.HeapInuse)
}

// drain reads r to the end like a careful caller, hashing what it gets and
// sampling the heap. It returns the byte count, the hash and the error
// that ended the read (nil for io.EOF).
func drain(r io.Reader, s *state) (int64, uint64, error) {
	buf := make([]byte, 64<<10)
	d := xxhash.New()
	var n int64
	for {
		k, err := r.Read(buf)
		d.Write(buf[:k])
		n += int64(k)
		if s != nil && n%sampleEvery < int64(k) {
			s.sample()
		}
		if err == io.EOF {
			return n, d.Sum64(), nil
		}
		if err != nil {
			return n, d.Sum64(), err
		}
	}
}

// writeBytes is a Write callback storing b.
func writeBytes(b []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}

// mustWrite writes a snapshot of index holding contents into dir.
func mustWrite(t testing.TB, dir string, index uint64, compress bool, contents []byte) {
	t.Helper()
	if err := checkpoint.Write(vfs.Default, dir, index, checkpoint.WriteOptions{Compress: compress}, writeBytes(contents)); err != nil {
		t.Fatal(err)
	}
}

// load reads the whole snapshot in dir, failing the test on any error.
func load(t testing.TB, dir string) (uint64, []byte) {
	t.Helper()
	index, r, err := checkpoint.Load(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return index, b
}

// loadErr reads the snapshot in dir to the end and returns the error Load
// or the reader returned, and whether it came from opening.
func loadErr(dir string) (err error, atOpen bool) {
	_, r, err := checkpoint.Load(vfs.Default, dir)
	if err != nil {
		return err, true
	}
	defer r.Close()
	_, err = io.Copy(io.Discard, r)
	return err, false
}

func snapshotPath(dir string) string { return filepath.Join(dir, checkpoint.FileName) }

func readSnapshot(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(snapshotPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeSnapshot(t testing.TB, dir string, b []byte) {
	t.Helper()
	if err := os.WriteFile(snapshotPath(dir), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Offsets of the trailer's fields, from the end of the file.
const (
	trlStored  = checkpoint.TrailerSize
	trlSize    = checkpoint.TrailerSize - 8
	trlSum     = checkpoint.TrailerSize - 16
	trlMetaSum = checkpoint.TrailerSize - 24
	trlEnd     = checkpoint.TrailerSize - 32
)

// field returns the 8-byte little-endian field at from bytes before the end.
func field(b []byte, fromEnd int) []byte { return b[len(b)-fromEnd : len(b)-fromEnd+8] }

// reseal recomputes the contents sum and the meta sum of a snapshot image,
// as a writer of the modified fields would have, so a test can build files
// that are damaged or foreign in one precise way only.
func reseal(b []byte) []byte {
	body := b[checkpoint.HeaderSize : len(b)-checkpoint.TrailerSize]
	binary.LittleEndian.PutUint64(field(b, trlSum), xxhash.Sum64(body))
	d := xxhash.New()
	d.Write(b[:checkpoint.HeaderSize])
	d.Write(b[len(b)-checkpoint.TrailerSize : len(b)-checkpoint.TrailerSize+24])
	binary.LittleEndian.PutUint64(field(b, trlMetaSum), d.Sum64())
	return b
}

// temps lists the temporary files in dir.
func temps(t testing.TB, dir string) []string {
	t.Helper()
	names, err := vfs.Default.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(names, func(n string) bool { return !strings.HasPrefix(n, vfs.TempPrefix) })
}

var errBoom = errors.New("boom")

// image builds a sealed snapshot file image by hand, for files this
// package would not write itself.
func image(flags uint32, index uint64, body []byte, size int64) []byte {
	b := []byte(checkpoint.Magic)
	b = binary.LittleEndian.AppendUint32(b, checkpoint.Version)
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint64(b, index)
	b = append(b, body...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(body)))
	b = binary.LittleEndian.AppendUint64(b, uint64(size))
	b = append(b, make([]byte, 16)...) // sums, filled by reseal
	b = append(b, checkpoint.EndMagic...)
	return reseal(b)
}
