// Package errorfs wraps a vfs.FS to inject errors, for tests of how
// journal handles failing I/O: a failed fsync, a full disk, a rename that
// does not happen. An application built on journal can use it the same way,
// passing a wrapped FS as wal.Options.FS to see how it copes when the log's
// I/O fails.
//
// It owns the counting of calls and the rules that fail them. Every call
// through the wrapper, to the FS or to a File it opened, is of one Op kind
// and is counted per kind (Count). A Rule fails the N-th call of its kind
// (optionally only calls on matching paths), once or, when Sticky, from
// then on. A test that wants to fail each sync of a workload in turn runs
// it once clean, reads Count(OpSync), and reruns it with a Rule for N = 1,
// 2, ... of that.
//
// A failed call is not passed on: the wrapped FS never sees it, so nothing
// is written, synced, created, renamed, removed or chmodded (Close is the
// exception: the file is closed and the error returned anyway, as close(2)
// does). The optional File methods (Chmod, StartWriteback) are counted and
// failed like the others, since their callers must handle an error even
// where the OS makes them no-ops. What a failed fsync may have persisted is
// crashfs's business; stack an FS from Wrap over a crashfs.FS to test both.
//
// The injected error is an *Error. It satisfies errors.Is(err, ErrInjected)
// and errors.Is with the rule's Err, syscall.EIO by default; a Rule with
// Err: syscall.ENOSPC simulates a full disk.
//
// An FS is safe for concurrent use as far as the wrapped FS is.
package errorfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"github.com/gojournal/journal/vfs"
)

// ErrInjected is matched (with errors.Is) by every error errorfs injects.
var ErrInjected = errors.New("errorfs: injected error")

// Op is a kind of call through the wrapper.
type Op int

// The kinds of calls, one per method that can fail. The zero Op is not
// one of them.
const (
	OpCreate      Op = iota + 1 // FS.OpenFile with O_CREATE
	OpOpen                      // FS.OpenFile without O_CREATE
	OpRead                      // File.ReadAt
	OpWrite                     // File.WriteAt
	OpSync                      // File.Sync
	OpTruncate                  // File.Truncate
	OpPreallocate               // File.Preallocate
	OpSize                      // File.Size
	OpClose                     // File.Close
	OpRemove                    // FS.Remove
	OpRename                    // FS.Rename
	OpMkdirAll                  // FS.MkdirAll
	OpReadDir                   // FS.ReadDir
	OpStat                      // FS.Stat
	OpSyncDir                   // FS.SyncDir
	OpLock                      // FS.Lock
	OpChmod                     // File.Chmod
	OpWriteback                 // File.StartWriteback
	OpData                      // File.Data
	numOps
)

var opNames = [numOps]string{
	OpCreate:      "create",
	OpOpen:        "open",
	OpRead:        "read",
	OpWrite:       "write",
	OpSync:        "sync",
	OpTruncate:    "truncate",
	OpPreallocate: "preallocate",
	OpSize:        "size",
	OpClose:       "close",
	OpRemove:      "remove",
	OpRename:      "rename",
	OpMkdirAll:    "mkdirall",
	OpReadDir:     "readdir",
	OpStat:        "stat",
	OpSyncDir:     "syncdir",
	OpLock:        "lock",
	OpChmod:       "chmod",
	OpWriteback:   "writeback",
	OpData:        "data",
}

// String returns the kind's name, such as "sync".
func (op Op) String() string {
	if op.valid() {
		return opNames[op]
	}
	return fmt.Sprintf("Op(%d)", int(op))
}

func (op Op) valid() bool { return op > 0 && op < numOps }

// Rule says which calls to fail.
type Rule struct {
	// Op is the kind of call the rule fails.
	Op Op
	// N picks the N-th matching call of kind Op made after the rule was
	// added, counting from 1 (N < 1 counts as 1).
	N int
	// Sticky fails every matching call from the N-th on, not just the
	// N-th.
	Sticky bool
	// Err is the error the failed call reports (wrapped in an *Error);
	// nil means syscall.EIO.
	Err error
	// Match, if set, restricts the rule to calls on paths for which it
	// returns true: the file's name as opened for File methods, either
	// name for Rename. Calls it rejects are not counted toward N.
	Match func(path string) bool
}

// Error is an injected failure.
type Error struct {
	Op   Op
	Path string // for Rename, the old name
	Call int    // which call of kind Op it was, counting every call from Wrap
	Err  error  // the rule's error
}

func (e *Error) Error() string {
	return fmt.Sprintf("errorfs: injected %s error (call %d) on %s: %v", e.Op, e.Call, e.Path, e.Err)
}

// Unwrap returns ErrInjected and the rule's error, so errors.Is matches
// either.
func (e *Error) Unwrap() []error { return []error{ErrInjected, e.Err} }

// FS is a vfs.FS that passes calls on to another unless a rule fails them.
type FS struct {
	fs vfs.FS

	mu       sync.Mutex
	counts   [numOps]int
	rules    []*rule
	injected []Error
}

type rule struct {
	Rule
	seen int // matching calls since the rule was added
}

var _ vfs.FS = (*FS)(nil)

// Wrap returns an FS that passes calls on to fsys, failing those the
// rules pick.
func Wrap(fsys vfs.FS, rules ...Rule) *FS {
	f := &FS{fs: fsys}
	f.Add(rules...)
	return f
}

// Unwrap returns the file system that f wraps.
func (f *FS) Unwrap() vfs.FS { return f.fs }

// Add adds rules. Each counts its N from now. It panics if a rule's Op is
// not a valid kind.
func (f *FS) Add(rules ...Rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range rules {
		if !r.Op.valid() {
			panic("errorfs: rule with invalid " + r.Op.String())
		}
		r.N = max(r.N, 1)
		if r.Err == nil {
			r.Err = syscall.EIO
		}
		f.rules = append(f.rules, &rule{Rule: r})
	}
}

// Clear removes every rule, so later calls all pass. Counts are kept.
func (f *FS) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// Count returns how many calls of kind op were made since Wrap, failed or
// not.
func (f *FS) Count(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !op.valid() {
		return 0
	}
	return f.counts[op]
}

// Injected returns how many calls have been failed.
func (f *FS) Injected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.injected)
}

// InjectedErrors returns the errors injected so far, in the order the
// calls failed, so that a test can tell which call met a fault (a log's
// background work may meet one while a foreground call runs).
func (f *FS) InjectedErrors() []Error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Error(nil), f.injected...)
}

// check counts a call of kind op on paths and returns the error to inject,
// if any. When several rules fire, the one added first supplies the error;
// every matching rule counts the call either way.
func (f *FS) check(op Op, paths ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[op]++
	var fired *rule
	for _, r := range f.rules {
		if r.Op != op || !r.matches(paths) {
			continue
		}
		r.seen++
		if fired == nil && (r.seen == r.N || r.Sticky && r.seen > r.N) {
			fired = r
		}
	}
	if fired == nil {
		return nil
	}
	e := Error{Op: op, Path: paths[0], Call: f.counts[op], Err: fired.Err}
	f.injected = append(f.injected, e)
	return &e
}

func (r *rule) matches(paths []string) bool {
	if r.Match == nil {
		return true
	}
	for _, p := range paths {
		if r.Match(p) {
			return true
		}
	}
	return false
}

// OpenFile opens a file through the wrapped FS; the File counts and fails
// its own calls through f.
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	op := OpOpen
	if flag&os.O_CREATE != 0 {
		op = OpCreate
	}
	if err := f.check(op, name); err != nil {
		return nil, err
	}
	file, err := f.fs.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &errFile{f: f, file: file}, nil
}

// Remove removes a file through the wrapped FS.
func (f *FS) Remove(name string) error {
	if err := f.check(OpRemove, name); err != nil {
		return err
	}
	return f.fs.Remove(name)
}

// Rename renames through the wrapped FS.
func (f *FS) Rename(oldname, newname string) error {
	if err := f.check(OpRename, oldname, newname); err != nil {
		return err
	}
	return f.fs.Rename(oldname, newname)
}

// MkdirAll creates directories through the wrapped FS.
func (f *FS) MkdirAll(dir string, perm fs.FileMode) error {
	if err := f.check(OpMkdirAll, dir); err != nil {
		return err
	}
	return f.fs.MkdirAll(dir, perm)
}

// ReadDir lists a directory through the wrapped FS.
func (f *FS) ReadDir(dir string) ([]string, error) {
	if err := f.check(OpReadDir, dir); err != nil {
		return nil, err
	}
	return f.fs.ReadDir(dir)
}

// Stat describes a file through the wrapped FS.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	if err := f.check(OpStat, name); err != nil {
		return nil, err
	}
	return f.fs.Stat(name)
}

// SyncDir syncs a directory through the wrapped FS.
func (f *FS) SyncDir(dir string) error {
	if err := f.check(OpSyncDir, dir); err != nil {
		return err
	}
	return f.fs.SyncDir(dir)
}

// Lock locks through the wrapped FS. A failed Lock takes no lock; closing
// the lock is passed on and never fails by rule.
func (f *FS) Lock(name string) (io.Closer, error) {
	if err := f.check(OpLock, name); err != nil {
		return nil, err
	}
	return f.fs.Lock(name)
}

// errFile is a File opened through an FS.
type errFile struct {
	f    *FS
	file vfs.File
}

func (e *errFile) ReadAt(p []byte, off int64) (int, error) {
	if err := e.f.check(OpRead, e.file.Name()); err != nil {
		return 0, err
	}
	return e.file.ReadAt(p, off)
}

func (e *errFile) WriteAt(p []byte, off int64) (int, error) {
	if err := e.f.check(OpWrite, e.file.Name()); err != nil {
		return 0, err
	}
	return e.file.WriteAt(p, off)
}

func (e *errFile) Sync() error {
	if err := e.f.check(OpSync, e.file.Name()); err != nil {
		return err
	}
	return e.file.Sync()
}

func (e *errFile) Truncate(size int64) error {
	if err := e.f.check(OpTruncate, e.file.Name()); err != nil {
		return err
	}
	return e.file.Truncate(size)
}

func (e *errFile) Preallocate(size int64) error {
	if err := e.f.check(OpPreallocate, e.file.Name()); err != nil {
		return err
	}
	return e.file.Preallocate(size)
}

func (e *errFile) Chmod(mode fs.FileMode) error {
	if err := e.f.check(OpChmod, e.file.Name()); err != nil {
		return err
	}
	return e.file.Chmod(mode)
}

// StartWriteback is only a hint on a real disk, but a failure of it is
// still an error its caller must handle, so rules can fail it too.
func (e *errFile) StartWriteback(off, n int64) error {
	if err := e.f.check(OpWriteback, e.file.Name()); err != nil {
		return err
	}
	return e.file.StartWriteback(off, n)
}

// Data passes the wrapped file's answer through; a rule can fail it like
// a read.
func (e *errFile) Data(off int64) (start, end int64, known bool, err error) {
	if err := e.f.check(OpData, e.file.Name()); err != nil {
		return 0, 0, false, err
	}
	return e.file.Data(off)
}

func (e *errFile) Size() (int64, error) {
	if err := e.f.check(OpSize, e.file.Name()); err != nil {
		return 0, err
	}
	return e.file.Size()
}

// Close always closes the file, like close(2), and then reports an
// injected error if a rule picks this call.
func (e *errFile) Close() error {
	injected := e.f.check(OpClose, e.file.Name())
	err := e.file.Close()
	if injected != nil {
		return injected
	}
	return err
}

func (e *errFile) Name() string { return e.file.Name() }
