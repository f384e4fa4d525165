package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// This file holds the small helpers the recovery scenarios are written
// with: a fixture that owns a log directory and remembers every record it
// appended, a frame walker that reads the on-disk layout independently of
// package segment, and byte-level mutations of files.

// payload is the content of record i with the given size. Every byte is
// non-zero, so the end of a record's payload is the end of its non-zero
// bytes, and the content depends on the index, so a record read back from
// the wrong place never compares equal.
func payload(i uint64, size int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte('a' + (int(i)*7+j)%26)
	}
	return b
}

// quiet is the logger every scenario uses: recovery reports are checked
// through Recovered, not read from the log output.
var quiet = slog.New(slog.DiscardHandler)

// fixture is a log directory plus what the test appended to it.
type fixture struct {
	t    *testing.T
	dir  string
	opts Options
	recs [][]byte // recs[i-1] is record i as appended
}

func newFixture(t *testing.T, segSize int64) *fixture {
	t.Helper()
	return &fixture{t: t, dir: t.TempDir(), opts: Options{SegmentSize: segSize, Logger: quiet, FS: vfs.Default}}
}

// clone copies the (closed) log directory into a fresh one, so each case of
// a table mutates its own copy of one prepared log.
func (f *fixture) clone(t *testing.T) *fixture {
	t.Helper()
	c := &fixture{t: t, dir: t.TempDir(), opts: f.opts, recs: slices.Clone(f.recs)}
	for _, name := range listDir(t, f.dir) {
		writeFile(t, filepath.Join(c.dir, name), readFile(t, filepath.Join(f.dir, name)))
	}
	return c
}

// open opens the log, failing the test on error.
func (f *fixture) open() *Log {
	f.t.Helper()
	l, err := Open(f.dir, &f.opts)
	if err != nil {
		f.t.Fatalf("Open: %v", err)
	}
	return l
}

// openErr opens the log expecting an error, which it returns. An Open that
// succeeds fails the test (the log is closed first).
func (f *fixture) openErr() error {
	f.t.Helper()
	l, err := Open(f.dir, &f.opts)
	if err == nil {
		last := l.LastIndex()
		l.Close()
		f.t.Fatalf("Open succeeded (log holds [1, %d]); want an error", last)
	}
	return err
}

// build opens the log, appends one group per argument (a single size is an
// Append, several are one AppendBatch) and closes it.
//
// It leaves the directory as a crash right after the last append would:
// the sync frame that Close writes (proof that the last write was durable)
// is zeroed again, so damage to the last write reads as a torn tail, as
// it may after a crash.
func (f *fixture) build(groups ...[]int) {
	f.t.Helper()
	l := f.open()
	for _, g := range groups {
		f.appendGroup(l, g...)
	}
	f.close(l)
	f.unclose()
}

// unclose makes the newest segment look as a crash leaves it: it lifts
// the footer that Close wrote after its sync frame (leaving the segment
// preallocated, as it was before Close), and zeroes the sync frames after
// the last record, which only Close writes there. It removes the manifest
// too: Close writes it last, and Open removes it before changing anything,
// so no crash leaves one beside a log that Close did not finish.
func (f *fixture) unclose() {
	f.t.Helper()
	if err := os.Remove(filepath.Join(f.dir, recovery.ManifestName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.t.Fatal(err)
	}
	path := f.newest()
	if !unsealClosed(f.t, path, f.opts.SegmentSize) {
		return // sealed by a rotation or TruncateBack: no sync frame follows its records
	}
	b := readFile(f.t, path)
	frames, _ := walk(f.t, b)
	from := int64(segment.DataStart)
	if n := len(frames); n > 0 {
		from = frames[n-1].next
	}
	changed := false
	for off := from; off+segment.FrameHeader <= int64(len(b)); off += segment.FrameAlign {
		if b[off+28] == byte(segment.TypeSync) && binary.LittleEndian.Uint64(b[off:]) != 0 {
			clear(b[off : off+segment.FrameHeader])
			changed = true
		}
	}
	if changed {
		writeFile(f.t, path, b)
	}
	f.uncloseTail()
}

// uncloseTail clears the sealed flag that Close published in the tail
// file: a crash before Close leaves it unset.
func (f *fixture) uncloseTail() {
	f.t.Helper()
	path := filepath.Join(f.dir, recovery.TailName)
	b, err := os.ReadFile(path)
	if err != nil {
		return // no tail file: nothing published
	}
	tl, err := recovery.ReadTail(bytes.NewReader(b), path)
	if err != nil {
		f.t.Fatal(err)
	}
	tl.Sealed = false
	writeFile(f.t, path, tl.Encode(nil))
}

// unsealClosed removes the footer that Close wrote at the end of the
// segment at path (see segment.Unseal) and gives the file its preallocated
// size back. It reports false, changing nothing, for a segment sealed
// otherwise; true for one not sealed at all.
func unsealClosed(t *testing.T, path string, size int64) bool {
	t.Helper()
	h, err := segment.OpenHandle(vfs.Default, path)
	if err != nil {
		t.Fatal(err)
	}
	ft, _, err := h.Footer()
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !ft.Valid() {
		return true
	}
	f, err := vfs.Default.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, ok, err := segment.Unseal(f, h.Header(), ft)
	if err == nil && ok {
		err = f.Truncate(max(size, ft.Offset))
	}
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// appendGroup appends records of the given sizes: one Append for one size,
// one AppendBatch for several.
func (f *fixture) appendGroup(l *Log, sizes ...int) {
	f.t.Helper()
	first := uint64(len(f.recs)) + 1
	var batch [][]byte
	for k, n := range sizes {
		batch = append(batch, payload(first+uint64(k), n))
	}
	var got uint64
	var err error
	if len(batch) == 1 {
		got, err = l.Append(batch[0])
	} else {
		got, err = l.AppendBatch(batch)
	}
	if err != nil || got != first {
		f.t.Fatalf("append of %d records = %d, %v; want first index %d", len(batch), got, err, first)
	}
	f.recs = append(f.recs, batch...)
}

// appendN appends n single records of the given size.
func (f *fixture) appendN(l *Log, n, size int) {
	f.t.Helper()
	for range n {
		f.appendGroup(l, size)
	}
}

func (f *fixture) close(l *Log) {
	f.t.Helper()
	if err := l.Close(); err != nil {
		f.t.Fatalf("Close: %v", err)
	}
}

// forget drops the records after last from what the fixture expects (the
// log lost them to recovery or TruncateBack).
func (f *fixture) forget(last uint64) { f.recs = f.recs[:last] }

// check verifies that the log holds exactly records [first, last] of those
// appended, byte for byte, and nothing around them.
func (f *fixture) check(l *Log, first, last uint64) {
	f.t.Helper()
	if a, b := l.FirstIndex(), l.LastIndex(); a != first || b != last {
		f.t.Fatalf("log holds [%d, %d], want [%d, %d]", a, b, first, last)
	}
	for i := first; i <= last; i++ {
		got, err := l.Read(i)
		if err != nil {
			f.t.Fatalf("Read(%d): %v", i, err)
		}
		if !bytes.Equal(got, f.recs[i-1]) {
			f.t.Fatalf("Read(%d) = %d bytes %.20q..., want %d bytes %.20q...", i, len(got), got, len(f.recs[i-1]), f.recs[i-1])
		}
	}
	for _, i := range []uint64{first - 1, last + 1} {
		if _, err := l.Read(i); !errors.Is(err, ErrNotFound) {
			f.t.Fatalf("Read(%d) outside the log: %v, want ErrNotFound", i, err)
		}
	}
}

// segments lists the segment files in log order.
func (f *fixture) segments() []string {
	f.t.Helper()
	var paths []string
	for _, name := range listDir(f.t, f.dir) {
		if _, ok := segment.ParseName(name); ok {
			paths = append(paths, filepath.Join(f.dir, name))
		}
	}
	return paths
}

// newest is the path of the last segment.
func (f *fixture) newest() string {
	f.t.Helper()
	segs := f.segments()
	if len(segs) == 0 {
		f.t.Fatal("no segment files")
	}
	return segs[len(segs)-1]
}

// segmentOf returns the path of the segment file holding record i.
func (f *fixture) segmentOf(i uint64) string {
	f.t.Helper()
	var path string
	for _, p := range f.segments() {
		if first, _ := segment.ParseName(filepath.Base(p)); first <= i {
			path = p
		}
	}
	return path
}

// span is one frame as the test's own walker finds it.
type span struct {
	index uint64
	off   int64 // start of the frame
	end   int64 // end of the payload: the frame is complete from here on
	next  int64 // end of the padding: where the next frame starts
	typ   byte
}

// walk lists the record frames of a segment's bytes, reading only the
// layout (length and type), stepping over sync frames. It needs to know no more of where frames start
// than that they are 8-aligned after the header and that a frame never
// starts with 8 zero bytes (its checksum): zeros between frames (padding
// to a sector, say) are skipped. It stops at a footer or the end, and
// trusts its input: call it on undamaged files.
func walk(t *testing.T, b []byte) (frames []span, footer int64) {
	t.Helper()
	first := binary.LittleEndian.Uint64(b[16:])
	off := int64(segment.HeaderSize)
	for off+segment.FrameHeader <= int64(len(b)) {
		if binary.LittleEndian.Uint64(b[off:]) == 0 {
			off += segment.FrameAlign
			continue
		}
		typ := b[off+28]
		n := int64(binary.LittleEndian.Uint32(b[off+24:]))
		if typ == byte(segment.TypeFooter) {
			return frames, off
		}
		if typ == byte(segment.TypeSync) { // a sync frame (Close leaves one): no record
			off += segment.FrameHeader
			continue
		}
		if typ != byte(segment.TypeRecord) && typ != byte(segment.TypeBatch) {
			t.Fatalf("walk: no frame at offset %d", off)
		}
		frames = append(frames, span{
			index: first + uint64(len(frames)), off: off, end: off + segment.FrameHeader + n,
			next: off + (segment.FrameHeader+n+segment.FrameAlign-1)&^(segment.FrameAlign-1), typ: typ,
		})
		off = frames[len(frames)-1].next
	}
	return frames, -1
}

// frames walks the segment file at path.
func (f *fixture) frames(path string) []span {
	f.t.Helper()
	frames, _ := walk(f.t, readFile(f.t, path))
	return frames
}

// frameOf returns the frame of record i in its segment file.
func (f *fixture) frameOf(i uint64) (path string, fr span) {
	f.t.Helper()
	path = f.segmentOf(i)
	for _, fr := range f.frames(path) {
		if fr.index == i {
			return path, fr
		}
	}
	f.t.Fatalf("record %d not found in %s", i, path)
	return "", span{}
}

// nextWrite is the offset in the newest segment where the (closed) log's
// next write will start, found by appending to a copy: what a torn next
// write would begin with.
func (f *fixture) nextWrite() int64 {
	f.t.Helper()
	c := f.clone(f.t)
	l := c.open()
	c.appendGroup(l, 1)
	c.close(l)
	path, fr := c.frameOf(uint64(len(c.recs)))
	if filepath.Base(path) != filepath.Base(f.newest()) {
		f.t.Fatalf("the next record goes to a new segment %s", filepath.Base(path))
	}
	return fr.off
}

// Byte helpers. Each fails the test on an I/O error.

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	names, err := vfs.Default.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// writeAt overwrites bytes of a file in place.
func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// zero overwrites [from, to) with zeros; to < 0 means the end of the file.
func zero(t *testing.T, path string, from, to int64) {
	t.Helper()
	if to < 0 {
		to = int64(len(readFile(t, path)))
	}
	writeAt(t, path, from, make([]byte, to-from))
}

// truncate cuts a file to size bytes.
func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// flip inverts one bit of a file.
func flip(t *testing.T, path string, off int64, bit uint) {
	t.Helper()
	b := readFile(t, path)
	writeAt(t, path, off, []byte{b[off] ^ 1<<bit})
}

// rewriteHeader lets edit change a segment's 40-byte header, then stores it
// with a valid header checksum: the file then differs from a good one only
// in what edit changed.
func rewriteHeader(t *testing.T, path string, edit func(h []byte)) {
	t.Helper()
	h := readFile(t, path)[:segment.HeaderSize]
	edit(h)
	binary.LittleEndian.PutUint64(h[32:], xxhash.Sum64(h[:32]))
	writeAt(t, path, 0, h)
}

// nonZeroEnd is the offset just past the last non-zero byte of b at or after
// from, or from when there is none.
func nonZeroEnd(b []byte, from int64) int64 {
	for i := int64(len(b)) - 1; i >= from; i-- {
		if b[i] != 0 {
			return i + 1
		}
	}
	return from
}

// intact reports whether the frame's bytes (padding aside) are in mutated
// as they were in orig.
func intact(fr span, orig, mutated []byte) bool {
	return fr.end <= int64(len(mutated)) && bytes.Equal(orig[fr.off:fr.end], mutated[fr.off:fr.end])
}

// runAll runs one subtest per case, 16 at a time. The cases wait on
// fdatasync far more than they compute, so they overlap well even on few
// CPUs, where t.Parallel would cap them at -parallel (GOMAXPROCS).
func runAll[C any](t *testing.T, cases []C, name func(C) string, run func(*testing.T, C)) {
	t.Helper()
	const workers = 16
	todo := make(chan C)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range todo {
				t.Run(name(c), func(t *testing.T) { run(t, c) })
			}
		}()
	}
	for _, c := range cases {
		todo <- c
	}
	close(todo)
	wg.Wait()
}

// wantCorruption checks that err reports corruption (errors.Is ErrCorrupt)
// as a *CorruptionError naming path and, when off >= 0, the offset off.
func wantCorruption(t *testing.T, err error, path string, off int64) *CorruptionError {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v; want errors.Is(err, ErrCorrupt)", err)
	}
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *CorruptionError", err)
	}
	if ce.Path != path {
		t.Errorf("CorruptionError.Path = %s, want %s", ce.Path, path)
	}
	if off >= 0 && ce.Offset != off {
		t.Errorf("CorruptionError.Offset = %d, want %d (error: %v)", ce.Offset, off, err)
	}
	return ce
}

// wantNamed checks that err satisfies errors.Is(err, target) and names the
// file path, in a *CorruptionError or in its message.
func wantNamed(t *testing.T, err, target error, path string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v; want errors.Is(err, %v)", err, target)
	}
	var ce *CorruptionError
	if errors.As(err, &ce) && ce.Path == path {
		return
	}
	if !strings.Contains(err.Error(), filepath.Base(path)) {
		t.Errorf("error %q does not name %s", err, filepath.Base(path))
	}
}

// snapshot is the content of every file of a directory.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, name := range listDir(t, dir) {
		if name != LockName {
			m[name] = readFile(t, filepath.Join(dir, name))
		}
	}
	return m
}

// sameSnapshot fails the test unless the directory still holds exactly the
// files of before, with the same bytes.
func sameSnapshot(t *testing.T, dir string, before map[string][]byte) {
	t.Helper()
	after := snapshot(t, dir)
	for name, b := range before {
		a, ok := after[name]
		switch {
		case !ok:
			t.Errorf("%s was removed", name)
		case !bytes.Equal(a, b):
			t.Errorf("%s changed: %d bytes before, %d after", name, len(b), len(a))
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s was created", name)
		}
	}
}

// forgetIndexes drops the footer indexes Read keeps in memory, so that the
// next Read of a sealed segment reads its footer again.
func forgetIndexes(l *Log) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.indexed {
		s.idx = segment.Index{}
	}
	l.indexed = nil
}
