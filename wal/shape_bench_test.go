package wal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// BenchmarkSingleWriterShape looks into why one writer of 4 KiB records is
// slower than the raw loop of BenchmarkAppend's baseline: it runs, in one
// process, the journal, the baseline (4096-byte writes at 4096-byte
// strides: one file-system page per fdatasync) and the baseline shaped like
// the journal's writes (the frame of a 4 KiB record padded to a sector:
// 4608 bytes at 4608-byte strides, so consecutive writes share a page and
// each fdatasync writes two). If "shaped" is as slow as the journal, the
// gap is the I/O shape the format implies, not the code.
func BenchmarkSingleWriterShape(b *testing.B) {
	const size = 4096
	frame := segment.AlignSector(segment.FrameSize(size))
	b.Run("impl=journal", func(b *testing.B) { benchJournal(b, size, 1) })
	b.Run("impl=raw-4096", func(b *testing.B) { benchRawStride(b, size, size) })
	b.Run("impl=raw-shaped", func(b *testing.B) { benchRawStride(b, int(frame), frame) })
}

// benchRawStride writes n-byte buffers at stride-byte steps into a
// preallocated file, one fdatasync each (the platform's Sync: fdatasync
// on Linux).
func benchRawStride(b *testing.B, n int, stride int64) {
	f, err := vfs.Default.OpenFile(filepath.Join(b.TempDir(), "raw"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Preallocate(DefaultSegmentSize); err != nil {
		b.Fatal(err)
	}
	var off int64
	runWriters(b, n, 1, func(data []byte) error {
		if _, err := f.WriteAt(data, off); err != nil {
			return err
		}
		off = (off + stride) % (DefaultSegmentSize - stride)
		return f.Sync()
	})
}
