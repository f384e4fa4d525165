package recovery

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
)

// exampleManifest is the manifest of the worked example in ManifestName's
// doc comment.
var exampleManifest = manifest{first: 3, newest: 5, sealed: []sealedEntry{{
	h:    segment.Header{FirstIndex: 1, Salt: 0x0102030405060708, Version: 3},
	ft:   segment.Footer{Offset: 4096, Next: 5, Count: 4, Times: segment.Times{First: 1000, Last: 2000}},
	size: 4176,
}}}

// manifestGolden is the example as a file, written once and never
// changed: a later build must read it (or, once the format moves on,
// ignore it) as this one does.
const manifestGolden = "testdata/manifest-v1.golden"

// TestManifestWorkedExample keeps the documented layout, the golden file
// and the encoder in step: the example's bytes are what encode produces,
// and decode back.
func TestManifestWorkedExample(t *testing.T) {
	doc := readExample(t, "manifest.go")
	if got := exampleManifest.encode(); !bytes.Equal(got, doc) {
		t.Fatalf("encode =\n%s\nthe doc lists\n%s", hex.Dump(got), hex.Dump(doc))
	}
	if body := len(doc) - manifestSum; binary.LittleEndian.Uint64(doc[body:]) != xxhash.Sum64(doc[:body]) {
		t.Fatal("the example's checksum is not xxhash64 of the bytes before it")
	}
	golden, err := os.ReadFile(manifestGolden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(golden, doc) {
		t.Fatalf("%s =\n%s\nthe doc lists\n%s", manifestGolden, hex.Dump(golden), hex.Dump(doc))
	}
	m, ok := decodeManifest(golden)
	if !ok || !reflect.DeepEqual(m, exampleManifest) {
		t.Fatalf("decodeManifest(golden) = %+v, %v; want %+v", m, ok, exampleManifest)
	}
}

// TestManifestIsIgnoredUnlessValid checks reading rule 2 of ManifestName:
// anything but a valid version 1 manifest is ignored, never an error.
func TestManifestIsIgnoredUnlessValid(t *testing.T) {
	resum := func(b []byte) []byte {
		body := len(b) - manifestSum
		binary.LittleEndian.PutUint64(b[body:], xxhash.Sum64(b[:body]))
		return b
	}
	edit := func(off int, v uint64, width int) []byte {
		b := exampleManifest.encode()
		if width == 4 {
			binary.LittleEndian.PutUint32(b[off:], uint32(v))
		} else {
			binary.LittleEndian.PutUint64(b[off:], v)
		}
		return resum(b)
	}
	good := exampleManifest.encode()
	tests := map[string][]byte{
		"Empty":                nil,
		"Short":                good[:manifestHead],
		"BadMagic":             resum(append([]byte("\x89JMET\r\n\x1a"), good[8:]...)),
		"NewerVersion":         edit(8, 2, 4),
		"UnknownFlags":         edit(12, 1, 4),
		"ChecksumMismatch":     append(append([]byte(nil), good[:len(good)-1]...), good[len(good)-1]^1),
		"CountPastTheFile":     edit(32, 1<<60, 8),
		"CountShort":           edit(32, 0, 8),
		"ReservedSet":          edit(manifestHead+20, 1, 4),
		"UnknownSegmentFormat": edit(manifestHead+16, 9, 4),
		"GapBeforeNewest":      edit(24, 6, 8),
		"SizeDisagrees":        edit(manifestHead+40, 4177, 8),
		"FooterInTheHeader":    edit(manifestHead+24, 64, 8),
		"Trailing":             append(append([]byte(nil), good...), 0),
	}
	for name, b := range tests {
		if _, ok := decodeManifest(b); ok {
			t.Errorf("%s: decoded", name)
		}
	}
}

// TestManifestMustMatchTheDirectory checks reading rules 3 and 4: the meta
// file and the listing must be as the manifest says.
func TestManifestMustMatchTheDirectory(t *testing.T) {
	m := exampleManifest
	paths := func(firsts ...uint64) []string {
		var p []string
		for _, f := range firsts {
			p = append(p, filepath.Join("/log", segment.Name(f)))
		}
		return p
	}
	tests := []struct {
		name  string
		meta  Meta
		paths []string
		want  bool
	}{
		{"AsWritten", Meta{FirstIndex: 3}, paths(1, 5), true},
		{"OtherFirstIndex", Meta{FirstIndex: 4}, paths(1, 5), false},
		{"BackPending", Meta{FirstIndex: 3, BackPending: true, Back: 4}, paths(1, 5), false},
		{"EmptyPending", Meta{FirstIndex: 3, EmptyPending: true}, paths(1, 5), false},
		{"SegmentMissing", Meta{FirstIndex: 3}, paths(5), false},
		{"NewestMissing", Meta{FirstIndex: 3}, paths(1), false},
		{"SegmentExtra", Meta{FirstIndex: 3}, paths(1, 5, 9), false},
		{"OtherNewest", Meta{FirstIndex: 3}, paths(1, 6), false},
	}
	for _, tc := range tests {
		if got := m.matches(tc.meta, tc.paths); got != tc.want {
			t.Errorf("%s: matches = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Repair changes the directory: the manifest goes first (unlinked; the
// directory's next sync makes that durable). DropManifest, which salvage
// calls before it reseals segments in place, removes it durably: a crash
// right after it does not bring it back.
func TestRepairAndSalvageRemoveTheManifest(t *testing.T) {
	mem := crashfs.New()
	must(t, mem.MkdirAll("/log", 0o755))
	must(t, WriteManifest(mem, "/log", 0, []Segment{{First: 1}}))
	tmp := filepath.Join("/log", vfs.TempPrefix+MetaName+"-leftover")
	f, err := mem.OpenFile(tmp, os.O_RDWR|os.O_CREATE, 0o644)
	must(t, err)
	f.Close()
	st, err := Scan(mem, "/log", Options{Manifest: true})
	must(t, err)
	if st.Clean() {
		t.Fatal("a leftover temporary file: want something to repair")
	}
	must(t, st.Repair(mem))
	if _, err := mem.Stat(filepath.Join("/log", ManifestName)); err == nil {
		t.Fatal("the manifest survived Repair")
	}

	must(t, WriteManifest(mem, "/log", 0, []Segment{{First: 1}}))
	must(t, DropManifest(mem, "/log"))
	after := mem.Crash(crashfs.SyncedOnly, nil)
	if _, err := after.Stat(filepath.Join("/log", ManifestName)); err == nil {
		t.Fatal("the manifest survived DropManifest and a crash")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
