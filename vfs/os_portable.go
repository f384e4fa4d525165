//go:build journal_portable || windows || (unix && !linux && !darwin && !freebsd)

package vfs

// The portable path: what every platform has. Sync is (*os.File).Sync,
// which is fsync on Unix (F_FULLFSYNC on macOS) and FlushFileBuffers on
// Windows: each flushes the data and all the metadata (more than
// fdatasync, which may skip what reading the data back does not need).

func (f osFile) Sync() error { return f.File.Sync() }

// Preallocate extends the file to size: it reads as zeros past what was
// written, but no blocks are reserved, so a later write can still fail for
// want of space, and the next Sync may have a size change to flush.
func (f osFile) Preallocate(size int64) error {
	cur, err := f.Size()
	if err != nil || cur >= size {
		return err
	}
	return f.Truncate(size)
}
