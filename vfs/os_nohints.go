//go:build !linux || journal_portable

package vfs

// Outside Linux the hints are not taken.
//
// StartWriteback does nothing: sync_file_range is Linux's own, and a
// long write simply reaches the disk at its Sync.
//
// Data reports unknown, so recovery reads every byte of the newest
// segment (slower to Open, never wrong). lseek(SEEK_DATA) exists on macOS
// and FreeBSD, but whether it reports data still in the page cache as
// data has not been checked there, and OpenZFS had a release whose
// SEEK_DATA missed dirty data (OpenZFS issue 15526): reporting written
// records as a hole would make recovery cut acknowledged records.

func (osFile) StartWriteback(off, n int64) error { return nil }

func (osFile) Data(off int64) (start, end int64, known bool, err error) {
	return 0, 0, false, nil
}
