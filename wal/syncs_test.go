package wal

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// traceFS records, in order, the calls that change or make durable what is
// on disk: "write NAME", "sync NAME", "rename OLD NEW", "syncdir", "remove
// NAME", by base name.
type traceFS struct {
	vfs.FS
	mu    sync.Mutex
	ops   []string
	alias map[string]string // a renamed file's new name, by its old one
	// unaligned lists the writes into segments (or their temporary
	// names) that do not start at a 512-byte boundary; short, those that
	// do not end at one (by file, the position in ops of each).
	unaligned []string
	short     map[string][]int
	lastWrite map[string]int
	writes    int
}

// nameOf is the name the file opened as name has now: journal renames a
// segment it wrote under a temporary name, and keeps it open.
func (t *traceFS) nameOf(name string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		n, ok := t.alias[name]
		if !ok {
			return name
		}
		name = n
	}
}

func (t *traceFS) add(op string) {
	t.mu.Lock()
	t.ops = append(t.ops, op)
	t.mu.Unlock()
}

// take returns the calls recorded since the last take.
func (t *traceFS) take() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ops := t.ops
	t.ops = nil
	return ops
}

func (t *traceFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := t.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &traceFile{File: f, fs: t, name: filepath.Base(name)}, nil
}

func (t *traceFS) Rename(oldname, newname string) error {
	err := t.FS.Rename(oldname, newname)
	if err == nil {
		t.mu.Lock()
		if t.alias == nil {
			t.alias = map[string]string{}
		}
		t.alias[filepath.Base(oldname)] = filepath.Base(newname)
		delete(t.alias, filepath.Base(newname))
		t.mu.Unlock()
		t.add("rename " + filepath.Base(oldname) + " " + filepath.Base(newname))
	}
	return err
}

func (t *traceFS) Remove(name string) error {
	err := t.FS.Remove(name)
	if err == nil {
		t.add("remove " + filepath.Base(name))
	}
	return err
}

func (t *traceFS) SyncDir(dir string) error {
	err := t.FS.SyncDir(dir)
	if err == nil {
		t.add("syncdir")
	}
	return err
}

type traceFile struct {
	vfs.File
	fs   *traceFS
	name string
}

func (f *traceFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	name := f.fs.nameOf(f.name)
	if strings.HasSuffix(name, segment.Ext) || strings.HasPrefix(name, vfs.TempPrefix+"spare") {
		f.fs.mu.Lock()
		if off%segment.SectorSize != 0 {
			f.fs.unaligned = append(f.fs.unaligned, fmt.Sprintf("%s [%d, %d)", name, off, off+int64(len(p))))
		}
		if f.fs.short == nil {
			f.fs.short, f.fs.lastWrite = map[string][]int{}, map[string]int{}
		}
		f.fs.writes++
		f.fs.lastWrite[name] = f.fs.writes
		if off > 0 && int64(len(p))%segment.SectorSize != 0 {
			f.fs.short[name] = append(f.fs.short[name], f.fs.writes)
		}
		f.fs.mu.Unlock()
	}
	f.fs.add("write " + name)
	return n, err
}

func (f *traceFile) Sync() error {
	err := f.File.Sync()
	if err == nil {
		f.fs.add("sync " + f.fs.nameOf(f.name))
	}
	return err
}

// count counts the calls in ops that start with prefix.
func count(ops []string, prefix string) int {
	n := 0
	for _, op := range ops {
		if strings.HasPrefix(op, prefix) {
			n++
		}
	}
	return n
}

// index is the position of the first op at or after from equal to want, or -1.
func index(ops []string, from int, want string) int {
	for i := from; i < len(ops); i++ {
		if ops[i] == want {
			return i
		}
	}
	return -1
}

// checkReplaced checks that ops write a file under a temporary name,
// fdatasync it, rename it to name, then sync the directory: the sequence
// the README's Assumptions give for new segments and for the meta file and
// the manifest.
func checkReplaced(t *testing.T, what string, ops []string, name string) {
	t.Helper()
	ren := -1
	for i, op := range ops {
		if strings.HasPrefix(op, "rename "+vfs.TempPrefix) && strings.HasSuffix(op, " "+name) {
			ren = i
		}
	}
	if ren < 0 {
		t.Errorf("%s: no rename of a temporary file to %s in %q", what, name, ops)
		return
	}
	tmp := strings.Fields(ops[ren])[1]
	lastWrite, synced := -1, -1
	for i := 0; i < ren; i++ {
		switch ops[i] {
		case "write " + tmp:
			lastWrite = i
		case "sync " + tmp:
			synced = i
		}
	}
	if lastWrite < 0 || synced < lastWrite {
		t.Errorf("%s: %s renamed to %s without an fdatasync after its last write: %q", what, tmp, name, ops)
	}
	if index(ops, ren+1, "syncdir") < 0 {
		t.Errorf("%s: no directory sync after renaming %s to %s: %q", what, tmp, name, ops)
	}
}

// TestSyncsTheReadmePromises checks, on real files, the fdatasyncs and
// directory syncs the README's Assumptions list: one fdatasync per group
// commit and no directory sync; for a new segment, written under a
// temporary name, an fdatasync, the rename, a directory sync, and an
// fdatasync of the segment it seals before a record goes into the new one;
// for TruncateFront, an fdatasync before it commits and the meta file
// replaced the same way; at Close an fdatasync after the sync frame and
// again after the footer, and the manifest replaced the same way. (From an
// audit of the README: TestSyncMutants shows each sync is needed, nothing
// showed these are the ones issued.) Every write into a segment starts
// and ends on a 512-byte boundary.
func TestSyncsTheReadmePromises(t *testing.T) {
	dir := t.TempDir()
	tfs := &traceFS{FS: vfs.Default}
	l := openT(t, dir, &Options{Logger: quiet, FS: tfs, SegmentSize: MinSegmentSize})
	first := segment.Name(1)
	// Let Open's work, and the spare segment it prepares, settle.
	appendN(t, l, 1)
	tfs.take()

	// One fdatasync per group commit, of the active segment.
	for i := range 10 {
		appendN(t, l, 1)
		ops := tfs.take()
		if n := count(ops, "sync "); n != 1 || count(ops, "sync "+first) != 1 {
			t.Fatalf("append %d: %d fdatasyncs (%q), want one of %s", i+2, n, ops, first)
		}
		if count(ops, "syncdir") != 0 || count(ops, "rename ") != 0 {
			t.Fatalf("append %d: %q, want no directory sync or rename", i+2, ops)
		}
	}

	// A rotation: the new segment is made durable (contents and name)
	// and the old one sealed and synced before a record is acknowledged
	// in the new one.
	rotations := l.Metrics().Rotations
	var ops []string
	for l.Metrics().Rotations == rotations {
		if _, err := l.Append(make([]byte, 3000)); err != nil {
			t.Fatal(err)
		}
		ops = append(ops, tfs.take()...)
	}
	second := segment.Name(l.LastIndex())
	checkReplaced(t, "rotation", ops, second)
	lastOld, syncOld := -1, -1
	for i, op := range ops {
		switch op {
		case "write " + first:
			lastOld = i
		case "sync " + first:
			syncOld = i
		}
	}
	if syncOld < lastOld {
		t.Errorf("rotation: %s not synced after its last write (the footer): %q", first, ops)
	}
	// The record that went into the new segment was written, and synced,
	// under the temporary name (checkReplaced: an fdatasync after its
	// last write, then the rename and the directory sync), all before
	// Append returned: ops holds only calls made before it did.
	appendN(t, l, 3)
	tfs.take()

	// TruncateFront: the meta file under a temporary name, synced,
	// renamed, the directory synced.
	if err := l.TruncateFront(5); err != nil {
		t.Fatal(err)
	}
	ops = tfs.take()
	checkReplaced(t, "TruncateFront", ops, recovery.MetaName)

	// Close: the active segment synced after its sync frame and again
	// after its footer; the manifest replaced as the meta file is.
	if l.Metrics().Rotations != rotations+1 {
		t.Fatalf("another rotation: %d, want %d", l.Metrics().Rotations, rotations+1)
	}
	active := second
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ops = tfs.take()
	var seq []string
	for _, op := range ops {
		if op == "write "+active || op == "sync "+active {
			seq = append(seq, strings.Fields(op)[0])
		}
	}
	if got := strings.Join(seq, ","); !strings.HasPrefix(got, "write,sync,write") || !strings.HasSuffix(got, "write,sync") || count(ops, "sync "+active) < 2 {
		t.Errorf("Close: the active segment's writes and syncs are %s, want the sync frame written and synced, then the footer written and synced (%q)", got, ops)
	}
	checkReplaced(t, "Close", ops, recovery.ManifestName)
	// "every write starts at a 512-byte boundary and is padded to one":
	// every write starts at one; the header (at offset 0 of a file no
	// one has seen yet) and a footer (a segment's last write) are not
	// padded, which tears no durable sector: README.proposed.md.
	if len(tfs.unaligned) > 0 {
		t.Errorf("segment writes not starting on a 512-byte boundary: %q", tfs.unaligned)
	}
	for name, seqs := range tfs.short {
		for _, seq := range seqs {
			if seq != tfs.lastWrite[name] {
				t.Errorf("%s: write #%d ends off a 512-byte boundary and is not the segment's last (its footer)", name, seq)
			}
		}
	}

	// NoSync: records appended since the last Sync are made durable by an
	// fdatasync before the truncation's meta file commits (every record
	// was already synced above, so none was needed there).
	tfs = &traceFS{FS: vfs.Default}
	l = openT(t, t.TempDir(), &Options{Logger: quiet, FS: tfs, NoSync: true})
	defer l.Close()
	appendN(t, l, 10)
	tfs.take()
	if err := l.TruncateFront(3); err != nil {
		t.Fatal(err)
	}
	ops = tfs.take()
	checkReplaced(t, "NoSync TruncateFront", ops, recovery.MetaName)
	r := -1
	for i, op := range ops {
		if strings.HasPrefix(op, "rename ") && strings.HasSuffix(op, " "+recovery.MetaName) {
			r = i
		}
	}
	if s := index(ops, 0, "sync "+first); s < 0 || s > r {
		t.Errorf("NoSync TruncateFront: no fdatasync of %s before the meta file commits: %q", first, ops)
	}
}
