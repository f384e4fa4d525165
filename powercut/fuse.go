package powercut

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ImageName is the one file the FUSE file system serves: the disk.
const ImageName = "disk.img"

// fallocate modes the loop driver uses for discard and write-zeroes
// (linux/falloc.h).
const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
	fallocZeroRange = 0x10
)

// imageNode is disk.img: a fixed-size regular file backed by a Disk.
type imageNode struct {
	fs.Inode
	disk  *Disk
	opens atomic.Uint64
}

// handle is one open of disk.img. It belongs to the boot epoch it was
// opened in: once that epoch has ended (the power was cut), its writes are
// discarded and its syncs fail.
type handle struct{ epoch uint64 }

var (
	_ fs.NodeOpener    = (*imageNode)(nil)
	_ fs.NodeGetattrer = (*imageNode)(nil)
	_ fs.NodeSetattrer = (*imageNode)(nil)
	_ fs.NodeReader    = (*imageNode)(nil)
	_ fs.NodeWriter    = (*imageNode)(nil)
	_ fs.NodeFsyncer   = (*imageNode)(nil)
	_ fs.NodeFlusher   = (*imageNode)(nil)
	_ fs.NodeAllocater = (*imageNode)(nil)
	_ fs.NodeReleaser  = (*imageNode)(nil)
)

// Open hands out a handle of the current epoch. FOPEN_DIRECT_IO keeps the
// kernel's page cache out of the way: every read and write of the loop
// driver reaches the Disk, so no cached page can outlive a cut, and no
// write is absorbed by writeback that the Disk never sees.
func (n *imageNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	n.opens.Add(1)
	return &handle{epoch: n.disk.Epoch()}, fuse.FOPEN_DIRECT_IO, 0
}

func (n *imageNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o600
	out.Size = uint64(n.disk.Size())
	out.Blocks = out.Size / 512
	out.Blksize = SectorSize
	out.Nlink = 1
	return 0
}

// Setattr accepts the attribute changes open(2) and utimes make but not a
// size change: a disk does not grow or shrink.
func (n *imageNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok && int64(sz) != n.disk.Size() {
		return syscall.EPERM
	}
	return n.Getattr(ctx, f, out)
}

func epochOf(f fs.FileHandle) uint64 {
	if h, ok := f.(*handle); ok {
		return h.epoch
	}
	return 0 // no handle: never live
}

func (n *imageNode) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	k, err := n.disk.ReadAt(dest, off)
	if err != nil {
		return nil, syscall.EIO
	}
	return fuse.ReadResultData(dest[:k]), 0
}

func (n *imageNode) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	k, err := n.disk.WriteAt(epochOf(f), data, off)
	if err != nil {
		return 0, syscall.ENOSPC
	}
	return uint32(k), 0
}

// Fsync is the flush barrier: the loop driver calls vfs_fsync on the
// backing file for every REQ_OP_FLUSH (and for REQ_FUA, which the block
// layer turns into a flush for a device without native FUA).
func (n *imageNode) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if err := n.disk.Sync(epochOf(f)); err != nil {
		return syscall.EIO
	}
	return 0
}

// Flush is close(2), not a barrier: it makes nothing durable.
func (n *imageNode) Flush(ctx context.Context, f fs.FileHandle) syscall.Errno {
	n.disk.CountClose()
	return 0
}

func (n *imageNode) Release(ctx context.Context, f fs.FileHandle) syscall.Errno { return 0 }

// Allocate serves the loop driver's discard (punch hole) and write-zeroes
// (zero range or punch hole) requests as writes of zeros; preallocation is
// a no-op on a fixed-size disk.
func (n *imageNode) Allocate(ctx context.Context, f fs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	switch {
	case mode&(fallocPunchHole|fallocZeroRange) != 0:
		if err := n.disk.Zero(epochOf(f), int64(off), int64(size)); err != nil {
			return syscall.EINVAL
		}
		return 0
	case mode&^fallocKeepSize == 0:
		if int64(off+size) > n.disk.Size() {
			return syscall.EFBIG
		}
		return 0
	}
	return syscall.EOPNOTSUPP
}

// Server is a mounted FUSE file system serving one Disk as dir/disk.img.
type Server struct {
	Dir    string
	Disk   *Disk
	image  *imageNode
	server *fuse.Server
}

// Image is the path of the disk image file.
func (s *Server) Image() string { return s.Dir + "/" + ImageName }

// Opens is how many times disk.img was opened.
func (s *Server) Opens() uint64 { return s.image.opens.Load() }

// Serve mounts a FUSE file system at dir (which must exist) whose only file,
// disk.img, is disk. It needs root (the mount is made with mount(2), no
// fusermount) and /dev/fuse.
func Serve(dir string, disk *Disk) (*Server, error) {
	image := &imageNode{disk: disk}
	root := &fs.Inode{}
	zero := time.Duration(0)
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName:            "powercut",
			Name:              "powercut",
			AllowOther:        true,
			DirectMountStrict: true,
			MaxWrite:          1 << 20,
			DisableXAttrs:     true,
			// Reads of MaxWrite bytes do not fit a pipe.
			DisableSplice: true,
		},
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		OnAdd: func(ctx context.Context) {
			ch := root.NewPersistentInode(ctx, image, fs.StableAttr{Mode: syscall.S_IFREG, Ino: 2})
			root.AddChild(ImageName, ch, false)
		},
	}
	srv, err := fs.Mount(dir, root, opts)
	if err != nil {
		return nil, fmt.Errorf("powercut: mount FUSE at %s: %w", dir, err)
	}
	return &Server{Dir: dir, Disk: disk, image: image, server: srv}, nil
}

// Close unmounts the FUSE file system.
func (s *Server) Close() error {
	err := s.server.Unmount()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("powercut: unmount FUSE at %s: %w", s.Dir, err)
	}
	return nil
}
