package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

func record(i uint64) []byte { return []byte(fmt.Sprintf("record-%06d", i)) }

func openT(t *testing.T, dir string, o *Options) *Log {
	t.Helper()
	l, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func checkRange(t *testing.T, l *Log, first, last uint64) {
	t.Helper()
	if f, g := l.FirstIndex(), l.LastIndex(); f != first || g != last {
		t.Fatalf("range = [%d, %d], want [%d, %d]", f, g, first, last)
	}
	for i := first; i <= last; i++ {
		got, err := l.Read(i)
		if err != nil {
			t.Fatalf("Read(%d): %v", i, err)
		}
		if !bytes.Equal(got, record(i)) {
			t.Fatalf("Read(%d) = %q, want %q", i, got, record(i))
		}
	}
	for _, i := range []uint64{first - 1, last + 1} {
		if _, err := l.Read(i); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Read(%d) outside the log: %v, want ErrNotFound", i, err)
		}
	}
}

func appendN(t *testing.T, l *Log, n int) {
	t.Helper()
	for range n {
		want := l.LastIndex() + 1
		i, err := l.Append(record(want))
		if err != nil || i != want {
			t.Fatalf("Append = %d, %v; want %d", i, err, want)
		}
	}
}

func TestEmptyLog(t *testing.T) {
	l := openT(t, t.TempDir(), nil)
	defer l.Close()
	checkRange(t, l, 1, 0)
}

func TestAppendReadReopenAcrossSegments(t *testing.T) {
	for _, c := range []Compression{NoCompression, S2, Zstd} {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			dir := t.TempDir()
			o := &Options{SegmentSize: MinSegmentSize, Compression: c}
			l := openT(t, dir, o)
			appendN(t, l, 5000)
			if len(l.sealedCopy()) < 2 {
				t.Fatalf("want several segments, got %d sealed", len(l.sealedCopy()))
			}
			checkRange(t, l, 1, 5000)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openT(t, dir, o)
			defer l.Close()
			if r := l.Recovered(); r.Torn != nil {
				t.Fatalf("clean reopen reported a torn tail: %+v", r.Torn)
			}
			checkRange(t, l, 1, 5000)
			appendN(t, l, 10)
			checkRange(t, l, 1, 5010)
		})
	}
}

func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, &Options{SegmentSize: MinSegmentSize})
	const writers, each = 16, 200
	var wg sync.WaitGroup
	got := make(chan uint64, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				data := []byte(fmt.Sprintf("w%d-%d", w, j))
				i, err := l.Append(data)
				if err != nil {
					t.Error(err)
					return
				}
				r, err := l.Read(i)
				if err != nil || !bytes.Equal(r, data) {
					t.Errorf("Read(%d) = %q, %v; want %q", i, r, err, data)
				}
				got <- i
			}
		}()
	}
	wg.Wait()
	close(got)
	seen := map[uint64]bool{}
	for i := range got {
		if seen[i] {
			t.Fatalf("index %d given twice", i)
		}
		seen[i] = true
	}
	if len(seen) != writers*each || l.LastIndex() != writers*each {
		t.Fatalf("%d unique indexes, LastIndex %d", len(seen), l.LastIndex())
	}
	l.Close()
}

func TestTruncate(t *testing.T) {
	dir := t.TempDir()
	o := &Options{SegmentSize: MinSegmentSize}
	l := openT(t, dir, o)
	appendN(t, l, 3000)
	if err := l.TruncateFront(1200); err != nil {
		t.Fatal(err)
	}
	checkRange(t, l, 1200, 3000)
	if err := l.TruncateBack(1500); err != nil {
		t.Fatal(err)
	}
	checkRange(t, l, 1200, 1500)
	appendN(t, l, 100)
	checkRange(t, l, 1200, 1600)
	l.Close()
	l = openT(t, dir, o)
	checkRange(t, l, 1200, 1600)
	if err := l.TruncateFront(1601); err != nil {
		t.Fatal(err)
	}
	checkRange(t, l, 1601, 1600)
	appendN(t, l, 1)
	checkRange(t, l, 1601, 1601)
	if err := l.TruncateBack(1600); err != nil {
		t.Fatal(err)
	}
	checkRange(t, l, 1601, 1600)
	l.Close()
	l = openT(t, dir, o)
	defer l.Close()
	checkRange(t, l, 1601, 1600)
	appendN(t, l, 3)
	checkRange(t, l, 1601, 1603)
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, nil)
	if _, err := Open(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	l.Close()
	if _, err := l.Append(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	l = openT(t, dir, nil)
	l.Close()
}

func TestAppendDoesNotAllocateInSteadyState(t *testing.T) {
	// Compressible data: with compression on, the pooled buffers are used.
	// Under -race sync.Pool drops buffers on purpose, so only the path
	// without a pool is measured there.
	data := bytes.Repeat([]byte("journal!"), 16)
	codecs := []Compression{NoCompression, S2, Zstd}
	if raceEnabled {
		codecs = codecs[:1]
	}
	for _, c := range codecs {
		l := openT(t, t.TempDir(), &Options{NoSync: true, Compression: c})
		appendN(t, l, 100) // warm up buffers
		allocs := testing.AllocsPerRun(2000, func() {
			if _, err := l.Append(data); err != nil {
				t.Fatal(err)
			}
		})
		l.Close()
		// The offsets slice of the active segment grows by doubling:
		// amortised far below one allocation per append.
		if allocs > 0.05 {
			t.Fatalf("Append with compression %d allocates %.2f times per call", c, allocs)
		}
	}
}

func TestReaderReplaysAcrossSegmentsAndFollowsAppends(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, NoSync: true})
	defer l.Close()
	appendN(t, l, 4000)
	if err := l.TruncateFront(10); err != nil {
		t.Fatal(err)
	}
	for _, from := range []uint64{0, 10, 11, 1234, 3999, 4000, 4001} {
		r := l.NewReader(from)
		want := max(from, 10)
		for r.Next() {
			if r.Index() != want || !bytes.Equal(r.Record(), record(want)) {
				t.Fatalf("from %d: got %d %q, want %d", from, r.Index(), r.Record(), want)
			}
			want++
		}
		if r.Err() != nil || want != 4001 {
			t.Fatalf("from %d: stopped before %d: %v", from, want, r.Err())
		}
		appendN(t, l, 1)
		syncT(t, l) // NoSync: Readers see records once durable
		if !r.Next() || r.Index() != want {
			t.Fatalf("from %d: reader did not pick up the appended record", from)
		}
		r.Close()
		if err := l.TruncateBack(4000); err != nil {
			t.Fatal(err)
		}
	}
}

// A batch that waits for a segment rotation must still learn its own first
// index (found by the kill test).
func TestConcurrentBatchesGetTheirOwnIndexes(t *testing.T) {
	l := openT(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, NoSync: true})
	defer l.Close()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				batch := [][]byte{[]byte(fmt.Sprintf("w%d-%d-a", w, j)), []byte(fmt.Sprintf("w%d-%d-b", w, j))}
				first, err := l.AppendBatch(batch)
				if err != nil {
					t.Error(err)
					return
				}
				for k, want := range batch {
					if got, err := l.Read(first + uint64(k)); err != nil || !bytes.Equal(got, want) {
						t.Errorf("Read(%d) = %q, %v; want %q", first+uint64(k), got, err, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// blockingFS holds the first write that reaches it until released, then
// fails it.
type blockingFS struct {
	vfs.FS
	started, release chan struct{}
	once             sync.Once
}

type blockingFile struct {
	vfs.File
	fs *blockingFS
}

func (b *blockingFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := b.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return blockingFile{f, b}, nil
}

func (f blockingFile) WriteAt(p []byte, off int64) (int, error) {
	if off < segment.DataStart {
		return f.File.WriteAt(p, off) // the header, written at creation
	}
	failed := false
	f.fs.once.Do(func() {
		close(f.fs.started)
		<-f.fs.release
		failed = true
	})
	if failed {
		return 0, errors.New("injected write failure")
	}
	return f.File.WriteAt(p, off)
}

// Frames gathered while a write fails claim that write was durable: they
// must never reach the disk, not even when Close flushes (found by
// TestIOErrors).
func TestNothingIsWrittenAfterAFailedWrite(t *testing.T) {
	dir := t.TempDir()
	bfs := &blockingFS{FS: vfs.Default, started: make(chan struct{}), release: make(chan struct{})}
	l := openT(t, dir, &Options{FS: bfs})
	first := make(chan error)
	go func() {
		_, err := l.Append([]byte("fails"))
		first <- err
	}()
	<-bfs.started
	second := make(chan error)
	go func() {
		_, err := l.Append([]byte("gathered behind the failing write"))
		second <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the second append gather
	close(bfs.release)
	if err := <-first; !errors.Is(err, ErrFailed) {
		t.Fatalf("the failing append: %v, want ErrFailed", err)
	}
	if err := <-second; !errors.Is(err, ErrFailed) {
		t.Fatalf("the append behind it: %v, want ErrFailed", err)
	}
	if err := l.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close of a failed log: %v, want ErrFailed", err)
	}
	l = openT(t, dir, nil)
	defer l.Close()
	checkRange(t, l, 1, 0)
}

// An empty batch linearizes as a call that appends nothing: it returns
// LastIndex()+1, not an index past appends still in flight, which may fail
// and never hold a record (found by the concurrent model check in fuzz/).
func TestEmptyBatchIgnoresAppendsInFlight(t *testing.T) {
	bfs := &blockingFS{FS: vfs.Default, started: make(chan struct{}), release: make(chan struct{})}
	l := openT(t, t.TempDir(), &Options{FS: bfs})
	failing := make(chan error)
	go func() {
		_, err := l.Append([]byte("in flight, then fails"))
		failing <- err
	}()
	<-bfs.started
	if next, err := l.AppendBatch(nil); err != nil || next != 1 {
		t.Errorf("empty AppendBatch with an append in flight = %d, %v; want 1 (LastIndex()+1), nil", next, err)
	}
	close(bfs.release)
	if err := <-failing; !errors.Is(err, ErrFailed) {
		t.Fatalf("the failing append: %v, want ErrFailed", err)
	}
	checkRange(t, l, 1, 0)
	l.Close()
}

func TestEmptyRecordsAndBatches(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []Compression{NoCompression, Zstd} {
		l := openT(t, dir, &Options{Compression: c})
		first, err := l.AppendBatch([][]byte{{}, nil, []byte("x"), {}})
		if err != nil {
			t.Fatal(err)
		}
		next, err := l.AppendBatch(nil)
		if err != nil || next != first+4 {
			t.Fatalf("empty AppendBatch = %d, %v; want %d, nil", next, err, first+4)
		}
		if i, err := l.Append(nil); err != nil || i != first+4 {
			t.Fatalf("Append(nil) = %d, %v", i, err)
		}
		l.Close()
		l = openT(t, dir, nil)
		for i, want := range []string{"", "", "x", "", ""} {
			got, err := l.Read(first + uint64(i))
			if err != nil || string(got) != want {
				t.Fatalf("Read(%d) = %q, %v; want %q", first+uint64(i), got, err, want)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); !errors.Is(err, ErrClosed) {
			t.Fatalf("second Close: %v, want ErrClosed", err)
		}
	}
}

// sealedCopy lists the sealed segments.
func (l *Log) sealedCopy() []*sealedSegment {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sealed)
}
