package segment

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/gojournal/journal/internal/errs"
)

// TestFutureVersionIsNamed checks that a segment of a version this build
// does not read gets ErrFormat with a message naming the version found and
// the ones read.
func TestFutureVersionIsNamed(t *testing.T) {
	b := appendHeader(nil, Header{FirstIndex: 7, Salt: testSalt})
	binary.LittleEndian.PutUint32(b[8:], 7)
	resealHeader(b)
	_, err := decodeHeader(b)
	if !errors.Is(err, errs.ErrFormat) || errors.Is(err, errs.ErrCorrupt) {
		t.Fatalf("decodeHeader error = %v, want errs.ErrFormat", err)
	}
	if want := "segment format version 7; this build reads versions 1, 2 and 3"; !strings.Contains(err.Error(), want) {
		t.Fatalf("decodeHeader error %q does not say %q", err, want)
	}
}
