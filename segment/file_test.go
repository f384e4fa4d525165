package segment

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gojournal/journal/vfs"
)

func TestName(t *testing.T) {
	for first, want := range map[uint64]string{
		1:          "00000000000000000001.wal",
		1234567890: "00000000001234567890.wal",
		^uint64(0): "18446744073709551615.wal",
	} {
		if got := Name(first); got != want {
			t.Errorf("Name(%d) = %q, want %q", first, got, want)
		}
		if got, ok := ParseName(want); !ok || got != first {
			t.Errorf("ParseName(%q) = %d, %v; want %d", want, got, ok, first)
		}
	}
}

func TestNamesSortInLogOrder(t *testing.T) {
	prev := Name(1)
	for _, i := range []uint64{9, 10, 99, 100, 1 << 32, 1 << 63, ^uint64(0)} {
		if n := Name(i); n <= prev {
			t.Errorf("Name(%d) = %q sorts before %q", i, n, prev)
		} else {
			prev = n
		}
	}
}

func TestParseNameRejects(t *testing.T) {
	for _, name := range []string{
		"",
		".wal",
		"1.wal",                        // not padded
		"0000000000000000001.wal",      // 19 digits
		"000000000000000000001.wal",    // 21 digits
		"00000000000000000000.wal",     // index 0 is never a record
		"18446744073709551616.wal",     // overflows uint64
		"99999999999999999999.wal",     // overflows uint64
		"0000000000000000000a.wal",     // not decimal
		"+0000000000000000001.wal",     // sign
		"00000000000000000001.log",     // wrong extension
		"00000000000000000001.wal.bak", // wrong extension
		vfs.TempPrefix + Name(1),       // a temporary file
		"00000000000000000001",         // no extension
		"0000000000000000_001.wal",     // separator
		"00000000000000000001.WAL",     // extension is case-sensitive
		"dir/" + Name(1),               // not a base name
	} {
		if first, ok := ParseName(name); ok {
			t.Errorf("ParseName(%q) = %d, true; want false", name, first)
		}
	}
}

func TestCreate(t *testing.T) {
	tests := []struct {
		name     string
		first    uint64
		prealloc int64
		wantSize int64
	}{
		{"Preallocated", 42, 1 << 16, 1 << 16},
		{"NotPreallocated", 1, 0, HeaderSize},
		{"PreallocationSmallerThanHeader", 5, 10, HeaderSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f, h, err := Create(vfs.Default, dir, tt.first, tt.prealloc)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if h.FirstIndex != tt.first {
				t.Fatalf("Create returned header %+v, want first index %d", h, tt.first)
			}
			names, err := vfs.Default.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(names) != 1 || names[0] != Name(tt.first) {
				t.Fatalf("directory holds %q, want only %q", names, Name(tt.first))
			}
			if first, ok := ParseName(names[0]); !ok || first != tt.first {
				t.Fatalf("ParseName(%q) = %d, %v", names[0], first, ok)
			}
			data, err := os.ReadFile(filepath.Join(dir, names[0]))
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(data)) != tt.wantSize {
				t.Fatalf("file is %d bytes, want %d", len(data), tt.wantSize)
			}
			got, err := decodeHeader(data)
			if err != nil || got != h {
				t.Fatalf("decodeHeader = %+v, %v; want %+v", got, err, h)
			}
			if !isZero(data[HeaderSize:]) {
				t.Fatal("preallocated space is not zero")
			}
			// A new segment scans as empty, and the first frame goes
			// at DataStart, after the header's sector.
			sc := newScanner(bytes.NewReader(data), int64(len(data)), h)
			if sc.Next() || sc.Offset() != DataStart || (sc.Stop() != StopEOF && sc.Stop() != StopZeros) {
				t.Fatalf("new segment scans to %d: %s", sc.Offset(), sc.Why())
			}
			// The returned file is open for writing.
			frame := AppendFrame(nil, h.Salt, TypeRecord, None, tt.first, DataStart, []byte("first"))
			if _, err := f.WriteAt(frame, DataStart); err != nil {
				t.Fatal(err)
			}
			size, _ := f.Size()
			sc = newScanner(f, size, h)
			if !sc.Next() || sc.Frame().Index != tt.first || string(sc.Frame().Data) != "first" {
				t.Fatalf("record written after Create does not scan: %s", sc.Why())
			}
		})
	}
}

func TestCreateGivesEachSegmentItsOwnSalt(t *testing.T) {
	salts := map[uint64]bool{}
	dir := t.TempDir()
	for i := range uint64(8) {
		f, h, err := Create(vfs.Default, dir, 1+i, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		salts[h.Salt] = true
	}
	if len(salts) != 8 {
		t.Fatalf("8 segments got %d distinct salts", len(salts))
	}
}

func TestCreateFailsWithoutDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	if _, _, err := Create(vfs.Default, dir, 1, 0); err == nil || !strings.Contains(err.Error(), "create segment") {
		t.Fatalf("Create in a missing directory: %v", err)
	}
}
