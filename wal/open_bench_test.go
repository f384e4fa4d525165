package wal

import (
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/gojournal/journal/vfs"
)

// BenchmarkOpen measures Open of a log of 64 MiB segments, cleanly closed
// ("clean") and as a crash leaves it ("crash": the directory copied while
// the log was open, after a Sync of its NoSync appends returned, which is
// what a SIGKILL then leaves: no sync frame after the last write), with the
// newest segment holding about the given MiB of records. Run it with
// go test ./wal -run XXX -bench BenchmarkOpen -benchtime=10x (-short: the
// 1 GiB log with a small newest segment only). Each Open gets a fresh copy of the newest segment, made with its
// preallocated space unwritten and fdatasync'd (untimed), so the two code
// paths see the same files: "skip" is Open as it is, "read-all" the same
// Open through a file system that cannot tell where data lies
// (File.Data unknown), so the tail search reads every byte, as it did
// before File.Data existed. It reports ms per Open, MiB read per Open
// (every ReadAt through the FS), and the heap the open Log holds.
func BenchmarkOpen(b *testing.B) {
	cases := []struct{ total, newest int64 }{
		{1 << 30, 1 << 20},
		{1 << 30, 32 << 20},
		{4 << 30, 32 << 20},
	}
	if testing.Short() {
		cases = cases[:1]
	}
	for i, c := range cases {
		// Built by the first sub-benchmark that needs it, under the
		// parent's directory, so a -bench filter builds only what it runs.
		root := filepath.Join(b.TempDir(), fmt.Sprint(i))
		var src *openSource
		for _, state := range []string{"clean", "crash"} {
			for _, path := range []string{"skip", "read-all"} {
				name := fmt.Sprintf("total=%dGiB/newest=%dMiB/%s/%s", c.total>>30, c.newest>>20, state, path)
				b.Run(name, func(b *testing.B) {
					if src == nil {
						s := buildOpenLog(b, root, c.total, c.newest)
						src = &s
					}
					benchOpen(b, *src, state, path == "read-all")
				})
			}
		}
	}
}

// openSource is a prepared log: dir holds it cleanly closed; crash holds
// the newest segment as it was before Close wrote its sync frame.
type openSource struct {
	dir    string
	newest string // file name of the newest segment
	crash  string // path of the crash copy of the newest segment
}

// buildOpenLog writes a log of about total bytes of 64 KiB records whose
// newest segment holds about newest bytes of them.
func buildOpenLog(b *testing.B, dir string, total, newest int64) openSource {
	b.Helper()
	l, err := Open(filepath.Join(dir, "log"), &Options{NoSync: true, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	rec := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range rec {
		rec[i] = byte(rng.Uint32())
	}
	segs := total / DefaultSegmentSize
	for written := int64(0); ; written += int64(len(rec)) {
		l.mu.Lock()
		n, tail := len(l.sealed), l.active.tail
		l.mu.Unlock()
		if int64(n) >= segs-1 && tail >= newest {
			break
		}
		if _, err := l.Append(rec); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	src := openSource{dir: filepath.Join(dir, "log"), newest: filepath.Base(l.active.path), crash: filepath.Join(dir, "crash")}
	copySparse(b, filepath.Join(src.dir, src.newest), src.crash)
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	return src
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
	names, err := os.ReadDir(src.dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range names {
		if e.Name() == src.newest {
			continue
		}
		// Open changes none of these: sealed segments, the meta file.
		if err := os.Link(filepath.Join(src.dir, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			b.Fatal(err)
		}
	}
	newest := filepath.Join(src.dir, src.newest)
	if state == "crash" {
		newest = src.crash
	}
	copySparse(b, newest, filepath.Join(dir, src.newest))
}

func benchOpen(b *testing.B, src openSource, state string, readAll bool) {
	dir := filepath.Join(b.TempDir(), "log")
	fsys := &countFS{FS: vfs.Default, unknown: readAll}
	var heap uint64
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		src.prepare(b, dir, state)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		l, err := Open(dir, &Options{FS: fsys, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
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
	b.ReportMetric(float64(fsys.read.Load())/(1<<20)/float64(b.N), "MiB-read/open")
	b.ReportMetric(float64(heap)/1024/float64(b.N), "KiB-heap/open")
}

// countFS counts the bytes read through it. With unknown set its files
// cannot tell where data lies, as on a file system without SEEK_DATA.
type countFS struct {
	vfs.FS
	unknown bool
	read    atomic.Int64
}

func (c *countFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &countFile{File: f, fs: c}, nil
}

type countFile struct {
	vfs.File
	fs *countFS
}

func (f *countFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.fs.read.Add(int64(n))
	return n, err
}

func (f *countFile) Data(off int64) (start, end int64, known bool, err error) {
	if f.fs.unknown {
		return 0, 0, false, nil
	}
	return f.File.Data(off)
}
