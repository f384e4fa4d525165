package segment

import (
	"bytes"
	"testing"
)

// TestTailOfAFileThatShrank: a file shorter than the size its reader took
// (a segment sealed by the writer in another process, its preallocated
// space cut) ends the data where it ends. A frame whose header was read
// but whose rest lies past the new end is no frame, and no I/O error:
// wal dump and wal verify once failed with "read X: EOF" on a live,
// healthy log (cmd/wal's TestLiveToolsOnAnotherProcessesLog).
func TestTailOfAFileThatShrank(t *testing.T) {
	h := Header{FirstIndex: 7, Salt: testSalt}
	first := AppendFrame(nil, h.Salt, TypeRecord, None, 7, 0, []byte("kept"))
	// The second frame proves the first durable (its synced field lies past
	// where the search starts, at the first), so the search takes it when
	// it finds it.
	second := AppendFrame(nil, h.Salt, TypeRecord, None, 8, int64(DataStart+len(first)), bytes.Repeat([]byte{'x'}, 3*readChunk))
	file := append(append(make([]byte, DataStart), first...), second...)
	stated := int64(len(file)) + 1<<20 // the size taken before the file shrank
	for _, cut := range []int64{
		int64(DataStart + len(first) + 10),                // inside the second frame's header
		int64(DataStart + len(first) + FrameHeader + 100), // inside its payload
		int64(len(file) - 1),                              // one byte short
	} {
		w := &window{r: bytes.NewReader(file[:cut]), size: stated}
		got, err := tailIn(w, h, DataStart)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if got.Durable != nil {
			t.Fatalf("cut at %d: a frame past the end of the file was found: %+v", cut, got.Durable)
		}
	}
	// Whole, the second frame is found: the cut, not the search, hid it.
	w := &window{r: bytes.NewReader(file), size: stated}
	got, err := tailIn(w, h, DataStart)
	if err != nil || got.Durable == nil || got.Durable.Index != 8 {
		t.Fatalf("whole file: %+v, %v", got, err)
	}
}
