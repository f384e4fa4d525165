// Package vfstest holds the vfs.FS wrappers that tests of several packages
// share.
package vfstest

import (
	"io/fs"
	"maps"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/gojournal/journal/vfs"
)

// CountFS counts what is done through it: the bytes read, the opens of
// each file (by base name) and the files open now. With Unknown set its
// files cannot tell where data lies (File.Data reports unknown), as on a
// file system without SEEK_DATA.
type CountFS struct {
	vfs.FS
	Unknown bool
	read    atomic.Int64
	mu      sync.Mutex
	opened  map[string]int
	open    int
}

func (c *CountFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opened == nil {
		c.opened = map[string]int{}
	}
	c.opened[filepath.Base(name)]++
	c.open++
	return &countFile{File: f, fs: c}, nil
}

// Read is the number of bytes read so far.
func (c *CountFS) Read() int64 { return c.read.Load() }

// Opened is how often each file (by base name) was opened so far.
func (c *CountFS) Opened() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.opened)
}

// OpenNow is the number of files open now.
func (c *CountFS) OpenNow() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

type countFile struct {
	vfs.File
	fs     *CountFS
	closed sync.Once // a second Close does not count
}

func (f *countFile) Close() error {
	f.closed.Do(func() {
		f.fs.mu.Lock()
		f.fs.open--
		f.fs.mu.Unlock()
	})
	return f.File.Close()
}

func (f *countFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.fs.read.Add(int64(n))
	return n, err
}

func (f *countFile) Data(off int64) (start, end int64, known bool, err error) {
	if f.fs.Unknown {
		return 0, 0, false, nil
	}
	return f.File.Data(off)
}
