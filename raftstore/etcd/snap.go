package etcd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/gojournal/journal/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The snapshot file (snapFile in the snap directory) holds the raft snapshot
// Snapshot returns: metadata and data. It is replaced whole by vfs.WriteFile
// (temporary file, fdatasync, rename, directory sync), so a crash leaves the
// old one or the new one. Layout (little-endian):
//
//	offset size field
//	0      8    magic "JRAFTSNP"
//	8      1    version = 1
//	9      1    kind: 1 = made by CreateSnapshot, 2 = installed by ApplySnapshot
//	10     8    L, length of the snapshot
//	18     L    the raftpb.Snapshot, protobuf-encoded
//	18+L   8    xxhash64 (seed 0) of bytes [0, 18+L)
//
// The kind lets Open finish an ApplySnapshot that a crash interrupted: an
// installed snapshot newer than the state log's compaction point means the
// log was not yet (or not completely) reset to it.
const (
	snapMagic      = "JRAFTSNP"
	snapVersion    = 1
	snapHeaderSize = 8 + 1 + 1 + 8
	snapFile       = "snapshot"
)

type snapKind uint8

const (
	snapCreated snapKind = 1
	snapApplied snapKind = 2
)

// errSnapCorrupt is returned by Open when the snapshot file fails its checks.
var errSnapCorrupt = errors.New("etcd: snapshot file is damaged")

func writeSnap(fsys vfs.FS, dir string, kind snapKind, snap *pb.Snapshot) error {
	body, err := proto.Marshal(snap)
	if err != nil {
		return fmt.Errorf("etcd: encode snapshot: %w", err)
	}
	b := make([]byte, snapHeaderSize, snapHeaderSize+len(body)+8)
	copy(b, snapMagic)
	b[8], b[9] = snapVersion, byte(kind)
	binary.LittleEndian.PutUint64(b[10:], uint64(len(body)))
	b = append(b, body...)
	b = binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
	return vfs.WriteFile(fsys, filepath.Join(dir, snapFile), 0o644, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// readSnap returns the snapshot in dir, or an empty one (kind 0) if there is
// none.
func readSnap(fsys vfs.FS, dir string) (*pb.Snapshot, snapKind, error) {
	b, err := readAll(fsys, filepath.Join(dir, snapFile))
	if errors.Is(err, fs.ErrNotExist) {
		return emptySnap(), 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if len(b) < snapHeaderSize+8 || !bytes.Equal(b[:8], []byte(snapMagic)) || b[8] != snapVersion {
		return nil, 0, fmt.Errorf("%w: bad header (%d bytes)", errSnapCorrupt, len(b))
	}
	n := binary.LittleEndian.Uint64(b[10:])
	if n != uint64(len(b)-snapHeaderSize-8) {
		return nil, 0, fmt.Errorf("%w: length %d in a %d-byte file", errSnapCorrupt, n, len(b))
	}
	end := len(b) - 8
	if xxhash.Sum64(b[:end]) != binary.LittleEndian.Uint64(b[end:]) {
		return nil, 0, fmt.Errorf("%w: checksum mismatch", errSnapCorrupt)
	}
	kind := snapKind(b[9])
	if kind != snapCreated && kind != snapApplied {
		return nil, 0, fmt.Errorf("%w: kind %d", errSnapCorrupt, kind)
	}
	snap := new(pb.Snapshot)
	if err := proto.Unmarshal(b[snapHeaderSize:end], snap); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errSnapCorrupt, err)
	}
	return pb.EnsureSnapshot(snap), kind, nil
}

func readAll(fsys vfs.FS, path string) ([]byte, error) {
	f, err := fsys.OpenFile(path, 0, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// prepareSnapDir creates the snapshot directory durably and removes the
// temporary files a crash inside vfs.WriteFile leaves (no journal recovery
// runs in this directory to do it).
func prepareSnapDir(fsys vfs.FS, dir string) error {
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := fsys.SyncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if strings.HasPrefix(name, vfs.TempPrefix) {
			if err := fsys.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

func emptySnap() *pb.Snapshot { return pb.EnsureSnapshot(nil) }
