package recovery_test

import (
	"errors"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
)

// garbleFS flips a byte in every read of segment files while garbles > 0
// (counted per read): damage that a log another process has open shows a
// walk once, as a TruncateBack sealing a segment anew under it does.
type garbleFS struct {
	vfs.FS
	garbles *atomic.Int64
}

type garbleFile struct {
	vfs.File
	garbles *atomic.Int64
}

func (g garbleFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := g.FS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, segment.Ext) {
		return f, err
	}
	return &garbleFile{File: f, garbles: g.garbles}, nil
}

func (f *garbleFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	const at = segment.DataStart + 40 // inside the first record's frame
	if off <= at && at < off+int64(n) && f.garbles.Add(-1) >= 0 {
		p[at-off] ^= 0xff
	}
	return n, err
}

// TestDamageSeenOnceIsNotReported: Check and Scan report damage only when
// a second walk finds it at the same place, unless the walker holds the
// log's lock. Damage that went by the next
// walk is a log changing under the reader, not damage; damage that stays
// is reported as before.
func TestDamageSeenOnceIsNotReported(t *testing.T) {
	dir := closedLog(t)
	for _, tc := range []struct {
		garbles int64
		damaged bool
	}{{0, false}, {1, false}, {1 << 30, true}} {
		var n atomic.Int64
		n.Store(tc.garbles)
		st, err := recovery.Check(garbleFS{vfs.Default, &n}, dir, recovery.CheckOptions{})
		if err != nil {
			t.Fatalf("garbles %d: Check: %v", tc.garbles, err)
		}
		if st.Damaged() != tc.damaged || st.NextIndex() != 301 {
			t.Fatalf("garbles %d: Check: damage %v (want damaged %v), next index %d", tc.garbles, st.Damage, tc.damaged, st.NextIndex())
		}
		st.Close()
		n.Store(tc.garbles)
		st, err = recovery.Scan(garbleFS{vfs.Default, &n}, dir, recovery.Options{Verify: true})
		if (err != nil) != tc.damaged {
			t.Fatalf("garbles %d: Scan: %v (want damaged %v)", tc.garbles, err, tc.damaged)
		}
		if err == nil {
			st.Close()
		}
	}
	// A walker that holds the log's lock (Open) reports damage at once:
	// nothing changes the directory under it, and a second walk would
	// only double the time Open takes to refuse a damaged log.
	var n atomic.Int64
	n.Store(1)
	if _, err := recovery.Scan(garbleFS{vfs.Default, &n}, dir, recovery.Options{Verify: true, Locked: true}); !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("Scan, Locked, damage seen once: %v, want ErrCorrupt", err)
	}
}
