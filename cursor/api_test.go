package cursor

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/apitest"
	"github.com/gojournal/journal/wal"
)

// Every exported method of a closed Store, found by reflection so that a
// method added later is covered too, returns without panicking or
// hanging, and every error it returns is wal.ErrClosed: also an Ack that
// would not move the position and a Delete of a consumer, which write
// nothing, and a Compact. The positions are still reported as Close left
// them.
func TestEveryMethodAfterClose(t *testing.T) {
	for _, name := range []string{"c", "other"} { // apitest names consumer "c"
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, quietOpts())
			ack(t, s, name, 5)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			for _, c := range apitest.CallAll(t, s, 10*time.Second) {
				switch {
				case c.Panic != nil:
					t.Errorf("Store.%v", c)
				case c.HasErr && !errors.Is(c.Err, wal.ErrClosed):
					t.Errorf("Store.%v, want wal.ErrClosed", c)
				}
			}
			if i, ok := s.Position(name); !ok || i != 5 {
				t.Errorf("Position(%q) after Close = %d, %v; want 5, true", name, i, ok)
			}
			s = open(t, dir, quietOpts())
			defer s.Close()
			wantList(t, s.List(), Cursor{Name: name, Index: 5})
		})
	}
}

// Options out of range are refused with wal.ErrInvalidOptions naming the
// field as the caller wrote it (cursor.Options.CompactBytes, not the
// log's Checkpoint.EveryBytes it becomes), and nothing is created.
func TestOpenRefusesInvalidOptions(t *testing.T) {
	for _, c := range []struct {
		field string
		opts  Options
	}{
		{"CompactBytes", Options{CompactBytes: -1}},
		{"SegmentSize", Options{Log: wal.Options{SegmentSize: -1}}},
		{"Log.Checkpoint", Options{Log: wal.Options{Checkpoint: wal.CheckpointOptions{MaxRate: 1}}}},
	} {
		dir := filepath.Join(t.TempDir(), "cursors")
		c.opts.Log.Logger = quiet
		s, err := Open(dir, &c.opts)
		if err == nil {
			s.Close()
			t.Errorf("Open accepted %+v", c.opts)
			continue
		}
		if !errors.Is(err, wal.ErrInvalidOptions) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("Open with %+v: %v; want wal.ErrInvalidOptions naming %s", c.opts, err, c.field)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the refused Open created %s (%v)", dir, err)
		}
	}
}
