package wal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// The format is a contract: directories written by a format version must
// open, with the same records, in every later version. testdata/format-vN
// (one per version in goldenRoots) holds such directories, one per case
// below, each written once by the code of version N and never changed
// since. Each case directory holds the log's files and expect.json
// (goldenExpect): what Open must find there.
//
// TestGoldenFormat opens a copy of each and checks every record, the
// snapshot, what Open repaired, and that a second Open changes nothing.
//
// To add a case, add it to goldenCases and run
//
//	go test ./wal -run TestGoldenFormat -args -write-golden
//
// which writes, under the newest root (the version this build writes), the
// cases whose directory does not exist yet and leaves the others alone. -overwrite-golden rewrites existing ones too: never use it
// on a case that has been committed, since the point of the files is that
// they were written by an older version. (A format change that makes them
// unreadable is a new version, with new cases beside these.)

var (
	writeGolden     = flag.Bool("write-golden", false, "write missing cases of the newest testdata/format-vN with this build's code")
	overwriteGolden = flag.Bool("overwrite-golden", false, "with -write-golden: rewrite existing cases too (never for committed ones)")
)

// goldenRoots holds the golden sets, oldest first; the last is written by
// this build (-write-golden). Cases added after a version was released
// exist only in the roots of later versions.
var goldenRoots = []string{"testdata/format-v1", "testdata/format-v2", "testdata/format-v3"}

// goldenRoot is the set this build writes.
var goldenRoot = goldenRoots[len(goldenRoots)-1]

// goldenExpect is a case's expect.json.
type goldenExpect struct {
	Description string `json:"description"`
	FirstIndex  uint64 `json:"first_index"`
	LastIndex   uint64 `json:"last_index"`
	// SnapshotIndex is the index of the snapshot, whose contents are
	// goldenSnapshot(SnapshotIndex); 0 when there is no snapshot.
	SnapshotIndex      uint64 `json:"snapshot_index"`
	SnapshotCompressed bool   `json:"snapshot_compressed"`
	// Meta is journal.meta as found in the directory; nil when there is
	// no meta file.
	Meta *goldenMeta `json:"meta"`
	// Torn is the torn tail Open must cut; nil when it cuts nothing.
	Torn *goldenTorn `json:"torn"`
}

type goldenMeta struct {
	FirstIndex  uint64 `json:"first_index"`
	Back        uint64 `json:"back"`
	BackPending bool   `json:"back_pending"`
}

type goldenTorn struct {
	Segment string `json:"segment"` // file name
	Offset  int64  `json:"offset"`  // where the valid data ends
	Bytes   int64  `json:"bytes"`   // non-zero bytes cut
}

// goldenRecord is record i of every golden log. Its shape depends on i so
// that the logs hold empty records, short text, a few KiB of text (which
// compresses) and incompressible bytes (stored uncompressed whatever the
// Compression).
func goldenRecord(i uint64) []byte {
	switch i % 6 {
	case 0:
		return []byte{}
	case 3:
		var b []byte
		for line := range 96 {
			b = fmt.Appendf(b, "record %d, line %d: the quick brown fox\n", i, line)
		}
		return b
	case 5:
		b := make([]byte, 1500)
		x := i*0x9e3779b97f4a7c15 | 1
		for j := range b {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			b[j] = byte(x)
		}
		return b
	}
	return fmt.Appendf(nil, "record %d: %s", i, strings.Repeat("journal ", int(i%4)+2))
}

// goldenSnapshot is the contents of a golden snapshot as of index.
func goldenSnapshot(index uint64) []byte {
	var b []byte
	for k := range 200 {
		b = fmt.Appendf(b, "key %04d = value %d\n", k, uint64(k)*index)
	}
	return b
}

// goldenCase writes one case into dir (a fresh directory) with today's code
// and returns what Open must find there.
type goldenCase struct {
	name  string
	write func(t *testing.T, dir string) goldenExpect
}

var goldenCases = []goldenCase{
	{"sealed-and-active", writeSealedAndActive},
	{"torn-tail", writeTornTail},
	{"batch-last", writeBatchLast},
	{"truncate-front", writeTruncateFront},
	{"truncate-back", writeTruncateBack},
	{"truncate-back-pending", writeTruncateBackPending},
	{"snapshot", func(t *testing.T, dir string) goldenExpect { return writeSnapshot(t, dir, false) }},
	{"snapshot-zstd", func(t *testing.T, dir string) goldenExpect { return writeSnapshot(t, dir, true) }},
}

func TestGoldenFormat(t *testing.T) {
	if *writeGolden {
		for _, c := range goldenCases {
			writeGoldenCase(t, c)
		}
	}
	for _, root := range goldenRoots {
		for _, c := range goldenCases {
			t.Run(filepath.Base(root)+"/"+c.name, func(t *testing.T) { checkGoldenCase(t, filepath.Join(root, c.name)) })
		}
	}
}

// goldenOptions are the options the cases are written with: the smallest
// segments, so a few records fill one.
func goldenOptions(c Compression) *Options {
	return &Options{SegmentSize: MinSegmentSize, Compression: c, Logger: quiet,
		Checkpoint: CheckpointOptions{MaxRate: -1}}
}

// goldenSession opens the log in dir with opts, runs do and closes it.
func goldenSession(t *testing.T, dir string, opts *Options, do func(l *Log)) {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	do(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// appendGolden appends records from to to (inclusive) one Append each.
func appendGolden(t *testing.T, l *Log, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		got, err := l.Append(goldenRecord(i))
		if err != nil || got != i {
			t.Fatalf("Append(record %d) = %d, %v", i, got, err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeGoldenCase writes case c into a temporary directory, trims it, and
// only then copies it under goldenRoot, so a failing generator leaves
// nothing half-written.
func writeGoldenCase(t *testing.T, c goldenCase) {
	dst := filepath.Join(goldenRoot, c.name)
	if _, err := os.Stat(dst); err == nil && !*overwriteGolden {
		t.Logf("%s exists: left as it is", dst)
		return
	}
	dir := t.TempDir()
	exp := c.write(t, dir)
	must(t, os.Remove(filepath.Join(dir, LockName)))
	must(t, os.RemoveAll(dst))
	must(t, os.MkdirAll(dst, 0o755))
	copyDir(t, dir, dst)
	b, err := json.MarshalIndent(exp, "", "  ")
	must(t, err)
	writeFile(t, filepath.Join(dst, "expect.json"), append(b, '\n'))
	t.Logf("wrote %s", dst)
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	for _, name := range listDir(t, from) {
		writeFile(t, filepath.Join(to, name), readFile(t, filepath.Join(from, name)))
	}
}

// trimActive cuts the preallocated space after the newest segment's data.
// A log closed cleanly keeps its active segment at the full segment size;
// the zeros after the last write read as the end of the log, and so does
// the end of the file. The scan of the trimmed directory must find exactly
// what it found before, or the case is not written.
func trimActive(t *testing.T, dir string) {
	t.Helper()
	before, err := recovery.Scan(vfs.Default, dir, recovery.Options{Verify: true})
	must(t, err)
	if !before.Clean() {
		t.Fatalf("%s: not clean before trimming: %+v", dir, before)
	}
	newest := before.Segments[len(before.Segments)-1]
	if newest.Sealed {
		t.Fatalf("%s: the newest segment is sealed", dir)
	}
	truncate(t, newest.Path, newest.End)
	after, err := recovery.Scan(vfs.Default, dir, recovery.Options{Verify: true})
	must(t, err)
	before.Segments[len(before.Segments)-1].Size = newest.End
	if !after.Clean() || !equalJSON(t, before, after) {
		t.Fatalf("trimming %s changed what recovery reads:\nbefore %+v\nafter  %+v", newest.Path, before, after)
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	must(t, err)
	jb, err := json.Marshal(b)
	must(t, err)
	return bytes.Equal(ja, jb)
}

// codecsIn counts the record frames of each codec in a segment.
func codecsIn(t *testing.T, path string) map[segment.Codec]int {
	t.Helper()
	h, err := segment.OpenHandle(vfs.Default, path)
	must(t, err)
	defer h.Close()
	n := map[segment.Codec]int{}
	sc := h.Scan()
	for sc.Next() {
		n[sc.Frame().Codec]++
	}
	must(t, sc.Err())
	return n
}

// writeSealedAndActive writes records uncompressed, then with S2, then with
// Zstd until the first segment is sealed, then with S2 again, so both
// segments hold records of more than one codec.
func writeSealedAndActive(t *testing.T, dir string) goldenExpect {
	goldenSession(t, dir, goldenOptions(NoCompression), func(l *Log) { appendGolden(t, l, 1, 6) })
	goldenSession(t, dir, goldenOptions(S2), func(l *Log) { appendGolden(t, l, 7, 12) })
	var last uint64
	goldenSession(t, dir, goldenOptions(Zstd), func(l *Log) {
		for i := uint64(13); len(l.sealed) == 0; i++ {
			appendGolden(t, l, i, i)
		}
		last = nextCompressible(l.LastIndex() + 1)
		appendGolden(t, l, l.LastIndex()+1, last)
	})
	from := last + 1
	last = nextCompressible(from)
	goldenSession(t, dir, goldenOptions(S2), func(l *Log) { appendGolden(t, l, from, last) })
	trimActive(t, dir)
	segs := segmentFiles(t, dir)
	if len(segs) != 2 {
		t.Fatalf("want 2 segments, have %v", segs)
	}
	sealed, active := codecsIn(t, segs[0]), codecsIn(t, segs[1])
	for _, c := range []segment.Codec{segment.None, segment.S2, segment.Zstd} {
		if sealed[c] == 0 {
			t.Fatalf("no %v record in the sealed segment: %v", c, sealed)
		}
	}
	if active[segment.S2] == 0 || active[segment.Zstd] == 0 {
		t.Fatalf("the active segment lacks S2 or Zstd records: %v", active)
	}
	return goldenExpect{
		Description: "a sealed segment and an active one; records uncompressed, S2 and Zstd in both; empty records, records of a few KiB",
		FirstIndex:  1, LastIndex: last,
	}
}

// nextCompressible is the first index at or after i whose golden record is
// the few KiB of text that every codec shrinks.
func nextCompressible(i uint64) uint64 {
	for i%6 != 3 {
		i++
	}
	return i
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	var segs []string
	for _, name := range listDir(t, dir) {
		if _, ok := segment.ParseName(name); ok {
			segs = append(segs, filepath.Join(dir, name))
		}
	}
	return segs
}

// writeTornTail leaves the active segment the way a crash during a write
// does: records 1 and 2 durable, then the first two sectors of the write of
// record 3 (the bytes today's code writes for it), and the rest of the
// preallocated segment still zero. The segment is not trimmed: a crash
// leaves it at its preallocated size, and the torn frame's payload running
// into those zeros is the case.
func writeTornTail(t *testing.T, dir string) goldenExpect {
	goldenSession(t, dir, goldenOptions(NoCompression), func(l *Log) { appendGolden(t, l, 1, 2) })
	path := segmentFiles(t, dir)[0]
	st, err := recovery.Scan(vfs.Default, dir, recovery.Options{})
	must(t, err)
	end := st.Segments[0].End

	// The write of record 3, as today's code makes it, in a copy.
	later := t.TempDir()
	copyDir(t, dir, later)
	goldenSession(t, later, goldenOptions(NoCompression), func(l *Log) { appendGolden(t, l, 3, 3) })
	write := readFile(t, filepath.Join(later, filepath.Base(path)))[end:]
	if len(goldenRecord(3)) < 2*segment.SectorSize {
		t.Fatal("record 3 must span more than two sectors")
	}
	torn := write[:2*segment.SectorSize]
	writeAt(t, path, end, torn)
	return goldenExpect{
		Description: fmt.Sprintf("records 1-2, then a torn write: the first 2 of the %d sectors of record 3's write; the rest of the preallocated segment zero",
			segment.AlignSector(nonZeroEnd(write, 0))/segment.SectorSize),
		FirstIndex: 1, LastIndex: 2,
		Torn: &goldenTorn{Segment: filepath.Base(path), Offset: end, Bytes: nonZeroEnd(torn, 0)},
	}
}

// writeBatchLast ends the log with a completed AppendBatch.
func writeBatchLast(t *testing.T, dir string) goldenExpect {
	goldenSession(t, dir, goldenOptions(NoCompression), func(l *Log) {
		appendGolden(t, l, 1, 1)
		first, err := l.AppendBatch([][]byte{goldenRecord(2), goldenRecord(3), goldenRecord(4)})
		if err != nil || first != 2 {
			t.Fatalf("AppendBatch = %d, %v", first, err)
		}
	})
	trimActive(t, dir)
	return goldenExpect{Description: "one Append, then a 3-record AppendBatch, then Close", FirstIndex: 1, LastIndex: 4}
}

func writeTruncateFront(t *testing.T, dir string) goldenExpect {
	goldenSession(t, dir, goldenOptions(NoCompression), func(l *Log) {
		appendGolden(t, l, 1, 8)
		must(t, l.TruncateFront(4))
	})
	trimActive(t, dir)
	return goldenExpect{
		Description: "records 1-8, then TruncateFront(4): journal.meta names first index 4; the segment still holds 1-3",
		FirstIndex:  4, LastIndex: 8, Meta: &goldenMeta{FirstIndex: 4},
	}
}

func writeTruncateBack(t *testing.T, dir string) goldenExpect {
	goldenSession(t, dir, goldenOptions(NoCompression), func(l *Log) {
		appendGolden(t, l, 1, 8)
		must(t, l.TruncateBack(5))
	})
	trimActive(t, dir)
	return goldenExpect{
		Description: "records 1-8, then TruncateBack(5), completed: the first segment sealed after record 5, an empty active segment from 6",
		FirstIndex:  1, LastIndex: 5, Meta: &goldenMeta{Back: 5},
	}
}

// writeTruncateBackPending leaves what a crash right after TruncateBack's
// commit point leaves: TruncateBack writes journal.meta with BackPending
// set (write temp, fsync, rename, fsync directory) after the log is idle,
// before it touches any segment. So the state is a cleanly closed log plus
// that meta file, which is how it is built here, with the same call.
func writeTruncateBackPending(t *testing.T, dir string) goldenExpect {
	goldenSession(t, dir, goldenOptions(NoCompression), func(l *Log) { appendGolden(t, l, 1, 8) })
	trimActive(t, dir)
	must(t, recovery.WriteMeta(vfs.Default, dir, recovery.Meta{Back: 5, BackPending: true}))
	return goldenExpect{
		Description: "records 1-8, then a crash after TruncateBack(5) committed (journal.meta has BackPending) and before it touched a segment; Open finishes it",
		FirstIndex:  1, LastIndex: 5, Meta: &goldenMeta{Back: 5, BackPending: true},
	}
}

func writeSnapshot(t *testing.T, dir string, compress bool) goldenExpect {
	opts := goldenOptions(NoCompression)
	opts.Checkpoint.Compress = compress
	goldenSession(t, dir, opts, func(l *Log) {
		appendGolden(t, l, 1, 8)
		must(t, l.Checkpoint(5, func(w io.Writer) error {
			_, err := w.Write(goldenSnapshot(5))
			return err
		}))
	})
	trimActive(t, dir)
	how := "uncompressed"
	if compress {
		how = "zstd-compressed"
	}
	return goldenExpect{
		Description: "records 1-8, then Checkpoint(5): a snapshot as of 5, " + how + ", records 1-5 released",
		FirstIndex:  6, LastIndex: 8, SnapshotIndex: 5, SnapshotCompressed: compress,
		Meta: &goldenMeta{FirstIndex: 6},
	}
}

// readGoldenExpect reads a case's expect.json.
func readGoldenExpect(t *testing.T, dir string) goldenExpect {
	t.Helper()
	var exp goldenExpect
	dec := json.NewDecoder(bytes.NewReader(readFile(t, filepath.Join(dir, "expect.json"))))
	dec.DisallowUnknownFields()
	must(t, dec.Decode(&exp))
	return exp
}

// checkGoldenCase opens a copy of the case in src and checks it against its
// expect.json.
func checkGoldenCase(t *testing.T, src string) {
	exp := readGoldenExpect(t, src)
	dir := t.TempDir()
	copyDir(t, src, dir)
	must(t, os.Remove(filepath.Join(dir, "expect.json")))
	checkGoldenMeta(t, dir, exp.Meta)

	opts := &Options{Verify: true, Logger: quiet}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	checkGoldenRepair(t, l.Recovered(), exp.Torn)
	checkGoldenLog(t, l, exp)
	must(t, l.Close())

	// A second Open finds nothing to repair and changes no file.
	before := snapshot(t, dir)
	l, err = Open(dir, opts)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	checkGoldenRepair(t, l.Recovered(), nil)
	checkGoldenLog(t, l, exp)
	must(t, l.Close())
	sameSnapshot(t, dir, before)
}

// checkGoldenMeta checks journal.meta as the case left it, before Open.
func checkGoldenMeta(t *testing.T, dir string, want *goldenMeta) {
	t.Helper()
	m, err := recovery.ReadMeta(vfs.Default, dir)
	must(t, err)
	if !exists(t, filepath.Join(dir, recovery.MetaName)) {
		if want != nil {
			t.Fatalf("no %s, want %+v", recovery.MetaName, *want)
		}
		return
	}
	got := goldenMeta{FirstIndex: m.FirstIndex, Back: m.Back, BackPending: m.BackPending}
	if want == nil || got != *want {
		t.Fatalf("%s holds %+v, want %+v", recovery.MetaName, got, want)
	}
}

// checkGoldenRepair checks what Open repaired: the torn tail it cut (nil:
// none), and no file removed.
func checkGoldenRepair(t *testing.T, r Recovery, want *goldenTorn) {
	t.Helper()
	if len(r.Removed) != 0 {
		t.Errorf("Open removed %v", r.Removed)
	}
	switch {
	case want == nil && r.Torn != nil:
		t.Errorf("Open cut a torn tail: %+v", *r.Torn)
	case want != nil && r.Torn == nil:
		t.Errorf("Open cut nothing, want %+v", *want)
	case want != nil:
		got := goldenTorn{Segment: filepath.Base(r.Torn.Path), Offset: r.Torn.Offset, Bytes: r.Torn.Bytes}
		if got != *want || r.Torn.Records != 0 {
			t.Errorf("Open cut %+v, want %+v", *r.Torn, *want)
		}
	}
}

// checkGoldenLog checks the open log's range, every record (by Read and by
// a Reader) and the snapshot.
func checkGoldenLog(t *testing.T, l *Log, exp goldenExpect) {
	t.Helper()
	if first, last := l.FirstIndex(), l.LastIndex(); first != exp.FirstIndex || last != exp.LastIndex {
		t.Fatalf("log holds [%d, %d], want [%d, %d]", first, last, exp.FirstIndex, exp.LastIndex)
	}
	for i := exp.FirstIndex; i <= exp.LastIndex; i++ {
		got, err := l.Read(i)
		if err != nil || !bytes.Equal(got, goldenRecord(i)) {
			t.Fatalf("Read(%d) = %d bytes, %v; want %d bytes", i, len(got), err, len(goldenRecord(i)))
		}
	}
	r := l.NewReader(exp.FirstIndex)
	want := exp.FirstIndex
	for r.Next() {
		if r.Index() != want || !bytes.Equal(r.Record(), goldenRecord(want)) {
			t.Fatalf("Reader: record %d (%d bytes), want %d (%d bytes)", r.Index(), len(r.Record()), want, len(goldenRecord(want)))
		}
		want++
	}
	must(t, r.Err())
	must(t, r.Close())
	if want != exp.LastIndex+1 {
		t.Fatalf("Reader stopped before %d, want %d", want, exp.LastIndex+1)
	}
	checkGoldenSnapshot(t, l, exp)
}

func checkGoldenSnapshot(t *testing.T, l *Log, exp goldenExpect) {
	t.Helper()
	index, rc, err := l.Snapshot()
	if exp.SnapshotIndex == 0 {
		if !errors.Is(err, ErrNoSnapshot) {
			t.Fatalf("Snapshot() = %d, %v; want ErrNoSnapshot", index, err)
		}
		return
	}
	must(t, err)
	got, err := io.ReadAll(rc)
	must(t, err)
	must(t, rc.Close())
	if index != exp.SnapshotIndex || !bytes.Equal(got, goldenSnapshot(index)) {
		t.Fatalf("snapshot as of %d, %d bytes; want as of %d, %d bytes", index, len(got), exp.SnapshotIndex, len(goldenSnapshot(exp.SnapshotIndex)))
	}
	h, err := checkpoint.ReadHeader(vfs.Default, l.Dir())
	must(t, err)
	if h.Compressed != exp.SnapshotCompressed || h.Version != 1 {
		t.Fatalf("snapshot header %+v, want version 1, compressed %v", h, exp.SnapshotCompressed)
	}
}

// TestGoldenCasesAreListed keeps each testdata/format-vN and goldenCases
// in step: a directory nobody checks would prove nothing.
func TestGoldenCasesAreListed(t *testing.T) {
	var names []string
	for _, c := range goldenCases {
		names = append(names, c.name)
	}
	slices.Sort(names)
	for _, root := range goldenRoots {
		if got := listDir(t, root); !slices.Equal(got, names) {
			t.Fatalf("%s holds %v, goldenCases lists %v", root, got, names)
		}
	}
}

// TestGoldenFutureVersionsAreFormatErrors gives one file of a golden log a
// version this build does not read, with its checksums valid as a later
// writer would leave them: Open refuses with ErrFormat naming the version
// found and the one read, and changes nothing.
func TestGoldenFutureVersionsAreFormatErrors(t *testing.T) {
	tests := []struct {
		kind, dir, file string
		setVersion      func(b []byte) // writes version 7 and fixes the checksums
	}{
		{"segment", "sealed-and-active", segment.Name(1), func(b []byte) {
			binary.LittleEndian.PutUint32(b[8:], 7)
			binary.LittleEndian.PutUint64(b[32:], xxhash.Sum64(b[:32]))
		}},
		{"meta file", "truncate-front", recovery.MetaName, func(b []byte) {
			binary.LittleEndian.PutUint32(b[8:], 7)
			binary.LittleEndian.PutUint64(b[32:], xxhash.Sum64(b[:32]))
		}},
		{"snapshot", "snapshot-zstd", checkpoint.FileName, func(b []byte) {
			binary.LittleEndian.PutUint32(b[8:], 7)
			trl := b[len(b)-checkpoint.TrailerSize:]
			d := xxhash.New()
			d.Write(b[:checkpoint.HeaderSize])
			d.Write(trl[:24])
			binary.LittleEndian.PutUint64(trl[24:], d.Sum64())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, filepath.Join(goldenRoot, tt.dir), dir)
			path := filepath.Join(dir, tt.file)
			b := readFile(t, path)
			tt.setVersion(b)
			writeFile(t, path, b)
			before := snapshot(t, dir)
			l, err := Open(dir, &Options{Logger: quiet})
			if err == nil {
				l.Close()
				t.Fatalf("Open succeeded")
			}
			want := tt.kind + " format version 7; this build reads version"
			if !errors.Is(err, ErrFormat) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tt.file) {
				t.Fatalf("Open error %q: want ErrFormat naming %s and saying %q", err, tt.file, want)
			}
			sameSnapshot(t, dir, before)
		})
	}
}
