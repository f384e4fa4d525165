package bench

import (
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// preallocChunk is how far ahead of the write offset a rawFile allocates
// disk space: the same 64 MiB as journal's default segment, so an
// fdatasync rarely has a file-size change to flush.
const preallocChunk = 64 << 20

// rawFile is a file written with pwrite at a growing offset and synced
// with fdatasync, counting its fdatasyncs. It is the ground the two
// hand-written baselines stand on.
type rawFile struct {
	f     *os.File
	off   int64 // where the next write goes
	alloc int64 // the end of the space allocated so far
	syncs atomic.Uint64
}

func createRaw(dir string) (*rawFile, error) {
	f, err := os.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return &rawFile{f: f}, nil
}

// write appends p, first allocating the next chunk if p would cross the
// allocated end.
func (r *rawFile) write(p []byte) error {
	if end := r.off + int64(len(p)); end > r.alloc {
		next := (end/preallocChunk + 1) * preallocChunk
		if err := unix.Fallocate(int(r.f.Fd()), 0, r.alloc, next-r.alloc); err != nil {
			return err
		}
		r.alloc = next
	}
	n, err := r.f.WriteAt(p, r.off)
	r.off += int64(n)
	return err
}

func (r *rawFile) sync() error {
	r.syncs.Add(1)
	return unix.Fdatasync(int(r.f.Fd()))
}

func (r *rawFile) Close() error { return r.f.Close() }
