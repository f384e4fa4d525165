package segment

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The worked example of the package doc (doc.go), which this test encodes.
const (
	exampleFirstIndex = 1
	exampleSalt       = 0x0123456789abcdef
	exampleRecord     = "hello"
	// exampleTime is when the record was appended: 2026-01-01 00:00:00 UTC.
	exampleTime = 1767225600_000000000
)

// exampleLine matches a line of the worked example's listing: a decimal
// offset, the bytes in hex (or "00 * n" for n zero bytes), and a description
// set off by two spaces.
var exampleLine = regexp.MustCompile(`^\s*(\d+)  (?:00 \* (\d+)|((?:[0-9a-f]{2} )*[0-9a-f]{2}))(?:  +(.*))?$`)

// exampleValue finds a stated "= 0x..." value in a description.
var exampleValue = regexp.MustCompile(`= 0x([0-9a-f]{16})$`)

type exampleRow struct {
	offset int
	bytes  []byte
	desc   string
}

// readDocExample returns the rows of the listings in doc.go's "# Worked
// example" section.
func readDocExample(t *testing.T) []exampleRow {
	t.Helper()
	f, err := os.Open("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []exampleRow
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "// # Worked example":
			in = true
			continue
		case !strings.HasPrefix(line, "//"), strings.HasPrefix(line, "// # "):
			in = false
		}
		code, ok := strings.CutPrefix(line, "//\t")
		if !in || !ok {
			continue
		}
		m := exampleLine.FindStringSubmatch(code)
		if m == nil {
			continue
		}
		off, _ := strconv.Atoi(m[1])
		var b []byte
		if m[2] != "" {
			zeros, _ := strconv.Atoi(m[2])
			b = make([]byte, zeros)
		} else if b, err = hex.DecodeString(strings.ReplaceAll(m[3], " ", "")); err != nil {
			t.Fatalf("doc.go: %q: %v", line, err)
		}
		rows = append(rows, exampleRow{offset: off, bytes: b, desc: m[4]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatal("doc.go: no worked example listing found under \"# Worked example\"")
	}
	return rows
}

func TestDocWorkedExampleMatchesEncoding(t *testing.T) {
	h := Header{FirstIndex: exampleFirstIndex, Salt: exampleSalt, Version: Version}
	times := Times{First: exampleTime, Last: exampleTime}
	open := appendHeader(nil, h)
	open = append(open, make([]byte, DataStart-HeaderSize)...)
	open = AppendFrame(open, h.Salt, TypeRecord, None, exampleFirstIndex, DataStart, []byte(exampleRecord))
	open = append(open, make([]byte, AlignSector(int64(len(open)))-int64(len(open)))...)
	sealed := appendFooter(bytes.Clone(open), h, int64(len(open)), []uint32{DataStart}, times)

	var doc []byte
	for _, r := range readDocExample(t) {
		if r.offset != len(doc) {
			t.Errorf("doc.go: listing row at offset %d follows %d bytes: offsets must be contiguous", r.offset, len(doc))
		}
		if m := exampleValue.FindStringSubmatch(r.desc); m != nil {
			want, _ := strconv.ParseUint(m[1], 16, 64)
			if len(r.bytes) != 8 || binary.LittleEndian.Uint64(r.bytes) != want {
				t.Errorf("doc.go: row at offset %d says %q but its bytes read %x", r.offset, m[0], r.bytes)
			}
		}
		doc = append(doc, r.bytes...)
	}

	if !bytes.Equal(doc, sealed) {
		t.Errorf("doc.go's worked example differs from the encoding.\ndoc.go:\n%s\nencoded:\n%s", hex.Dump(doc), hex.Dump(sealed))
	}
	if len(open) != 1024 || int64(len(sealed)) != h.SealedSize(int64(len(open)), 1) || len(sealed) != 1096 {
		t.Errorf("example sizes: open %d, sealed %d; doc.go says 1024 and 1096", len(open), len(sealed))
	}

	// The example must also read back as the doc describes it.
	got, err := decodeHeader(sealed)
	if err != nil || got != h {
		t.Fatalf("decodeHeader = %+v, %v; want %+v", got, err, h)
	}
	ft, reason, err := readFooter(bytes.NewReader(sealed), int64(len(sealed)), h)
	if err != nil || !ft.Valid() || ft != (Footer{Offset: 1024, Next: 2, Count: 1, Times: times}) {
		t.Fatalf("readFooter = %+v, %q, %v", ft, reason, err)
	}
	off, size, err := ft.RecordSpan(bytes.NewReader(sealed), 0)
	if err != nil || off != DataStart || size != 512 {
		t.Fatalf("RecordSpan(0) = %d, %d, %v; want 512, 512", off, size, err)
	}
	rec, err := ReadRecord(bytes.NewReader(sealed), "example", h, off, size, exampleFirstIndex)
	if err != nil || string(rec) != exampleRecord {
		t.Fatalf("ReadRecord = %q, %v", rec, err)
	}
	sc := newScanner(bytes.NewReader(sealed), int64(len(sealed)), h)
	if !sc.Next() || string(sc.Frame().Data) != exampleRecord || sc.Next() || !sc.Sealed() {
		t.Fatalf("scanning the example: sealed %v, stop %s", sc.Sealed(), sc.Why())
	}
}
