package wal

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/vfstest"
	"github.com/gojournal/journal/vfs"
)

// BenchmarkOpen measures Open of a log (64 KiB records in 64 MiB segments,
// and the shapes that stress a clean Open: 128-byte records, whose footers
// index 4 bytes a record, and 1 MiB segments, thousands of them), cleanly closed
// ("clean") and as a crash leaves it ("crash": the directory copied while
// the log was open, after a Sync of its NoSync appends returned, which is
// what a SIGKILL then leaves: no sync frame after the last write; and
// "killed": a log of the same shape written by a child process, the test
// binary run again, that was sent SIGKILL after its Sync returned), with the
// newest segment holding about the given MiB of records. Close seals the
// newest segment, so "clean" reads its footer, never its frames, and then
// lifts the footer to append there again. Run it with
// go test ./wal -run XXX -bench BenchmarkOpen -benchtime=10x (-short: the
// 1 GiB log with a small newest segment only). Each Open gets a fresh copy of the newest segment, made with its
// preallocated space unwritten and fdatasync'd (untimed), so the two code
// paths see the same files: "skip" is Open as it is, "read-all" the same
// Open through a file system that cannot tell where data lies
// (File.Data unknown), so the tail search reads every byte, as it did
// before File.Data existed. It reports ms per Open, MiB read per Open
// (every ReadAt through the FS), files opened per Open, and the heap the
// open Log holds.
//
// Building the logs writes about twice their size. With
// JOURNAL_OPEN_BENCH_DIR set, they are built there once and reused by
// later runs (of this binary or another build: alternating an old and a
// new binary under benchstat then costs no rebuild); remove the
// directory to build them again.
func BenchmarkOpen(b *testing.B) {
	const big = 64 << 10
	cases := []openShape{
		{1 << 30, 1 << 20, big, DefaultSegmentSize},
		{1 << 30, 32 << 20, big, DefaultSegmentSize},
		{4 << 30, 32 << 20, big, DefaultSegmentSize},
		{4 << 30, 32 << 20, 128, DefaultSegmentSize},
		{1 << 30, 512 << 10, 4 << 10, 1 << 20},
		{4 << 30, 512 << 10, 4 << 10, 1 << 20},
	}
	if testing.Short() {
		cases = cases[:1]
	}
	for i, c := range cases {
		// Built by the first sub-benchmark that needs it, under the
		// parent's directory, so a -bench filter builds only what it runs.
		root := filepath.Join(b.TempDir(), fmt.Sprint(i))
		if cache := os.Getenv(envOpenCache); cache != "" {
			root = filepath.Join(cache, c.String())
		}
		var src *openSource
		for _, state := range []string{"clean", "crash", "killed"} {
			for _, path := range []string{"skip", "read-all"} {
				name := fmt.Sprintf("total=%dGiB/record=%dB/segment=%dMiB/newest=%dKiB/%s/%s",
					c.total>>30, c.record, c.segment>>20, c.newest>>10, state, path)
				b.Run(name, func(b *testing.B) {
					if src == nil {
						s := cachedOpenLog(b, root, c)
						src = &s
					}
					benchOpen(b, *src, c, state, path == "read-all")
				})
			}
		}
	}
}

// openShape is the log a BenchmarkOpen case opens: about total bytes of
// records of the given size, about newest of them in the newest segment.
type openShape struct {
	total, newest   int64
	record, segment int64 // record size, Options.SegmentSize
}

func (s openShape) String() string {
	return fmt.Sprintf("%d-%d-%d-%d", s.total, s.newest, s.record, s.segment)
}

// openSource is a prepared log: dir holds it cleanly closed; crash holds
// the newest segment as it was before Close wrote its sync frame; killed
// is a second log of the same shape, written by a child process that was
// then sent SIGKILL.
type openSource struct {
	dir          string
	newest       string // file name of the newest segment
	crash        string // path of the crash copy of the newest segment
	killed       string
	killedNewest string
}

const envOpenCache = "JOURNAL_OPEN_BENCH_DIR"

// cachedOpenLog is buildOpenLog's log in dir, built unless an earlier run
// left it complete there (its file "source" names the newest segments,
// written last).
func cachedOpenLog(b *testing.B, dir string, shape openShape) openSource {
	b.Helper()
	record := filepath.Join(dir, "source")
	var src openSource
	if data, err := os.ReadFile(record); err == nil {
		if _, err := fmt.Sscan(string(data), &src.newest, &src.killedNewest); err != nil {
			b.Fatalf("%s: %v", record, err)
		}
		src.dir, src.crash, src.killed = filepath.Join(dir, "log"), filepath.Join(dir, "crash"), filepath.Join(dir, "killed")
		return src
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	src = buildOpenLog(b, dir, shape)
	if err := os.WriteFile(record, []byte(src.newest+" "+src.killedNewest+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return src
}

// buildOpenLog writes a log of about total bytes of 64 KiB records whose
// newest segment holds about newest bytes of them, and has a child
// process write another and be killed.
func buildOpenLog(b *testing.B, dir string, shape openShape) openSource {
	b.Helper()
	l, err := writeOpenLog(filepath.Join(dir, "log"), shape)
	if err != nil {
		b.Fatal(err)
	}
	src := openSource{dir: filepath.Join(dir, "log"), newest: filepath.Base(l.active.path), crash: filepath.Join(dir, "crash")}
	copySparse(b, filepath.Join(src.dir, src.newest), src.crash)
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	src.killed = filepath.Join(dir, "killed")
	src.killedNewest = killOpenLogWriter(b, src.killed, shape)
	return src
}

// writeOpenLog writes the log of buildOpenLog in dir and returns it open,
// its last records Synced. Small records go in batches of up to 256 KiB (a
// 64th of a segment, so that segments end nearly full).
func writeOpenLog(dir string, shape openShape) (*Log, error) {
	l, err := Open(dir, &Options{NoSync: true, Logger: quiet, SegmentSize: shape.segment})
	if err != nil {
		return nil, err
	}
	rec := make([]byte, shape.record)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range rec {
		rec[i] = byte(rng.Uint32())
	}
	batch := make([][]byte, max(1, min(256<<10, shape.segment/64)/shape.record))
	for i := range batch {
		batch[i] = rec
	}
	segs := shape.total / shape.segment
	for {
		l.mu.Lock()
		n, tail := len(l.sealed), l.active.tail
		l.mu.Unlock()
		if int64(n) >= segs-1 && tail >= shape.newest {
			break
		}
		if _, err := l.AppendBatch(batch); err != nil {
			return nil, err
		}
	}
	return l, l.Sync()
}

const envOpenChild = "JOURNAL_OPEN_BENCH_CHILD" // "DIR TOTAL NEWEST RECORD SEGMENT"; set only in the child

// TestOpenBenchChild is the child side of BenchmarkOpen's killed state: it
// writes a log, says "ready NEWEST" and waits to be killed. It does
// nothing unless BenchmarkOpen started it.
func TestOpenBenchChild(t *testing.T) {
	arg := os.Getenv(envOpenChild)
	if arg == "" {
		t.Skip("helper process: BenchmarkOpen re-executes the test binary to run it")
	}
	var dir string
	var shape openShape
	if _, err := fmt.Sscan(arg, &dir, &shape.total, &shape.newest, &shape.record, &shape.segment); err != nil {
		t.Fatal(err)
	}
	l, err := writeOpenLog(dir, shape)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ready %s\n", filepath.Base(l.active.path))
	time.Sleep(time.Hour) // until killed (select{} would be a deadlock with no other goroutine)
}

// killOpenLogWriter has a child process write the log of buildOpenLog in
// dir and kills it (SIGKILL) once its records are synced. It returns the
// name of the newest segment.
func killOpenLogWriter(b *testing.B, dir string, shape openShape) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpenBenchChild$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d %d %d", envOpenChild, dir, shape.total, shape.newest, shape.record, shape.segment))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var name string
	_, err = fmt.Fscanf(out, "ready %s\n", &name)
	cmd.Process.Kill()
	cmd.Wait()
	if err != nil {
		b.Fatalf("child writer: %v", err)
	}
	return name
}

// copySparse copies the file from to to, leaving unwritten what from
// holds no data in (its preallocated space), as fallocate left it.
func copySparse(b testing.TB, from, to string) {
	b.Helper()
	src, err := vfs.Default.OpenFile(from, os.O_RDONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	size, err := src.Size()
	if err != nil {
		b.Fatal(err)
	}
	dst, err := vfs.Default.OpenFile(to, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	if size == 0 {
		return
	}
	if err := dst.Preallocate(size); err != nil {
		b.Fatal(err)
	}
	for off := int64(0); off < size; {
		start, end, known, err := src.Data(off)
		if err != nil {
			b.Fatal(err)
		}
		if !known {
			start, end = off, size // the platform cannot tell: copy all
		}
		if start >= size {
			break
		}
		if _, err := io.Copy(io.NewOffsetWriter(dst, start), io.NewSectionReader(src, start, end-start)); err != nil {
			b.Fatal(err)
		}
		off = end
	}
	if err := dst.Sync(); err != nil {
		b.Fatal(err)
	}
}

// prepare makes dir the log to open: links to src's files and a fresh
// copy of the newest segment in the given state.
func (src openSource) prepare(b *testing.B, dir, state string) {
	b.Helper()
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	from, name := src.dir, src.newest
	if state == "killed" {
		from, name = src.killed, src.killedNewest
	}
	names, err := os.ReadDir(from)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range names {
		if e.Name() == name || e.Name() == LockName {
			continue
		}
		if state != "clean" && e.Name() == openBenchManifest {
			continue // a crash leaves none: the Open before it removed it
		}
		// Open changes none of these: sealed segments, the meta file
		// (and removes a spare the killed writer left, a link here).
		if err := os.Link(filepath.Join(from, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			b.Fatal(err)
		}
	}
	newest := filepath.Join(from, name)
	if state == "crash" {
		newest = src.crash
	}
	copySparse(b, newest, filepath.Join(dir, name))
	// The links are durable, as a log's files are when Close has returned
	// (or a crash has passed): an fsync of the directory in the timed Open
	// must not pay for committing this preparation.
	if err := vfs.Default.SyncDir(dir); err != nil {
		b.Fatal(err)
	}
}

// openBenchManifest is recovery.ManifestName, spelled out so that this
// file also builds against code from before the manifest, to compare
// (TestOpenBenchManifestName keeps the two equal).
const openBenchManifest = "journal.manifest"

func benchOpen(b *testing.B, src openSource, shape openShape, state string, readAll bool) {
	dir := filepath.Join(b.TempDir(), "log")
	fsys := &vfstest.CountFS{FS: vfs.Default, Unknown: readAll}
	var heap uint64
	opens := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		src.prepare(b, dir, state)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		opens -= countOpens(fsys)
		b.StartTimer()
		l, err := Open(dir, &Options{FS: fsys, Logger: quiet, SegmentSize: shape.segment})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		opens += countOpens(fsys)
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap += after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/open")
	b.ReportMetric(float64(fsys.Read())/(1<<20)/float64(b.N), "MiB-read/open")
	b.ReportMetric(float64(heap)/1024/float64(b.N), "KiB-heap/open")
	b.ReportMetric(float64(opens)/float64(b.N), "files-opened/open")
}

// countOpens is how many files were opened through fsys so far.
func countOpens(fsys *vfstest.CountFS) int {
	n := 0
	for _, k := range fsys.Opened() {
		n += k
	}
	return n
}

// TestOpenBenchOnce opens the log in $JOURNAL_OPEN_ONCE ("DIR SEGMENTSIZE")
// once and leaves it open, for counting Open's system calls from outside
// (strace -c -f the test binary, minus a run without the variable). It does
// nothing unless the variable is set.
func TestOpenBenchOnce(t *testing.T) {
	arg := os.Getenv("JOURNAL_OPEN_ONCE")
	if arg == "" {
		t.Skip("set JOURNAL_OPEN_ONCE to count one Open's system calls")
	}
	var dir string
	var seg int64
	if _, err := fmt.Sscan(arg, &dir, &seg); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, &Options{Logger: quiet, SegmentSize: seg}); err != nil {
		t.Fatal(err)
	}
}
