// Package crashfs is an in-memory vfs.FS that simulates power loss, for
// tests that check journal's durability protocol without pulling a cord.
//
// It is public so that an application built on journal can be crash-tested
// the same way: pass an FS from New as wal.Options.FS, run the application,
// take the state a power loss would leave with Crash (at any moment, or at
// each crash point in turn with SetCrashAfter), reopen the log on it and
// check what survived. The examples show both.
//
// It owns the model of what is durable. Every file is an inode holding its
// current contents and its durable contents; every directory holds its
// current entries (name -> inode) and its durable entries. The two only meet
// when the program asks:
//
//   - File.Sync (fdatasync) makes the file's current contents and size
//     durable. It does nothing for the file's name.
//   - FS.SyncDir makes the directory's current entries durable: the files
//     and subdirectories created, renamed into, renamed out of or removed
//     from it. It does nothing for the data of the files it names.
//   - Everything else (WriteAt, Truncate, Preallocate, Chmod, OpenFile with
//     O_CREATE or O_TRUNC, Rename, Remove, MkdirAll) changes only current
//     state. File.StartWriteback changes nothing: it is a hint to a real
//     disk and makes nothing durable.
//   - File.Data reports, at sector granularity, the sectors that may hold
//     data: those ever written (and, after a crash, those it kept or
//     garbled, and those whose durable bytes came back because the crash
//     undid a Truncate), less those a Truncate cut off; everything else, such as
//     space Preallocate added, reads as zeros and is reported as a hole,
//     as ext4 and XFS report space fallocate reserved.
//
// A file's permission bits are metadata, which fdatasync need not persist:
// a File.Chmod becomes durable with the next SyncDir of a directory that
// names the file, as on file systems that journal metadata in order (ext4,
// XFS), and with nothing else. There is no umask unless SetUmask sets one,
// so OpenFile and MkdirAll create with perm as given.
//
// Directories are modelled like files: MkdirAll adds each directory it
// creates to its parent's current entries, so the new directory (with
// everything in it) survives a crash only once its parent has been synced
// with SyncDir. Test setup that creates a directory and means it to survive
// must sync the parent ("." or "/" for the root). Renaming directories is
// not supported.
//
// # Crashes
//
// Crash returns a new FS holding what a power loss would leave, and leaves
// the FS it is called on untouched. In the new FS everything is durable and
// no file is open or locked. What survives depends on the CrashMode:
//
//   - SyncedOnly: exactly the durable state. Each directory holds its durable
//     entries, each file its durable contents and size. A file created,
//     renamed or removed in a directory not synced since comes back as it
//     was at that directory's last SyncDir; data written, truncated or
//     preallocated since a file's last Sync is gone.
//   - RandomSectors: the durable state plus a random part of what was not
//     synced. Each directory keeps a prefix, of uniformly random length
//     (none to all), of the entry changes made since its last SyncDir, in
//     the order they were made; one Rename within a directory is one
//     change, so it is kept or undone whole, while a Rename between two
//     directories is a change in each. Each file keeps each 512-byte sector
//     changed since its last Sync with probability 1/2, independently; a
//     sector not kept holds its durable bytes, or zeros where it lies beyond
//     the durable size. See below for the size. A mode changed since it
//     was last durable is kept with probability 1/2.
//   - Garbled: like RandomSectors, but each changed sector is kept, lost or
//     filled with random bytes, with probability 1/3 each (a changed mode is
//     kept or lost, never garbled).
//
// A sector is "changed" when a WriteAt covered any of its bytes or the file
// size moved across any of its bytes (Truncate, Preallocate, a WriteAt past
// the end, OpenFile with O_TRUNC) since the file's last Sync. The size a
// file has after a crash is its current size if any kept or garbled changed
// sector overlaps the bytes between its durable size and its current size,
// and its durable size otherwise. So an append that ends up in no surviving
// sector leaves the file at its durable size, a partly surviving extension
// reads zeros in the lost sectors, and an unsynced truncation survives with
// the sector holding the new end of file.
//
// Random choices are drawn from the *rand.Rand given to Crash, visiting
// directories depth first in name order and each file's changed sectors in
// order, so the same FS and the same rng seed give the same crash state.
// A file reachable under two names after a crash (a Rename between two
// directories of which only one was synced) is one inode: a hard link.
//
// # Crash points
//
// Every call that could change state is a mutating operation: File.WriteAt,
// File.Sync, File.Truncate, File.Preallocate, File.Chmod, FS.SyncDir, FS.Rename,
// FS.Remove, FS.MkdirAll, FS.Lock, and FS.OpenFile with O_CREATE, or with
// O_TRUNC on a writable file. Ops counts them, whether they succeed or
// fail. SetCrashAfter(k) makes the k-th the last one that runs: every
// mutating operation after it fails with an error satisfying
// errors.Is(err, ErrCrashed) and changes nothing, so the state stays as the
// crash found it and Crash works from there. Reads, Stat, ReadDir, Size,
// Data, StartWriteback and Close keep working on that state.
//
// # Paths
//
// Paths use the host's separator and are cleaned against a single root:
// "/db/x", "db/x" and "db/../db/x" all name the same file. "/", "." and ""
// name the root, which always exists.
//
// Files are limited to MaxFileSize bytes. An FS is safe for concurrent use;
// one mutex serialises every call.
package crashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gojournal/journal/vfs"
)

// SectorSize is the granularity at which crashfs tracks unsynced changes:
// after a crash each changed sector survives, is lost, or is garbled whole.
const SectorSize = 512

// MaxFileSize bounds the size of a file; a write, truncate or preallocate
// beyond it fails with syscall.EFBIG.
const MaxFileSize = 1 << 31

// ErrCrashed is returned by every mutating operation of an FS after the
// crash point set with SetCrashAfter.
var ErrCrashed = errors.New("crashfs: file system crashed")

// CrashMode chooses what a simulated power loss does with state that was
// not made durable.
type CrashMode int

const (
	// SyncedOnly keeps only durable data and durable directory entries.
	SyncedOnly CrashMode = iota
	// RandomSectors keeps durable state plus a random prefix of each
	// directory's unsynced entry changes and a random subset of each
	// file's unsynced sectors.
	RandomSectors
	// Garbled is RandomSectors where some unsynced sectors are filled with
	// random bytes instead.
	Garbled
)

// String returns the mode's name.
func (m CrashMode) String() string {
	switch m {
	case SyncedOnly:
		return "SyncedOnly"
	case RandomSectors:
		return "RandomSectors"
	case Garbled:
		return "Garbled"
	}
	return fmt.Sprintf("CrashMode(%d)", int(m))
}

// FS is an in-memory file system that remembers what was synced. The zero
// value is not usable; call New.
type FS struct {
	mu         sync.Mutex
	root       *node
	nextIno    uint64
	ops        int
	crashAfter int // -1: no crash point
	crashed    bool
	locks      map[string]*lock // cleaned path -> its holder
	life       int              // Kill count: files opened before the last Kill are dead
	umask      fs.FileMode
}

var _ vfs.FS = (*FS)(nil)

// New returns an empty FS: a root directory and nothing else.
func New() *FS {
	fsys := &FS{crashAfter: -1, locks: make(map[string]*lock)}
	fsys.root = fsys.newDir(0o755)
	return fsys
}

// node is an inode: a regular file or a directory.
type node struct {
	ino         uint64
	perm        fs.FileMode // current permission bits
	durablePerm fs.FileMode // the bits a crash keeps for sure
	dir         *dirState   // non-nil for a directory

	// For a regular file. Invariant: every sector in which data and
	// durable differ (reading bytes past either's end as zeros), or which
	// overlaps the bytes between len(durable) and len(data), is in dirty.
	data    []byte // current contents; len is the current size
	durable []byte // contents a crash keeps for sure; len is the durable size
	dirty   bitset // sectors changed since the last Sync
	// written holds every sector that may hold a non-zero byte: those
	// WriteAt touched and those a crash kept or garbled, less those a
	// Truncate cut off. Invariant: every sector outside it (and below the
	// size) reads as zeros. File.Data reports it, as a file system reports
	// its written extents.
	written bitset
}

// dirState holds a directory's entries. Invariant: applying pending in
// order to durable gives cur.
type dirState struct {
	cur     map[string]*node
	durable map[string]*node
	pending []dirOp // entry changes since the last SyncDir, oldest first
}

// dirOp is one atomic change to a directory's entries.
type dirOp []dirEdit

// dirEdit sets name to n, or removes it when n is nil.
type dirEdit struct {
	name string
	n    *node
}

func applyOp(entries map[string]*node, op dirOp) {
	for _, e := range op {
		if e.n == nil {
			delete(entries, e.name)
		} else {
			entries[e.name] = e.n
		}
	}
}

func (d *dirState) apply(op ...dirEdit) {
	d.pending = append(d.pending, op)
	applyOp(d.cur, op)
}

func (fsys *FS) newIno() uint64 {
	fsys.nextIno++
	return fsys.nextIno
}

func (fsys *FS) newDir(perm fs.FileMode) *node {
	n := fsys.newNode(perm)
	n.dir = &dirState{
		cur:     make(map[string]*node),
		durable: make(map[string]*node),
	}
	return n
}

// newNode makes an inode with perm less the umask, durable from the start:
// whether it survives at all is up to the directory that names it.
func (fsys *FS) newNode(perm fs.FileMode) *node {
	perm &^= fsys.umask
	perm &= fs.ModePerm
	return &node{ino: fsys.newIno(), perm: perm, durablePerm: perm}
}

// SetUmask sets the bits that OpenFile and MkdirAll clear from the
// permissions of what they create, as the process umask does on the OS. It
// is 0 in a new FS. A test sets it to check that code which means to keep
// a file's mode does not lose bits to the umask.
func (fsys *FS) SetUmask(mask fs.FileMode) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	fsys.umask = mask & fs.ModePerm
}

// SetCrashAfter sets the crash point: the k-th mutating operation (counted
// from New, as Ops counts) is the last to run, and every later one fails
// with ErrCrashed. If Ops is already k or more the FS crashes at once. A
// negative k removes the crash point, but an FS that has crashed stays
// crashed; use Crash to get one that works.
func (fsys *FS) SetCrashAfter(k int) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	fsys.crashAfter = k
	if k >= 0 && fsys.ops >= k {
		fsys.crashed = true
	}
}

// Ops returns the number of mutating operations performed so far,
// successful or not, not counting those refused after the crash point.
func (fsys *FS) Ops() int {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	return fsys.ops
}

// Crashed reports whether the crash point has been passed.
func (fsys *FS) Crashed() bool {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	return fsys.crashed
}

// begin accounts for one mutating operation; the caller holds fsys.mu.
func (fsys *FS) begin(op, name string) error {
	if fsys.crashed {
		return &fs.PathError{Op: op, Path: name, Err: ErrCrashed}
	}
	fsys.ops++
	if fsys.crashAfter >= 0 && fsys.ops >= fsys.crashAfter {
		fsys.crashed = true
	}
	return nil
}

// clean maps a path to its key: cleaned, relative to the root, "" for the
// root itself.
func clean(name string) string {
	const sep = string(filepath.Separator)
	return strings.TrimPrefix(filepath.Clean(sep+name), sep)
}

func split(p string) (dir, base string) {
	i := strings.LastIndexByte(p, filepath.Separator)
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// lookup finds the node at key p; the caller holds fsys.mu.
func (fsys *FS) lookup(p string) (*node, error) {
	n := fsys.root
	if p == "" {
		return n, nil
	}
	for name := range strings.SplitSeq(p, string(filepath.Separator)) {
		if n.dir == nil {
			return nil, syscall.ENOTDIR
		}
		child, ok := n.dir.cur[name]
		if !ok {
			return nil, syscall.ENOENT
		}
		n = child
	}
	return n, nil
}

// parent finds the directory that holds key p, which must not be the root.
func (fsys *FS) parent(p string) (*dirState, string, error) {
	dp, base := split(p)
	d, err := fsys.lookup(dp)
	if err != nil {
		return nil, "", err
	}
	if d.dir == nil {
		return nil, "", syscall.ENOTDIR
	}
	return d.dir, base, nil
}

// OpenFile opens or creates a file, like os.OpenFile. O_CREATE, O_EXCL and
// O_TRUNC behave as in os; perm less the umask (see SetUmask) is the mode
// of a file it creates. Directories cannot be opened.
func (fsys *FS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	writable := acc == os.O_WRONLY || acc == os.O_RDWR
	trunc := flag&os.O_TRUNC != 0 && writable
	if flag&os.O_CREATE != 0 || trunc {
		if err := fsys.begin("open", name); err != nil {
			return nil, err
		}
	}
	p := clean(name)
	if p == "" {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	}
	d, base, err := fsys.parent(p)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	n, exists := d.cur[base]
	switch {
	case exists && n.dir != nil:
		// As the OS file system says (vfs.ErrNotRegular): a directory
		// under a name the log owns is no file it wrote.
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w (%w)", vfs.ErrNotRegular, syscall.EISDIR)}
	case exists && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EEXIST}
	case !exists && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOENT}
	case !exists:
		n = fsys.newNode(perm)
		d.apply(dirEdit{base, n})
	case trunc:
		n.setSize(0)
	}
	return &file{fs: fsys, n: n, name: name, flag: flag, life: fsys.life}, nil
}

// Remove removes a file or an empty directory. The removal becomes durable
// with SyncDir of the directory that held it.
func (fsys *FS) Remove(name string) error {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if err := fsys.begin("remove", name); err != nil {
		return err
	}
	p := clean(name)
	if p == "" {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.EBUSY}
	}
	d, base, err := fsys.parent(p)
	if err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	n, ok := d.cur[base]
	switch {
	case !ok:
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOENT}
	case n.dir != nil && len(n.dir.cur) > 0:
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	d.apply(dirEdit{base, nil})
	return nil
}

// Rename atomically replaces newname with the file oldname, like
// os.Rename. The change becomes durable with SyncDir of both directories
// involved. Renaming a directory fails with errors.ErrUnsupported.
func (fsys *FS) Rename(oldname, newname string) error {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if err := fsys.begin("rename", oldname); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: ErrCrashed}
	}
	linkErr := func(err error) error {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	op, np := clean(oldname), clean(newname)
	if op == "" || np == "" {
		return linkErr(syscall.EBUSY)
	}
	od, ob, err := fsys.parent(op)
	if err != nil {
		return linkErr(err)
	}
	n, ok := od.cur[ob]
	if !ok {
		return linkErr(syscall.ENOENT)
	}
	if n.dir != nil {
		return linkErr(fmt.Errorf("crashfs: renaming a directory: %w", errors.ErrUnsupported))
	}
	nd, nb, err := fsys.parent(np)
	if err != nil {
		return linkErr(err)
	}
	if target, ok := nd.cur[nb]; ok {
		if target.dir != nil {
			// EEXIST, as os.Rename reports it (it checks before rename(2),
			// which would say EISDIR).
			return linkErr(syscall.EEXIST)
		}
		if target == n {
			return nil // the same file (or a hard link to it): nothing to do
		}
	}
	if od == nd {
		od.apply(dirEdit{nb, n}, dirEdit{ob, nil})
	} else {
		nd.apply(dirEdit{nb, n})
		od.apply(dirEdit{ob, nil})
	}
	return nil
}

// MkdirAll creates a directory and any missing parents, like os.MkdirAll.
// Each directory it creates is an entry of its parent, durable once the
// parent is synced.
func (fsys *FS) MkdirAll(dir string, perm fs.FileMode) error {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if err := fsys.begin("mkdir", dir); err != nil {
		return err
	}
	p := clean(dir)
	if p == "" {
		return nil
	}
	n := fsys.root
	for name := range strings.SplitSeq(p, string(filepath.Separator)) {
		child, ok := n.dir.cur[name]
		if !ok {
			child = fsys.newDir(perm)
			n.dir.apply(dirEdit{name, child})
		} else if child.dir == nil {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		n = child
	}
	return nil
}

// ReadDir lists the names in dir, files and directories, sorted.
func (fsys *FS) ReadDir(dir string) ([]string, error) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	n, err := fsys.lookup(clean(dir))
	if err == nil && n.dir == nil {
		err = syscall.ENOTDIR
	}
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: err}
	}
	return slices.Sorted(maps.Keys(n.dir.cur)), nil
}

// Stat describes a file or directory: its size (0 for a directory), its
// permission bits as created, and whether it is a directory. ModTime is
// always the zero time.
func (fsys *FS) Stat(name string) (fs.FileInfo, error) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	p := clean(name)
	n, err := fsys.lookup(p)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	_, base := split(p)
	if p == "" {
		base = string(filepath.Separator)
	}
	fi := fileInfo{name: base, mode: n.perm, size: int64(len(n.data))}
	if n.dir != nil {
		fi.mode |= fs.ModeDir
	}
	return fi, nil
}

// SyncDir makes dir's current entries durable, and the permission bits of
// the files they name. It does not make the data of those files durable.
func (fsys *FS) SyncDir(dir string) error {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if err := fsys.begin("syncdir", dir); err != nil {
		return err
	}
	n, err := fsys.lookup(clean(dir))
	if err == nil && n.dir == nil {
		err = syscall.ENOTDIR
	}
	if err != nil {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: err}
	}
	n.dir.durable = maps.Clone(n.dir.cur)
	n.dir.pending = nil
	for _, child := range n.dir.cur {
		child.durablePerm = child.perm
	}
	return nil
}

// Lock takes an in-memory exclusive lock on name, creating the file (mode
// 0644) if it does not exist; a second Lock of the same path fails with an
// error satisfying errors.Is(err, vfs.ErrLocked) until the first is
// closed. Lock counts as a mutating operation. Locks do not survive Crash.
func (fsys *FS) Lock(name string) (io.Closer, error) {
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	f.Close()
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	p := clean(name)
	if fsys.locks[p] != nil {
		return nil, fmt.Errorf("%w: %s", vfs.ErrLocked, name)
	}
	l := &lock{fs: fsys, key: p, name: name}
	fsys.locks[p] = l
	return l, nil
}

// Kill simulates the death of the process using the file system (SIGKILL),
// not a power loss: every lock is released, and everything written stays
// as it is, durable or not, as in the page cache of a kernel that goes on
// running. The files the dead process had open die with it: every later
// call on a File opened before Kill, Close included, fails with an error
// satisfying errors.Is(err, fs.ErrClosed), so that goroutines of an
// abandoned Log cannot write or sync what the dead process could not.
// Closing a lock it held releases nothing, since a new holder may have it.
func (fsys *FS) Kill() {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	clear(fsys.locks)
	fsys.life++
}

type lock struct {
	fs       *FS
	key      string
	name     string
	released bool // guarded by fs.mu
}

func (l *lock) Close() error {
	l.fs.mu.Lock()
	defer l.fs.mu.Unlock()
	if l.released {
		return &fs.PathError{Op: "unlock", Path: l.name, Err: fs.ErrClosed}
	}
	l.released = true
	// After Kill the key may name a new holder's lock, which closing the
	// dead holder's must leave alone.
	if l.fs.locks[l.key] == l {
		delete(l.fs.locks, l.key)
	}
	return nil
}

type fileInfo struct {
	name string
	mode fs.FileMode
	size int64
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi fileInfo) ModTime() time.Time { return time.Time{} }
func (fi fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi fileInfo) Sys() any           { return nil }

// file is an open handle. It refers to the inode, so it keeps working after
// the file is renamed or removed, and is unaffected by Crash.
type file struct {
	fs     *FS
	n      *node
	name   string
	flag   int
	closed bool // guarded by fs.mu
	life   int  // fs.life when opened
}

// gone reports whether the handle was closed, by Close or by the death
// (Kill) of the process that opened it; the caller holds fs.mu.
func (f *file) gone() bool { return f.closed || f.life != f.fs.life }

func (f *file) canRead() bool  { return f.flag&(os.O_WRONLY|os.O_RDWR) != os.O_WRONLY }
func (f *file) canWrite() bool { return f.flag&(os.O_WRONLY|os.O_RDWR) != os.O_RDONLY }

// check reports why a handle cannot be used; the caller holds fs.mu.
func (f *file) check(op string, write bool) error {
	switch {
	case f.gone():
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	case write && !f.canWrite(), !write && !f.canRead():
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EBADF}
	}
	return nil
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EINVAL}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.begin("write", f.name); err != nil {
		return 0, err
	}
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	switch {
	case f.flag&os.O_APPEND != 0:
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: errors.New("crashfs: WriteAt on a file opened with O_APPEND")}
	case off < 0:
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: syscall.EINVAL}
	case off > MaxFileSize-int64(len(p)):
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: syscall.EFBIG}
	case len(p) == 0:
		return 0, nil
	}
	end := off + int64(len(p))
	if end > int64(len(f.n.data)) {
		f.n.setSize(end)
	}
	copy(f.n.data[off:], p)
	f.n.dirty.mark(off, end)
	f.n.written.mark(off, end)
	return len(p), nil
}

func (f *file) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.begin("sync", f.name); err != nil {
		return err
	}
	if f.gone() {
		return &fs.PathError{Op: "sync", Path: f.name, Err: fs.ErrClosed}
	}
	n := f.n
	size := int64(len(n.data))
	n.durable = resize(n.durable, size)
	// By the invariant only dirty sectors can differ.
	n.dirty.each(func(s int64) {
		lo := s * SectorSize
		if lo < size {
			hi := min(lo+SectorSize, size)
			copy(n.durable[lo:hi], n.data[lo:hi])
		}
	})
	n.dirty = nil
	return nil
}

func (f *file) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.begin("truncate", f.name); err != nil {
		return err
	}
	if err := f.check("truncate", true); err != nil {
		return err
	}
	switch {
	case size < 0:
		return &fs.PathError{Op: "truncate", Path: f.name, Err: syscall.EINVAL}
	case size > MaxFileSize:
		return &fs.PathError{Op: "truncate", Path: f.name, Err: syscall.EFBIG}
	}
	f.n.setSize(size)
	return nil
}

func (f *file) Preallocate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.begin("fallocate", f.name); err != nil {
		return err
	}
	if err := f.check("fallocate", true); err != nil {
		return err
	}
	switch {
	case size > MaxFileSize:
		return &fs.PathError{Op: "fallocate", Path: f.name, Err: syscall.EFBIG}
	case size > int64(len(f.n.data)):
		f.n.setSize(size)
	}
	return nil
}

// Chmod sets the file's permission bits, as Stat then reports them. The
// change becomes durable with a SyncDir of a directory naming the file
// (see the package documentation), not with Sync. Chmod is a mutating
// operation.
func (f *file) Chmod(mode fs.FileMode) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.begin("chmod", f.name); err != nil {
		return err
	}
	if f.gone() {
		return &fs.PathError{Op: "chmod", Path: f.name, Err: fs.ErrClosed}
	}
	f.n.perm = mode & fs.ModePerm
	return nil
}

// StartWriteback does nothing but check the handle: what a real disk may
// write early is still not durable until Sync, so in the crash model it
// changes nothing, and it is not a mutating operation.
func (f *file) StartWriteback(off, n int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.gone() {
		return &fs.PathError{Op: "writeback", Path: f.name, Err: fs.ErrClosed}
	}
	return nil
}

// Data reports the sectors that may hold data (see node.written): the
// extents a file system would report written, at sector granularity. It is
// not a mutating operation.
func (f *file) Data(off int64) (start, end int64, known bool, err error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.gone() {
		return 0, 0, false, &fs.PathError{Op: "lseek", Path: f.name, Err: fs.ErrClosed}
	}
	size := int64(len(f.n.data))
	s := max(off, 0) / SectorSize
	for s*SectorSize < size && !f.n.written.has(s) {
		s++
	}
	if s*SectorSize >= size {
		return max(size, off), max(size, off), true, nil
	}
	e := s
	for e*SectorSize < size && f.n.written.has(e) {
		e++
	}
	return max(off, s*SectorSize), min(e*SectorSize, size), true, nil
}

func (f *file) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.gone() {
		return 0, &fs.PathError{Op: "stat", Path: f.name, Err: fs.ErrClosed}
	}
	return int64(len(f.n.data)), nil
}

func (f *file) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.gone() {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

func (f *file) Name() string { return f.name }

// setSize changes a file's current size, zero-filling what it adds and
// marking every sector the end of file moves across as changed.
func (n *node) setSize(size int64) {
	old := int64(len(n.data))
	n.data = resize(n.data, size)
	n.dirty.mark(min(old, size), max(old, size))
	if size < old {
		// Sectors wholly past the end read as zeros when it grows again.
		n.written.clearFrom((size + SectorSize - 1) / SectorSize)
	}
}

// resize returns b with length n, reading as zeros past its old length.
// Bytes beyond len(b) in its capacity may be stale, so they are cleared.
func resize(b []byte, n int64) []byte {
	old := int64(len(b))
	if n <= old {
		return b[:n]
	}
	b = slices.Grow(b, int(n-old))[:n]
	clear(b[old:])
	return b
}

// bitset is a set of sector numbers.
type bitset []uint64

// mark adds the sectors overlapping bytes [lo, hi).
func (b *bitset) mark(lo, hi int64) {
	if lo >= hi {
		return
	}
	last := (hi - 1) / SectorSize
	if need := int(last/64) + 1; need > len(*b) {
		*b = append(*b, make(bitset, need-len(*b))...)
	}
	for s := lo / SectorSize; s <= last; s++ {
		(*b)[s/64] |= 1 << (s % 64)
	}
}

// clearFrom removes every sector from s on.
func (b bitset) clearFrom(s int64) {
	for i := range b {
		lo := int64(i) * 64
		switch {
		case lo >= s:
			b[i] = 0
		case lo+64 > s:
			b[i] &= 1<<(s-lo) - 1
		}
	}
}

// has reports whether sector s is in the set.
func (b bitset) has(s int64) bool {
	return s/64 < int64(len(b)) && b[s/64]&(1<<(s%64)) != 0
}

// each calls fn for each sector in the set, in increasing order.
func (b bitset) each(fn func(s int64)) {
	for i, w := range b {
		for w != 0 {
			t := bits.TrailingZeros64(w)
			fn(int64(i)*64 + int64(t))
			w &^= 1 << t
		}
	}
}

// Crash returns a new FS holding the state a power loss would leave now, or
// at the crash point if the FS has crashed, as described in the package
// documentation for mode, drawing from rng (math/rand/v2). The FS it is
// called on is not changed and keeps working. rng may be nil for
// SyncedOnly; the random modes need it and panic without it. The new FS has
// no crash point, no locks and an Ops count of zero; it keeps the umask.
func (fsys *FS) Crash(mode CrashMode, rng *rand.Rand) *FS {
	switch mode {
	case SyncedOnly:
	case RandomSectors, Garbled:
		if rng == nil {
			panic("crashfs: Crash in mode " + mode.String() + " needs an rng")
		}
	default:
		panic("crashfs: unknown " + mode.String())
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	c := crasher{mode: mode, rng: rng, files: make(map[*node]*node)}
	return &FS{
		root:       c.dir(fsys.root),
		nextIno:    fsys.nextIno,
		crashAfter: -1,
		locks:      make(map[string]*lock),
		umask:      fsys.umask,
	}
}

type crasher struct {
	mode  CrashMode
	rng   *rand.Rand
	files map[*node]*node // surviving copy of each file visited, for hard links
}

func (c *crasher) dir(n *node) *node {
	entries := maps.Clone(n.dir.durable)
	if c.mode != SyncedOnly && len(n.dir.pending) > 0 {
		k := c.rng.IntN(len(n.dir.pending) + 1)
		for _, op := range n.dir.pending[:k] {
			applyOp(entries, op)
		}
	}
	perm := c.perm(n)
	out := &node{ino: n.ino, perm: perm, durablePerm: perm, dir: &dirState{
		cur:     make(map[string]*node, len(entries)),
		durable: make(map[string]*node, len(entries)),
	}}
	// A directory is only ever an entry of the parent it was made in,
	// under its one name, so the walk is a tree and visits each once.
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		child := entries[name]
		if child.dir != nil {
			child = c.dir(child)
		} else {
			child = c.file(child)
		}
		out.dir.cur[name] = child
		out.dir.durable[name] = child
	}
	return out
}

// Sector outcomes in the random modes.
const (
	lost = iota
	kept
	garbled
)

func (c *crasher) file(n *node) *node {
	if out, ok := c.files[n]; ok {
		return out
	}
	dsize, csize := int64(len(n.durable)), int64(len(n.data))
	lo, hi := min(dsize, csize), max(dsize, csize)
	buf := resize(bytes.Clone(n.durable), hi)
	resized := false
	// Sectors not changed since the last Sync hold what they hold now, so
	// the current written set covers them; each changed sector is added as
	// the crash decides it.
	written := slices.Clone(n.written)
	n.dirty.each(func(s int64) {
		start := s * SectorSize
		if start >= hi {
			return // wholly past both ends: it cannot show
		}
		end := min(start+SectorSize, hi)
		outcome := lost
		switch c.mode {
		case Garbled:
			outcome = c.rng.IntN(3)
		case RandomSectors:
			if c.rng.IntN(2) != 0 {
				outcome = kept
			}
		}
		switch outcome {
		case lost:
			// The durable bytes come back: data that an unsynced
			// Truncate had taken out of the written set.
			if start < dsize {
				written.mark(start, min(end, dsize))
			}
			return
		case kept:
			written.mark(start, end)
			clear(buf[start:end])
			if start < csize {
				copy(buf[start:end], n.data[start:min(end, csize)])
			}
		case garbled:
			written.mark(start, end)
			fillRandom(c.rng, buf[start:end])
		}
		if end > lo {
			resized = true // it covers bytes between the two sizes
		}
	})
	size := dsize
	if resized {
		size = csize
	}
	buf = buf[:size]
	perm := c.perm(n)
	written.clearFrom((size + SectorSize - 1) / SectorSize)
	out := &node{ino: n.ino, perm: perm, durablePerm: perm, data: buf, durable: bytes.Clone(buf), written: written}
	c.files[n] = out
	return out
}

// perm picks the permission bits n has after the crash. The rng is drawn
// from only for a mode changed since it was last durable, so workloads that
// never call Chmod replay the same crashes as before Chmod existed.
func (c *crasher) perm(n *node) fs.FileMode {
	if n.perm == n.durablePerm || c.mode == SyncedOnly || c.rng.IntN(2) == 0 {
		return n.durablePerm
	}
	return n.perm
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}
