package recovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

// MetaName is the file holding a log's Meta. It is only ever replaced
// atomically (vfs.WriteFile), so its rename is the commit point of every
// change that spans files: TruncateFront and TruncateBack.
const MetaName = "journal.meta"

// On-disk layout of the meta file; integers little-endian.
const (
	metaMagic   = "\x89JMET\r\n\x1a"
	metaVersion = 1
	metaSize    = 40 // magic 8 + version 4 + flags 4 + first 8 + back 8 + xxhash64 of the preceding 32 bytes 8

	flagBackPending = 1 // a TruncateBack to Back has committed but may not be applied yet
)

// Meta is the log state that segment files alone cannot tell.
type Meta struct {
	// FirstIndex is the first live record: records below it were released
	// by TruncateFront (their segments may linger until removed). 0: none.
	FirstIndex uint64
	// BackPending says that a TruncateBack to Back committed but may not
	// have been applied: every record after Back is gone, whatever the
	// segments still hold.
	BackPending bool
	Back        uint64
}

func (m Meta) encode() []byte {
	var flags uint32
	if m.BackPending {
		flags |= flagBackPending
	}
	b := append([]byte(nil), metaMagic...)
	b = binary.LittleEndian.AppendUint32(b, metaVersion)
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint64(b, m.FirstIndex)
	b = binary.LittleEndian.AppendUint64(b, m.Back)
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

func decodeMeta(b []byte, path string) (Meta, error) {
	switch {
	case len(b) != metaSize:
		return Meta{}, &segment.CorruptionError{Path: path, Reason: fmt.Sprintf("meta file is %d bytes, want %d", len(b), metaSize)}
	case string(b[:8]) != metaMagic:
		return Meta{}, fmt.Errorf("%w: %s is not a journal meta file", segment.ErrFormat, path)
	case binary.LittleEndian.Uint64(b[32:]) != xxhash.Sum64(b[:32]):
		return Meta{}, &segment.CorruptionError{Path: path, Reason: "meta checksum mismatch"}
	case binary.LittleEndian.Uint32(b[8:]) != metaVersion:
		return Meta{}, fmt.Errorf("%w: %s has meta version %d", segment.ErrFormat, path, binary.LittleEndian.Uint32(b[8:]))
	}
	flags := binary.LittleEndian.Uint32(b[12:])
	if flags&^flagBackPending != 0 {
		return Meta{}, fmt.Errorf("%w: %s has unknown flags %#x", segment.ErrFormat, path, flags)
	}
	return Meta{
		FirstIndex:  binary.LittleEndian.Uint64(b[16:]),
		BackPending: flags&flagBackPending != 0,
		Back:        binary.LittleEndian.Uint64(b[24:]),
	}, nil
}

// ReadMeta reads dir's meta file; a missing file is the zero Meta.
func ReadMeta(fsys vfs.FS, dir string) (Meta, error) {
	path := filepath.Join(dir, MetaName)
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return Meta{}, nil
	}
	if err != nil {
		return Meta{}, fmt.Errorf("journal: read meta: %w", err)
	}
	defer f.Close()
	b := make([]byte, metaSize+1)
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return Meta{}, fmt.Errorf("journal: read meta: %w", err)
	}
	return decodeMeta(b[:n], path)
}

// WriteMeta durably replaces dir's meta file with m.
func WriteMeta(fsys vfs.FS, dir string, m Meta) error {
	return vfs.WriteFile(fsys, filepath.Join(dir, MetaName), 0o644, func(w io.Writer) error {
		_, err := w.Write(m.encode())
		return err
	})
}
