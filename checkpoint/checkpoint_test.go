package checkpoint_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

func TestRoundTrip(t *testing.T) {
	random := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{1}).Read(random)
	text := bytes.Repeat([]byte("key=value; "), 200_000)
	tests := []struct {
		name     string
		index    uint64
		contents []byte
	}{
		{"Empty", 1, nil},
		{"Hello", 42, []byte("hello")},
		{"TextSeveralZstdBlocks", 1 << 40, text},
		{"Incompressible", 7, random},
		{"MaxIndex", ^uint64(0), []byte("x")},
	}
	for _, tt := range tests {
		for _, compress := range []bool{false, true} {
			name := tt.name + map[bool]string{false: "/Stored", true: "/Zstd"}[compress]
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				mustWrite(t, dir, tt.index, compress, tt.contents)
				index, got := load(t, dir)
				if index != tt.index || !bytes.Equal(got, tt.contents) {
					t.Fatalf("Load = index %d, %d bytes; want index %d, %d bytes", index, len(got), tt.index, len(tt.contents))
				}
				h, err := checkpoint.Verify(vfs.Default, dir)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				fi, err := os.Stat(snapshotPath(dir))
				if err != nil {
					t.Fatal(err)
				}
				want := checkpoint.Header{
					Version: checkpoint.Version, Index: tt.index, Compressed: compress,
					Size: int64(len(tt.contents)), StoredSize: fi.Size() - 64, FileSize: fi.Size(),
					ModTime: fi.ModTime(),
				}
				if h != want {
					t.Errorf("Verify header = %+v, want %+v", h, want)
				}
				if rh, err := checkpoint.ReadHeader(vfs.Default, dir); err != nil || rh != want {
					t.Errorf("ReadHeader = %+v, %v; want %+v", rh, err, want)
				}
				if !compress && h.StoredSize != h.Size {
					t.Errorf("stored contents take %d bytes, want %d", h.StoredSize, h.Size)
				}
				if compress && tt.name == "TextSeveralZstdBlocks" && h.StoredSize > h.Size/10 {
					t.Errorf("zstd stored %d bytes of repetitive text in %d", h.Size, h.StoredSize)
				}
				if ts := temps(t, dir); len(ts) != 0 {
					t.Errorf("temporary files left: %q", ts)
				}
			})
		}
	}
}

func TestReplaceKeepsNewest(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, 10, false, []byte("old"))
	mustWrite(t, dir, 20, true, []byte("new"))
	if index, got := load(t, dir); index != 20 || string(got) != "new" {
		t.Fatalf("Load = %d %q, want 20 \"new\"", index, got)
	}
}

// TestGoldenMatchesDoc checks the worked example of the package doc
// against what Write produces, so the documented format cannot drift.
func TestGoldenMatchesDoc(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, example, ok := strings.Cut(string(doc), "// # Worked example\n")
	example, _, ok2 := strings.Cut(example, "// # ")
	if !ok || !ok2 {
		t.Fatal("doc.go has no worked example section")
	}
	var want []byte
	for _, line := range strings.Split(example, "\n") {
		hexPart, _, _ := strings.Cut(strings.TrimPrefix(line, "//\t"), "   ")
		if !strings.HasPrefix(line, "//\t") {
			continue
		}
		for _, tok := range strings.Fields(hexPart) {
			var v byte
			for _, c := range []byte(tok) {
				v = v<<4 | byte(strings.IndexByte("0123456789abcdef", c))
			}
			want = append(want, v)
		}
	}
	if len(want) != 69 {
		t.Fatalf("parsed %d bytes from the doc's example, want 69", len(want))
	}
	dir := t.TempDir()
	mustWrite(t, dir, 42, false, []byte("hello"))
	if got := readSnapshot(t, dir); !bytes.Equal(got, want) {
		t.Fatalf("snapshot bytes differ from the doc:\n got %x\nwant %x", got, want)
	}
}

// TestDamage damages a valid snapshot in one precise way per case and
// checks that it is refused, with the right sentinel, at the right time.
func TestDamage(t *testing.T) {
	contents := make([]byte, 300<<10)
	rand.NewChaCha8([32]byte{2}).Read(contents[:100<<10]) // part incompressible, part zeros
	type when int
	const (
		atOpen when = iota // Load (and ReadHeader) refuse the file
		atRead             // Load succeeds; reading fails before or at the end
		atEOF              // every byte is delivered, then the end is an error
	)
	flip := func(off func(b []byte) int) func([]byte) []byte {
		return func(b []byte) []byte { b[off(b)] ^= 0x10; return b }
	}
	at := func(i int) func([]byte) int { return func([]byte) int { return i } }
	fromEnd := func(i int) func([]byte) int { return func(b []byte) int { return len(b) - i } }
	cut := func(n func([]byte) int) func([]byte) []byte { return func(b []byte) []byte { return b[:n(b)] } }
	setU32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return reseal(b) }
	}
	addToField := func(fe int, d int64) func([]byte) []byte {
		return func(b []byte) []byte {
			f := field(b, fe)
			binary.LittleEndian.PutUint64(f, uint64(int64(binary.LittleEndian.Uint64(f))+d))
			return reseal(b)
		}
	}
	tests := []struct {
		name     string
		compress bool // only this mode; both if !onlyOne
		onlyOne  bool
		mutate   func([]byte) []byte
		want     error
		when     when
	}{
		{name: "TruncatedToEmpty", mutate: cut(at(0)), want: errs.ErrCorrupt},
		{name: "TruncatedInsideMagic", mutate: cut(at(5)), want: errs.ErrCorrupt},
		{name: "TruncatedInsideHeader", mutate: cut(at(20)), want: errs.ErrCorrupt},
		{name: "TruncatedAfterHeader", mutate: cut(at(checkpoint.HeaderSize)), want: errs.ErrCorrupt},
		{name: "TruncatedInsideContents", mutate: cut(func(b []byte) int { return len(b) / 2 }), want: errs.ErrCorrupt},
		{name: "TruncatedBeforeTrailer", mutate: cut(fromEnd(checkpoint.TrailerSize)), want: errs.ErrCorrupt},
		{name: "TruncatedInsideTrailer", mutate: cut(fromEnd(20)), want: errs.ErrCorrupt},
		{name: "TruncatedByOneByte", mutate: cut(fromEnd(1)), want: errs.ErrCorrupt},
		{name: "ExtendedByZeros", mutate: func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, want: errs.ErrCorrupt},
		{name: "BitFlipInMagic", mutate: flip(at(3)), want: errs.ErrCorrupt},
		{name: "BitFlipInFlags", mutate: flip(at(13)), want: errs.ErrCorrupt},
		{name: "BitFlipInIndex", mutate: flip(at(16)), want: errs.ErrCorrupt},
		{name: "BitFlipInStoredLength", mutate: flip(fromEnd(trlStored)), want: errs.ErrCorrupt},
		{name: "BitFlipInContentLength", mutate: flip(fromEnd(trlSize)), want: errs.ErrCorrupt},
		{name: "BitFlipInContentsSum", mutate: flip(fromEnd(trlSum)), want: errs.ErrCorrupt},
		{name: "BitFlipInMetaSum", mutate: flip(fromEnd(trlMetaSum)), want: errs.ErrCorrupt},
		{name: "BitFlipInEndMagic", mutate: flip(fromEnd(1)), want: errs.ErrCorrupt},
		{name: "BitFlipInStoredContents", onlyOne: true, mutate: flip(at(checkpoint.HeaderSize + 1000)), want: errs.ErrCorrupt, when: atEOF},
		{name: "BitFlipInCompressedContents", onlyOne: true, compress: true, mutate: flip(func(b []byte) int { return len(b) / 2 }), want: errs.ErrCorrupt, when: atRead},
		{name: "ZeroedStoredContents", onlyOne: true, mutate: func(b []byte) []byte {
			clear(b[checkpoint.HeaderSize : len(b)-checkpoint.TrailerSize])
			return b
		}, want: errs.ErrCorrupt, when: atEOF},
		{name: "ResealedGarbageAsZstd", onlyOne: true, compress: true, mutate: func(b []byte) []byte {
			copy(b[checkpoint.HeaderSize:], bytes.Repeat([]byte("garbage!"), 100))
			return reseal(b)
		}, want: errs.ErrCorrupt, when: atRead},
		{name: "ResealedContentLengthTooSmall", onlyOne: true, compress: true, mutate: addToField(trlSize, -1), want: errs.ErrCorrupt, when: atRead},
		{name: "ResealedContentLengthTooLarge", onlyOne: true, compress: true, mutate: addToField(trlSize, +1), want: errs.ErrCorrupt, when: atRead},
		{name: "ResealedStoredLengthDisagrees", mutate: addToField(trlStored, -1), want: errs.ErrCorrupt},
		{name: "ResealedIndexZero", mutate: func(b []byte) []byte { clear(b[16:24]); return reseal(b) }, want: errs.ErrCorrupt},
		{name: "FutureVersion", mutate: setU32(8, checkpoint.Version+1), want: errs.ErrFormat},
		{name: "BitFlipInVersion", mutate: flip(at(8)), want: errs.ErrFormat},
		{name: "UnknownFlag", mutate: setU32(12, 1<<7), want: errs.ErrFormat},
		{name: "ForeignText", mutate: func([]byte) []byte { return []byte("state: {\"k\": 1}\n") }, want: errs.ErrFormat},
		{name: "ForeignOneByte", mutate: func([]byte) []byte { return []byte("x") }, want: errs.ErrFormat},
		{name: "ForeignSegment", mutate: func([]byte) []byte {
			seg := []byte(segment.Magic) // a segment's header starts so
			return append(seg, make([]byte, 4096)...)
		}, want: errs.ErrFormat},
		{name: "SplicedFromTwoSnapshots", mutate: func(b []byte) []byte {
			// The header of a snapshot of another index on this body and
			// trailer: the meta sum binds them.
			binary.LittleEndian.PutUint64(b[16:], 99)
			return b
		}, want: errs.ErrCorrupt},
	}
	for _, tt := range tests {
		for _, compress := range []bool{false, true} {
			if tt.onlyOne && compress != tt.compress {
				continue
			}
			name := tt.name + map[bool]string{false: "/Stored", true: "/Zstd"}[compress]
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				mustWrite(t, dir, 5, compress, contents)
				writeSnapshot(t, dir, tt.mutate(readSnapshot(t, dir)))

				_, r, err := checkpoint.Load(vfs.Default, dir)
				if tt.when == atOpen {
					if !errors.Is(err, tt.want) {
						t.Fatalf("Load error = %v, want %v", err, tt.want)
					}
					if _, err := checkpoint.ReadHeader(vfs.Default, dir); !errors.Is(err, tt.want) {
						t.Errorf("ReadHeader error = %v, want %v", err, tt.want)
					}
					if _, err := checkpoint.Verify(vfs.Default, dir); !errors.Is(err, tt.want) {
						t.Errorf("Verify error = %v, want %v", err, tt.want)
					}
					t.Log(err)
					return
				}
				if err != nil {
					t.Fatalf("Load refused a file whose damage only reading can find: %v", err)
				}
				defer r.Close()
				n, _, err := drain(r, nil)
				if !errors.Is(err, tt.want) {
					t.Fatalf("reading to the end gave %v after %d bytes, want %v", err, n, tt.want)
				}
				if tt.when == atEOF && n != int64(len(contents)) {
					t.Errorf("error came after %d bytes, want at the end (%d)", n, len(contents))
				}
				if _, err2 := r.Read(make([]byte, 10)); err2 != err {
					t.Errorf("Read after the error = %v, want the same error again", err2)
				}
				if _, verr := checkpoint.Verify(vfs.Default, dir); !errors.Is(verr, tt.want) {
					t.Errorf("Verify error = %v, want %v", verr, tt.want)
				}
				t.Log(err)
			})
		}
	}
}

// TestTruncatedEverywhere cuts a small snapshot at every length short of
// complete: no prefix of a snapshot is ever a valid snapshot.
func TestTruncatedEverywhere(t *testing.T) {
	for _, compress := range []bool{false, true} {
		dir := t.TempDir()
		mustWrite(t, dir, 3, compress, bytes.Repeat([]byte("abc"), 100))
		full := readSnapshot(t, dir)
		for n := range len(full) {
			writeSnapshot(t, dir, full[:n])
			if err, _ := loadErr(dir); !errors.Is(err, errs.ErrCorrupt) {
				t.Fatalf("compress=%v, cut at %d of %d: error %v, want ErrCorrupt", compress, n, len(full), err)
			}
		}
	}
}

func TestCorruptionErrorNamesFileAndOffset(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, 3, false, []byte("contents"))
	b := readSnapshot(t, dir)
	writeSnapshot(t, dir, b[:len(b)-1])
	err, _ := loadErr(dir)
	var ce *errs.CorruptionError
	if !errors.As(err, &ce) || ce.Path != snapshotPath(dir) {
		t.Fatalf("error %v (%T) is not a *errs.CorruptionError naming %s", err, err, snapshotPath(dir))
	}
}

func TestNoSnapshot(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := checkpoint.Load(vfs.Default, dir); !errors.Is(err, checkpoint.ErrNoSnapshot) {
		t.Errorf("Load: %v, want ErrNoSnapshot", err)
	}
	if _, err := checkpoint.ReadHeader(vfs.Default, dir); !errors.Is(err, checkpoint.ErrNoSnapshot) {
		t.Errorf("ReadHeader: %v, want ErrNoSnapshot", err)
	}
	if _, err := checkpoint.Verify(vfs.Default, dir); !errors.Is(err, checkpoint.ErrNoSnapshot) {
		t.Errorf("Verify: %v, want ErrNoSnapshot", err)
	}
	// A leftover temporary file is not a snapshot.
	os.WriteFile(filepath.Join(dir, vfs.TempPrefix+checkpoint.FileName+"-1"), []byte("partial"), 0o644)
	if _, _, err := checkpoint.Load(vfs.Default, dir); !errors.Is(err, checkpoint.ErrNoSnapshot) {
		t.Errorf("Load with only a temporary file: %v, want ErrNoSnapshot", err)
	}
}

// TestFailedWriteKeepsPrevious: whatever stops a Write before its rename,
// the previous snapshot stays the valid one and no temporary file is left.
func TestFailedWriteKeepsPrevious(t *testing.T) {
	tests := []struct {
		name  string
		write func(w io.Writer) error
		want  error // nil: Write must panic
	}{
		{"CallbackFailsAtOnce", func(io.Writer) error { return errBoom }, errBoom},
		{"CallbackFailsMidway", func(w io.Writer) error {
			w.Write(bytes.Repeat([]byte("partial "), 1<<17))
			return errBoom
		}, errBoom},
		{"CallbackPanics", func(w io.Writer) error {
			w.Write([]byte("partial"))
			panic(errBoom)
		}, nil},
	}
	for _, tt := range tests {
		for _, compress := range []bool{false, true} {
			t.Run(tt.name+map[bool]string{false: "/Stored", true: "/Zstd"}[compress], func(t *testing.T) {
				dir := t.TempDir()
				mustWrite(t, dir, 7, false, []byte("previous"))
				err := func() (err error) {
					defer func() {
						if p := recover(); p != nil {
							err = p.(error)
						}
					}()
					return checkpoint.Write(vfs.Default, dir, 8, checkpoint.WriteOptions{Compress: compress}, tt.write)
				}()
				if !errors.Is(err, errBoom) {
					t.Fatalf("Write error = %v, want %v", err, errBoom)
				}
				if index, got := load(t, dir); index != 7 || string(got) != "previous" {
					t.Errorf("after a failed Write: index %d %q, want 7 \"previous\"", index, got)
				}
				if ts := temps(t, dir); len(ts) != 0 {
					t.Errorf("temporary files left: %q", ts)
				}
			})
		}
	}
}

func TestWriteIndexZero(t *testing.T) {
	dir := t.TempDir()
	if err := checkpoint.Write(vfs.Default, dir, 0, checkpoint.WriteOptions{}, writeBytes(nil)); !errors.Is(err, errs.ErrOutOfRange) {
		t.Fatalf("Write with index 0: %v, want ErrOutOfRange (wal.ErrOutOfRange)", err)
	}
	if _, err := checkpoint.ReadHeader(vfs.Default, dir); !errors.Is(err, checkpoint.ErrNoSnapshot) {
		t.Fatalf("ReadHeader: %v, want ErrNoSnapshot", err)
	}
}

// TestPreviousValidUntilRename looks at the directory from inside a Write:
// the new snapshot exists only as a temporary file, and the previous one
// still loads.
func TestPreviousValidUntilRename(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, 1, false, []byte("one"))
	err := checkpoint.Write(vfs.Default, dir, 2, checkpoint.WriteOptions{}, func(w io.Writer) error {
		w.Write([]byte("two"))
		if ts := temps(t, dir); len(ts) != 1 || !strings.HasPrefix(ts[0], vfs.TempPrefix+checkpoint.FileName+"-") {
			t.Errorf("temporary files during Write: %q", ts)
		}
		if index, got := load(t, dir); index != 1 || string(got) != "one" {
			t.Errorf("during Write: %d %q, want 1 \"one\"", index, got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if index, got := load(t, dir); index != 2 || string(got) != "two" {
		t.Errorf("after Write: %d %q, want 2 \"two\"", index, got)
	}
}

func TestReaderContract(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, 9, true, []byte("abc"))
	_, r, err := checkpoint.Load(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || string(b) != "abc" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	if n, err := r.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Errorf("Read after the end = %d, %v; want 0, io.EOF", n, err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	_, r, err = checkpoint.Load(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := r.Read(make([]byte, 4)); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Read after Close = %v, want fs.ErrClosed", err)
	}
}

// TestLargeSnapshotIsStreamed writes and loads 64 MiB generated on the fly
// and checks that neither direction allocates anything near its size.
func TestLargeSnapshotIsStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 64 MiB twice")
	}
	const size = 64 << 20
	const bound = 16 << 20
	for _, compress := range []bool{false, true} {
		t.Run(map[bool]string{false: "Stored", true: "Zstd"}[compress], func(t *testing.T) {
			dir := t.TempDir()
			st := &state{seed: 1, n: size}

			base, before := memStats()
			err := checkpoint.Write(vfs.Default, dir, 100, checkpoint.WriteOptions{Compress: compress}, st.write)
			_, after := memStats()
			if err != nil {
				t.Fatal(err)
			}
			writeAlloc, writePeak := after.TotalAlloc-before.TotalAlloc, st.peakHeap-min(st.peakHeap, base)

			st.peakHeap = 0
			base, before = memStats()
			index, r, err := checkpoint.Load(vfs.Default, dir)
			if err != nil {
				t.Fatal(err)
			}
			n, sum, err := drain(r, st)
			r.Close()
			_, after = memStats()
			if err != nil || index != 100 || n != size || sum != st.sum {
				t.Fatalf("Load: index %d, %d bytes, sum %x, %v; want 100, %d bytes, sum %x", index, n, sum, err, size, st.sum)
			}
			loadAlloc, loadPeak := after.TotalAlloc-before.TotalAlloc, st.peakHeap-min(st.peakHeap, base)

			h, _ := checkpoint.ReadHeader(vfs.Default, dir)
			t.Logf("file %.1f MiB; write: allocated %.2f MiB, heap peak +%.2f MiB; load: allocated %.2f MiB, heap peak +%.2f MiB",
				mib(uint64(h.FileSize)), mib(writeAlloc), mib(writePeak), mib(loadAlloc), mib(loadPeak))
			for what, v := range map[string]uint64{"write allocated": writeAlloc, "write heap peak": writePeak, "load allocated": loadAlloc, "load heap peak": loadPeak} {
				if v > bound {
					t.Errorf("%s %.1f MiB for a %d MiB snapshot, want < %d MiB", what, mib(v), size>>20, bound>>20)
				}
			}
		})
	}
}

// memStats collects garbage and returns the heap in use and the stats.
func memStats() (uint64, runtime.MemStats) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// TestZstdStreams covers zstd streams this package does not write but
// might meet: several frames are fine, a window over 8 MiB is refused.
func TestZstdStreams(t *testing.T) {
	frame := func(b []byte, opts ...zstd.EOption) []byte {
		enc, err := zstd.NewWriter(nil, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return enc.EncodeAll(b, nil)
	}
	streamed := func(b []byte, window int) []byte {
		var buf bytes.Buffer
		enc, err := zstd.NewWriter(&buf, zstd.WithWindowSize(window))
		if err != nil {
			t.Fatal(err)
		}
		enc.Write(b)
		enc.Close()
		return buf.Bytes()
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB
	tests := []struct {
		name string
		body []byte
		size int64
		want []byte
		err  error
	}{
		{"TwoFrames", append(frame([]byte("hello, ")), frame([]byte("world"))...), 12, []byte("hello, world"), nil},
		{"Window8MiB", streamed(big, 8<<20), int64(len(big)), big, nil},
		{"Window16MiB", streamed(big, 16<<20), int64(len(big)), nil, errs.ErrCorrupt},
		{"TrailingGarbage", append(frame([]byte("x")), "garbage!"...), 1, nil, errs.ErrCorrupt},
		{"FrameCutShort", frame(big)[:100], int64(len(big)), nil, errs.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSnapshot(t, dir, image(1, 3, tt.body, tt.size))
			_, r, err := checkpoint.Load(vfs.Default, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if !errors.Is(err, tt.err) || (tt.err == nil && !bytes.Equal(got, tt.want)) {
				t.Fatalf("read %d bytes, %v; want %d bytes, %v", len(got), err, len(tt.want), tt.err)
			}
			t.Log(err)
		})
	}
}
