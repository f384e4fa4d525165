// Package vfs is the file-system seam of journal: every file operation the
// log, its recovery and its checkpoints perform goes through an FS.
//
// Default is the operating system. Tests substitute their own FS (for example
// one that forgets what was never synced, or one that injects I/O errors), so
// the durability protocol can be checked without pulling a power cord.
//
// The seam is deliberately small: only what a write-ahead log needs, with
// durability made explicit (File.Sync is fdatasync, FS.SyncDir makes creates,
// renames and removes in a directory durable). Behaviours only some file
// systems have (File.Chmod, File.StartWriteback, File.Data) are methods
// every File has and may implement as a no-op (or, for Data, as "unknown"),
// so the code under test never takes a different path from the code in
// production.
//
// The package owns the FS and File interfaces, the OS implementation
// (Default), the lock that keeps one Log per directory (FS.Lock), and the
// one way journal replaces a whole file: WriteFile, whose temporary files
// start with TempPrefix so that recovery can recognise and remove them.
//
// The two test file systems beside it are public, so an application built
// on journal can be crash-tested the same way journal is: vfs/crashfs
// models what a power loss keeps, vfs/errorfs injects I/O errors. Pass
// either as wal.Options.FS.
package vfs

import (
	"errors"
	"io"
	"io/fs"
)

// ErrLocked is returned by FS.Lock when another holder (in this process or
// another) already holds the lock.
var ErrLocked = errors.New("vfs: already locked by another process or Log")

// ErrNotRegular is returned (inside an *fs.PathError) by the operating
// system's OpenFile on Unix, and by crashfs, for a file that is not a
// regular file: a directory, FIFO, socket or device never holds a log's
// data, and opening or reading one may block forever. For a directory
// (and a socket, which open(2) refuses) the system's error, EISDIR
// (ENXIO), is in the chain too.
var ErrNotRegular = errors.New("vfs: not a regular file")

// File is an open file. Its methods are safe for concurrent use as far as the
// underlying positional I/O is (ReadAt and WriteAt at distinct ranges).
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	// Sync makes all data written so far durable (fdatasync on Linux and
	// FreeBSD, F_FULLFSYNC on macOS, FlushFileBuffers on Windows): after
	// it returns nil the bytes survive a power loss. It also makes the
	// file's size durable when it changed.
	Sync() error
	// Truncate changes the file's size; Sync makes the change durable.
	Truncate(size int64) error
	// Preallocate reserves space so the file is at least size bytes long,
	// reading as zeros where nothing was written.
	Preallocate(size int64) error
	// Size reports the file's current size.
	Size() (int64, error)
	// Name is the path the file was opened with.
	Name() string

	// The methods below are optional behaviours: every File has them, so
	// code never type-asserts for them and a test FS runs the same path as
	// the OS, but a file system without the behaviour implements them as a
	// no-op that returns nil.

	// Chmod sets the file's permission bits (fchmod), for example to undo
	// the umask that OpenFile applied. Sync (fdatasync) need not make the
	// change durable; a directory sync commits it on file systems that
	// journal metadata in order (ext4, XFS). A file system without
	// permission bits may do nothing.
	Chmod(mode fs.FileMode) error
	// StartWriteback starts writing the bytes [off, off+n) to stable
	// storage without waiting for them (sync_file_range), so a long write
	// reaches the disk as it goes rather than in one burst at Sync. It is
	// only a hint: it makes nothing durable (only Sync does), and it may do
	// nothing.
	StartWriteback(off, n int64) error
	// Data reports where written data may lie at or after off: every byte
	// of [off, start) reads as zero because nothing was ever written there
	// (preallocated space, a hole), and [start, end) may hold data. start
	// is the file's size when nothing at or after off may. It may say
	// more is data than was written (whole blocks, a file system that
	// rounds), never less. known is false when the file system cannot
	// tell; the caller must then read every byte.
	Data(off int64) (start, end int64, known bool, err error)
}

// FS is a file system. Paths use the host's separator.
type FS interface {
	// OpenFile opens or creates a file, like os.OpenFile.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// Remove removes a file; SyncDir on its directory makes that durable.
	Remove(name string) error
	// Rename atomically replaces newname with oldname; SyncDir on the
	// directory makes that durable.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and its parents.
	MkdirAll(dir string, perm fs.FileMode) error
	// ReadDir lists the names in dir, sorted.
	ReadDir(dir string) ([]string, error)
	// Stat describes a file.
	Stat(name string) (fs.FileInfo, error)
	// SyncDir makes the entries of dir (files created, renamed or removed in
	// it) durable. Windows has no such call: there the OS FS writes renames
	// through and relies on NTFS's metadata journal for the rest (see
	// os_windows.go).
	SyncDir(dir string) error
	// Lock takes an exclusive advisory lock on the file name (creating it),
	// failing at once with ErrLocked if it is held. Closing the result
	// releases the lock.
	Lock(name string) (io.Closer, error)
}
