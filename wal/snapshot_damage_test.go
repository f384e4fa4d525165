package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
)

// TestDamagedSnapshotNeverReplaysAWrongState damages the snapshot of a
// log in every way a disk or an operator can: each bit flipped, cut at
// every length, extended, zeroed, a future version, a foreign file, a
// snapshot of an index the log does not continue, a directory under its
// name. Open must refuse
// the directory with ErrCorrupt or ErrFormat, or open it and then refuse
// the snapshot when it is loaded or read to the end: a database never
// restores from anything but the snapshot as written.
func TestDamagedSnapshotNeverReplaysAWrongState(t *testing.T) {
	base := crashfs.New()
	const dir = "/log"
	l := openT(t, dir, &Options{FS: base, Logger: quiet})
	appendN(t, l, 10)
	const state = "the state as of record 6"
	if err := l.Checkpoint(6, func(w io.Writer) error { _, err := io.WriteString(w, state); return err }); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, checkpoint.FileName)
	good := fileData(t, base, path)
	// A valid snapshot of an index the log does not continue (it holds
	// [7, 10]): the snapshot of another log.
	other := crashfs.New()
	if err := checkpoint.Write(other, "/", 12, checkpoint.WriteOptions{}, func(w io.Writer) error {
		_, err := io.WriteString(w, state)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	of12 := fileData(t, other, "/"+checkpoint.FileName)

	type damage struct {
		name string
		file []byte // nil: make a directory instead
	}
	var cases []damage
	for off := range good {
		// One bit a byte, a different one each byte: every field is
		// hit, at a cost CI can pay.
		b := bytes.Clone(good)
		b[off] ^= 1 << (off % 8)
		cases = append(cases, damage{fmt.Sprintf("flip %d.%d", off, off%8), b})
	}
	for n := range len(good) {
		cases = append(cases, damage{fmt.Sprintf("cut at %d", n), bytes.Clone(good[:n])})
	}
	future := bytes.Clone(good)
	binary.LittleEndian.PutUint32(future[8:], checkpoint.Version+1)
	cases = append(cases,
		damage{"extended", append(bytes.Clone(good), 0)},
		damage{"zeroed", make([]byte, len(good))},
		damage{"future version", future},
		damage{"foreign", []byte("#!/bin/sh\necho this is not a snapshot\n")},
		damage{"snapshot of index 12", of12},
		damage{"directory", nil},
	)
	for _, c := range cases {
		fsys := base.Crash(crashfs.SyncedOnly, nil)
		if c.file == nil {
			must(t, fsys.Remove(path))
			must(t, fsys.MkdirAll(path, 0o755))
		} else {
			f, err := fsys.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			must(t, err)
			_, err = f.WriteAt(c.file, 0)
			must(t, err)
			must(t, f.Close())
		}
		if err := loadDamaged(fsys, dir, state); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// fileData reads the whole file at path on fsys.
func fileData(t *testing.T, fsys vfs.FS, path string) []byte {
	t.Helper()
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	must(t, err)
	defer f.Close()
	size, err := f.Size()
	must(t, err)
	b := make([]byte, size)
	_, err = f.ReadAt(b, 0)
	must(t, err)
	return b
}

// loadDamaged opens the log on fsys and loads its snapshot as a database
// would; it returns an error unless that fails with ErrCorrupt or
// ErrFormat, or yields the state as written (a flip the checks cannot
// see, or none).
func loadDamaged(fsys *crashfs.FS, dir, state string) error {
	l, err := Open(dir, &Options{FS: fsys, Logger: quiet})
	if err != nil {
		return refused("Open", err)
	}
	defer l.Close()
	index, r, err := l.Snapshot()
	if err != nil {
		return refused("Snapshot", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return refused("reading the snapshot", err)
	}
	if index != 6 || string(b) != state {
		return fmt.Errorf("the snapshot loads as index %d, %q; want 6, %q", index, b, state)
	}
	return nil
}

// refused returns nil if err reports damage or a foreign format.
func refused(what string, err error) error {
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrFormat) {
		return nil
	}
	return fmt.Errorf("%s: %v, want ErrCorrupt or ErrFormat", what, err)
}

// TestDirectoryUnderTheSnapshotsName: on the operating system's file
// system too, a directory named like the snapshot is a foreign file
// (ErrFormat), not an I/O error a caller may retry.
func TestDirectoryUnderTheSnapshotsName(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, &Options{Logger: quiet})
	appendN(t, l, 3)
	must(t, l.Close())
	must(t, os.Mkdir(filepath.Join(dir, checkpoint.FileName), 0o755))
	if _, err := Open(dir, &Options{Logger: quiet}); !errors.Is(err, ErrFormat) {
		t.Fatalf("Open with a directory named %s: %v, want ErrFormat", checkpoint.FileName, err)
	}
	if _, err := checkpoint.ReadHeader(vfs.Default, dir); !errors.Is(err, ErrFormat) {
		t.Fatalf("ReadHeader of a directory: %v, want ErrFormat", err)
	}
}
