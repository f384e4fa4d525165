package cursor

import (
	"errors"
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
