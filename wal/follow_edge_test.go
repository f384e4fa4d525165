package wal

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// A follower started before its writer: on a directory that does not
// exist OpenReadOnly fails with an error that is fs.ErrNotExist (so a
// caller can tell "not yet" from damage and retry); on an empty directory
// it opens an empty log whose Reader waits for, and then returns, the
// first records a writer appends. A follower retrying while a writer's
// Open creates the directory (its files appearing one by one) never sees
// anything but "not yet" or the log.
func TestReadOnlyBeforeTheLogExists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	if _, err := OpenReadOnly(dir, &Options{Logger: quiet}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenReadOnly of a missing directory: %v, want fs.ErrNotExist", err)
	}
	must(t, os.Mkdir(dir, 0o755))
	f, _ := openFollower(t, dir)
	defer f.Close()
	if first, last := f.FirstIndex(), f.LastIndex(); first != 1 || last != 0 {
		t.Fatalf("an empty directory reads as [%d, %d], want [1, 0]", first, last)
	}
	r := f.NewReader(0)
	defer r.Close()
	if r.Next() || r.Err() != nil {
		t.Fatalf("Next on an empty log: %v at %d, want false, nil", r.Err(), r.Index())
	}
	got := make(chan error, 1)
	go func() {
		for i := uint64(1); i <= 20; i++ {
			if n, rec := nextWithin(t, r); n != i || rec != string(record(i)) {
				got <- errors.New("wrong record " + rec)
				return
			}
		}
		got <- nil
	}()
	time.Sleep(5 * time.Millisecond) // the Reader waits before the writer exists
	w := openT(t, dir, &Options{Logger: quiet})
	defer w.Close()
	appendN(t, w, 20)
	must(t, <-got)

	for range 20 {
		followWhileCreated(t, filepath.Join(t.TempDir(), "log"))
	}
}

// followWhileCreated retries OpenReadOnly while a writer's Open creates
// dir and appends, and checks the follower then reads every record.
func followWhileCreated(t *testing.T, dir string) {
	t.Helper()
	opened := make(chan *Log, 1)
	go func() {
		w, err := Open(dir, &Options{Logger: quiet})
		if err != nil {
			t.Error(err)
			opened <- nil
			return
		}
		for i := uint64(1); i <= 5; i++ {
			if _, err := w.Append(record(i)); err != nil {
				t.Error(err)
			}
		}
		opened <- w
	}()
	var f *Log
	for deadline := time.Now().Add(10 * time.Second); f == nil; {
		var err error
		f, err = OpenReadOnly(dir, &Options{Logger: quiet})
		switch {
		case err == nil:
		case !errors.Is(err, fs.ErrNotExist):
			t.Fatalf("OpenReadOnly while the writer creates the directory: %v", err)
		case time.Now().After(deadline):
			t.Fatal("the directory never appeared")
		}
	}
	defer f.Close()
	r := f.NewReader(0)
	defer r.Close()
	for i := uint64(1); i <= 5; i++ {
		if n, rec := nextWithin(t, r); n != i || rec != string(record(i)) {
			t.Fatalf("got %d %q, want %d", n, rec, i)
		}
	}
	if w := <-opened; w != nil {
		must(t, w.Close())
	}
}

// Readers of a read-only Log created at the edges of the log: one below
// FirstIndex fails with ErrCompacted, one at LastIndex+1 (or further, up
// to the largest index) waits without error; the one at LastIndex+1 gets
// the next record appended, the ones further on do not get it.
func TestReadOnlyReadersAtTheEdges(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	defer w.Close()
	appendN(t, w, 300)
	must(t, w.TruncateFront(100))
	f, _ := openFollower(t, dir)
	defer f.Close()

	below := f.NewReader(99)
	defer below.Close()
	wantStop(t, below, ErrCompacted, "99")
	first := f.NewReader(100)
	defer first.Close()
	if n, _ := nextWithin(t, first); n != 100 {
		t.Fatalf("Reader at FirstIndex returned %d", n)
	}
	var far []*Reader
	for _, from := range []uint64{301, 302, math.MaxUint64} {
		r := f.NewReader(from)
		defer r.Close()
		if r.Next() || r.Err() != nil {
			t.Fatalf("Reader at %d past the end: Next returned %d, %v", from, r.Index(), r.Err())
		}
		far = append(far, r)
	}
	appendN(t, w, 1)
	if n, rec := nextWithin(t, far[0]); n != 301 || rec != string(record(301)) {
		t.Fatalf("Reader at LastIndex+1 returned %d %q", n, rec)
	}
	for _, r := range far[1:] {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		if r.NextContext(ctx) || !errors.Is(r.Err(), context.DeadlineExceeded) {
			t.Fatalf("Reader past LastIndex+1 returned %d, %v", r.Index(), r.Err())
		}
		cancel()
	}
}

// Many Readers wait in NextContext and Follow on one read-only Log while a
// writer appends; the Log's Close ends every one of them with ErrClosed
// (none hangs, none panics on files Close released), and a Reader used
// after Close gets ErrClosed too.
func TestReadOnlyCloseStopsManyReaders(t *testing.T) {
	rng := seedtest.Rand(t)
	dir := t.TempDir()
	w := openT(t, dir, &Options{SegmentSize: MinSegmentSize, Logger: quiet})
	defer w.Close()
	appendN(t, w, 50)
	for round := range 10 {
		f, _ := openFollower(t, dir)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for k := range 16 {
			r := f.NewReader(uint64(1 + rng.IntN(int(w.LastIndex()))))
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer r.Close()
				if k%2 == 0 {
					for range r.Follow(context.Background()) {
					}
				} else {
					for r.NextContext(context.Background()) {
					}
				}
				errs <- r.Err()
			}()
		}
		stop := make(chan struct{})
		appended := make(chan struct{})
		go func() {
			defer close(appended)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := w.Append(record(w.LastIndex() + 1)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		must(t, f.Close())
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Readers still running 10 s after Close", round)
		}
		close(stop)
		<-appended
		close(errs)
		for err := range errs {
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("round %d: a Reader stopped by Close: %v, want ErrClosed", round, err)
			}
		}
		late := f.NewReader(1)
		if late.Next() || !errors.Is(late.Err(), ErrClosed) {
			t.Fatalf("a Reader after Close: %v", late.Err())
		}
	}
}

// The Options of a writer can be given to its followers: OpenReadOnly
// accepts the writer-only fields and ignores them (a follower with other
// SegmentSize and Compression reads the writer's compressed log as
// written), refuses invalid values with ErrInvalidOptions naming the
// field, as Open does, and honours FS and Verify: with Verify a damaged
// record in a sealed segment fails OpenReadOnly as it fails Open, without
// it the damage is reported when the record is read.
func TestReadOnlyOptions(t *testing.T) {
	dir := t.TempDir()
	wopts := &Options{SegmentSize: MinSegmentSize, Compression: Zstd, NoSync: true, SlowSync: -1, Logger: quiet}
	w := openT(t, dir, wopts)
	big := strings.Repeat("compressible ", 100)
	for i := range 300 {
		if _, err := w.Append([]byte(big + string(record(uint64(i+1))))); err != nil {
			t.Fatal(err)
		}
	}
	must(t, w.Close())

	for _, o := range []*Options{wopts, {SegmentSize: 4 * MinSegmentSize, Compression: S2, Logger: quiet}} {
		f, err := OpenReadOnly(dir, o)
		must(t, err)
		if first, last := f.FirstIndex(), f.LastIndex(); first != 1 || last != 300 {
			t.Fatalf("follower with %+v holds [%d, %d], want [1, 300]", o, first, last)
		}
		if rec, err := f.Read(150); err != nil || string(rec) != big+string(record(150)) {
			t.Fatalf("Read(150) through a follower with %+v: %q, %v", o, rec, err)
		}
		must(t, f.Close())
	}
	for field, o := range map[string]Options{
		"SegmentSize": {SegmentSize: 1000},
		"Compression": {Compression: 7},
		"SlowSync":    {SlowSync: time.Nanosecond},
		"Checkpoint":  {Checkpoint: CheckpointOptions{EveryBytes: 1 << 20}},
		"Retention":   {Retention: RetentionOptions{MaxAge: -time.Second}},
	} {
		_, err := OpenReadOnly(dir, &o)
		if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), field) {
			t.Errorf("OpenReadOnly with a bad %s: %v, want ErrInvalidOptions naming it", field, err)
		}
	}

	// Damage one record in the oldest (sealed) segment.
	path := filepath.Join(dir, listSegments(t, dir)[0])
	flip(t, path, segment.DataStart+segment.FrameHeader+3, 0)
	if _, err := Open(dir, &Options{Verify: true, Logger: quiet}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with Verify of a damaged sealed segment: %v, want ErrCorrupt", err)
	}
	if f, err := OpenReadOnly(dir, &Options{Verify: true, Logger: quiet, FS: &readOnlyFS{FS: vfs.Default}}); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			f.Close()
		}
		t.Fatalf("OpenReadOnly with Verify of a damaged sealed segment: %v, want ErrCorrupt as from Open", err)
	}
	f, ro := openFollower(t, dir) // without Verify: opens, the read reports it
	defer f.Close()
	if _, err := f.Read(1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read(1) of the damaged record: %v, want ErrCorrupt", err)
	}
	if n := ro.tried.Load(); n != 0 {
		t.Fatalf("the follower tried %d changes through its FS", n)
	}
}

// listSegments lists the segment files in dir, oldest first.
func listSegments(t *testing.T, dir string) []string {
	t.Helper()
	var segs []string
	for _, name := range listDir(t, dir) {
		if strings.HasSuffix(name, segment.Ext) {
			segs = append(segs, name)
		}
	}
	return segs
}

// A writer crashed while writing a batch (its frames torn: the last
// record's bytes never reached the disk). A follower opened then shows the
// log as Open would recover it, whether the tail file says what the writer
// last published, is gone or was garbled by the crash: the records before
// the batch, none of the batch, with nothing repaired. When a writer then
// opens the log (cutting the torn tail) and appends records at the torn
// batch's indexes, the follower's Reader returns those new records.
func TestReadOnlyTornTailThenRepaired(t *testing.T) {
	base := newFixture(t, MinSegmentSize)
	groups := make([][]int, 0, 31)
	for range 30 {
		groups = append(groups, []int{100})
	}
	base.build(append(groups, []int{200, 200, 300})...)
	path, torn := base.frameOf(33)
	zero(t, path, torn.end-40, torn.end) // the batch's last write never landed
	_, last := base.frameOf(30)
	tailPath := filepath.Join(base.dir, recovery.TailName)
	published := func(b []byte) []byte { // as the crashed writer last published it
		tl, err := recovery.ReadTail(bytes.NewReader(b), tailPath)
		must(t, err)
		tl.Durable, tl.ActiveEnd = 30, last.next
		return tl.Encode(nil)
	}
	for _, c := range []struct {
		name string
		tail func([]byte) []byte // nil: no tail file
	}{
		{"Published", published},
		{"NoTailFile", nil},
		{"GarbledTailFile", func(b []byte) []byte { return make([]byte, len(b)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			fx := base.clone(t)
			tail := filepath.Join(fx.dir, recovery.TailName)
			if c.tail == nil {
				must(t, os.Remove(tail))
			} else {
				writeFile(t, tail, c.tail(readFile(t, tail)))
			}
			before := snapshot(t, fx.dir)
			f, ro := openFollower(t, fx.dir)
			defer f.Close()
			fx.forget(30)
			fx.check(f, 1, 30)
			r := f.NewReader(0)
			defer r.Close()
			for r.Next() {
				if i := r.Index(); string(r.Record()) != string(fx.recs[i-1]) {
					t.Fatalf("the follower returned %d %.20q, want %.20q", i, r.Record(), fx.recs[i-1])
				}
			}
			if r.Err() != nil || r.Index() != 30 {
				t.Fatalf("the follower's Reader stopped at %d: %v, want at 30", r.Index(), r.Err())
			}
			sameSnapshot(t, fx.dir, before) // the follower repaired nothing

			w := fx.open()
			defer w.Close()
			if got := w.Recovered().Torn; got == nil || got.Records != 2 {
				t.Fatalf("the writer's Open cut %+v, want the torn batch's 2 whole records", got)
			}
			fx.appendN(w, 5, 50)
			for i := uint64(31); i <= 35; i++ {
				if n, rec := nextWithin(t, r); n != i || rec != string(fx.recs[i-1]) {
					t.Fatalf("after the repair the follower returned %d %.20q, want %d %.20q", n, rec, i, fx.recs[i-1])
				}
			}
			fx.check(f, 1, 35)
			if n := ro.tried.Load(); n != 0 {
				t.Fatalf("the follower tried %d changes", n)
			}
		})
	}
}
