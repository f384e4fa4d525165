package cursor

import (
	"errors"
	"fmt"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// Inspect reads the positions stored in dir without opening the store: it
// takes no lock and writes nothing, so it works while a Store has the
// directory open (it then sees the acknowledgements durable when it reads
// each file) and on a read-only mount. It reads what Open would load: the
// snapshot, then the records after it, stopping where recovery would cut
// a torn tail. A directory with damage Open would refuse gives that error.
func Inspect(fsys vfs.FS, dir string) ([]Cursor, error) {
	st, err := recovery.Scan(fsys, dir, recovery.Options{})
	if err != nil {
		return nil, fmt.Errorf("cursor: inspect %s: %w", dir, err)
	}
	pos := make(map[string]uint64)
	if err := loadSnapshot(fsys, dir, pos); err != nil {
		return nil, fmt.Errorf("cursor: inspect %s: %w", dir, err)
	}
	from := max(st.FirstIndex, st.Snapshot+1)
	for _, seg := range st.Segments {
		if seg.Next != 0 && seg.Next <= from {
			continue
		}
		if err := replaySegment(fsys, seg, from, pos); err != nil {
			return nil, fmt.Errorf("cursor: inspect %s: %w", dir, err)
		}
	}
	return sorted(pos), nil
}

func loadSnapshot(fsys vfs.FS, dir string, pos map[string]uint64) error {
	_, rc, err := checkpoint.Load(fsys, dir)
	if errors.Is(err, checkpoint.ErrNoSnapshot) {
		return nil
	} else if err != nil {
		return err
	}
	err = decodeSnapshot(rc, pos)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return err
}

// replaySegment applies the records of seg from index from on. A scan
// reads every record frame in order, sealed segment or not, and stops
// where the valid data ends.
func replaySegment(fsys vfs.FS, seg recovery.Segment, from uint64, pos map[string]uint64) error {
	h, err := segment.OpenHandle(fsys, seg.Path)
	if err != nil {
		return err
	}
	defer h.Close()
	sc := h.Scan()
	for sc.Next() {
		f := sc.Frame()
		if f.Index < from {
			continue
		}
		rec, err := segment.Decompress(f.Codec, f.Data)
		if err == nil {
			err = applyRecord(pos, rec)
		}
		if err != nil {
			return fmt.Errorf("%s record %d: %w", seg.Path, f.Index, err)
		}
	}
	return sc.Err()
}
