package recovery

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/vfs"
)

// exampleMeta is the Meta of the worked example in MetaName's doc comment.
var exampleMeta = Meta{FirstIndex: 4, Back: 9, BackPending: true}

// metaExampleLine matches a row of the worked example: a decimal offset,
// the bytes in hex, and a description set off by two spaces.
var metaExampleLine = regexp.MustCompile(`^//\t\s*(\d+)  ((?:[0-9a-f]{2} )*[0-9a-f]{2})  +(.*)$`)

// readExample returns the worked example's bytes as file lists them,
// checking that the rows are contiguous and that every "= 0x..." value is
// the little-endian reading of its row.
func readExample(t *testing.T, file string) []byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b []byte
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "// Worked example.") {
			in = true
		}
		if !in || !strings.HasPrefix(line, "//") {
			in = in && strings.HasPrefix(line, "//")
			continue
		}
		m := metaExampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if off, _ := strconv.Atoi(m[1]); off != len(b) {
			t.Fatalf("example row at offset %d follows %d bytes: %q", off, len(b), line)
		}
		row, err := hex.DecodeString(strings.ReplaceAll(m[2], " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		if _, v, ok := strings.Cut(m[3], "= 0x"); ok {
			want, err := strconv.ParseUint(v, 16, 64)
			if err != nil || len(row) != 8 || binary.LittleEndian.Uint64(row) != want {
				t.Fatalf("row %q does not hold the value it states", line)
			}
		}
		b = append(b, row...)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Fatalf("no worked example found in %s", file)
	}
	return b
}

// TestMetaWorkedExample keeps the documented layout and the encoder in
// step: the example's bytes are what encode produces, and decode back.
func TestMetaWorkedExample(t *testing.T) {
	doc := readExample(t, "meta.go")
	if got := exampleMeta.encode(); !bytes.Equal(got, doc) {
		t.Fatalf("encode(%+v) =\n%s\nthe doc lists\n%s", exampleMeta, hex.Dump(got), hex.Dump(doc))
	}
	if len(doc) != metaSize {
		t.Fatalf("the example is %d bytes, the file %d", len(doc), metaSize)
	}
	if sum := xxhash.Sum64(doc[:32]); binary.LittleEndian.Uint64(doc[32:]) != sum {
		t.Fatalf("the example's checksum is not xxhash64 of bytes [0, 32) (%#x)", sum)
	}
	m, err := decodeMeta(doc, "journal.meta")
	if err != nil || m != exampleMeta {
		t.Fatalf("decodeMeta(example) = %+v, %v; want %+v", m, err, exampleMeta)
	}
}

// resum recomputes the checksum of an encoded meta file, as a writer of
// the changed fields would have.
func resum(b []byte) []byte {
	binary.LittleEndian.PutUint64(b[32:], xxhash.Sum64(b[:32]))
	return b
}

// TestReadMeta checks how a reader treats each kind of meta file, as the
// format doc lists them.
func TestReadMeta(t *testing.T) {
	good := exampleMeta.encode
	future := func(size int) []byte {
		b := good()
		binary.LittleEndian.PutUint32(b[8:], 7)
		b = resum(b)
		return append(b, make([]byte, size-len(b))...)[:size]
	}
	tests := []struct {
		name    string
		file    []byte // nil: no file
		want    error  // nil: exampleMeta (or the zero Meta with no file)
		message string // the error names this
	}{
		{name: "Missing"},
		{name: "Good", file: good()},
		{name: "Empty", file: []byte{}, want: errs.ErrCorrupt, message: "meta file is 0 bytes, want 40"},
		{name: "Short", file: good()[:39], want: errs.ErrCorrupt, message: "meta file is 39 bytes, want 40"},
		{name: "Long", file: append(good(), 0), want: errs.ErrCorrupt, message: "meta file is 41 bytes, want 40"},
		{name: "BadMagic", file: resum(append([]byte("\x89JRNL\r\n\x1a"), good()[8:]...)), want: errs.ErrFormat, message: "not a journal meta file"},
		{name: "FlippedBit", file: func() []byte { b := good(); b[20] ^= 4; return b }(), want: errs.ErrCorrupt, message: "meta checksum mismatch"},
		{name: "VersionFlippedWithoutChecksum", file: func() []byte { b := good(); b[8] = 7; return b }(), want: errs.ErrCorrupt, message: "meta checksum mismatch"},
		{name: "FutureVersion", file: future(metaSize), want: errs.ErrFormat, message: "meta file format version 7; this build reads version 1"},
		{name: "LargerFutureVersion", file: future(64), want: errs.ErrFormat, message: "meta file format version 7; this build reads version 1"},
		{name: "UnknownFlags", file: func() []byte { b := good(); b[12] |= 4; return resum(b) }(), want: errs.ErrFormat, message: "unknown flags 0x5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.file != nil {
				if err := os.WriteFile(filepath.Join(dir, MetaName), tt.file, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, err := ReadMeta(vfs.Default, dir)
			switch {
			case tt.want == nil && tt.file == nil:
				if err != nil || m != (Meta{}) {
					t.Fatalf("ReadMeta = %+v, %v; want the zero Meta", m, err)
				}
			case tt.want == nil:
				if err != nil || m != exampleMeta {
					t.Fatalf("ReadMeta = %+v, %v; want %+v", m, err, exampleMeta)
				}
			case !errors.Is(err, tt.want):
				t.Fatalf("ReadMeta error = %v, want %v", err, tt.want)
			case !strings.Contains(err.Error(), tt.message) || !strings.Contains(err.Error(), MetaName):
				t.Fatalf("ReadMeta error %q does not name %s and say %q", err, MetaName, tt.message)
			}
		})
	}
}

// TestWriteMetaRoundTrip writes each kind of Meta and reads it back.
func TestWriteMetaRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, m := range []Meta{{FirstIndex: 4}, {Back: 5}, {FirstIndex: 6, Back: 5, BackPending: true}, {FirstIndex: 9, Back: 5, EmptyPending: true}, exampleMeta, {}} {
		if err := WriteMeta(vfs.Default, dir, m); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadMeta(vfs.Default, dir); err != nil || got != m {
			t.Fatalf("ReadMeta after WriteMeta(%+v) = %+v, %v", m, got, err)
		}
	}
}
