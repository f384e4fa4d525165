package checkpoint_test

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/vfs"
)

// TestFutureVersionIsNamed checks that a snapshot of a version this build
// does not read (checksums valid, as its writer would leave them) gets
// ErrFormat with a message naming the version found and the ones read.
func TestFutureVersionIsNamed(t *testing.T) {
	for _, compress := range []bool{false, true} {
		dir := t.TempDir()
		mustWrite(t, dir, 5, compress, []byte("state as of 5"))
		b := readSnapshot(t, dir)
		binary.LittleEndian.PutUint32(b[8:], 7)
		writeSnapshot(t, dir, reseal(b))
		_, err := checkpoint.ReadHeader(vfs.Default, dir)
		if !errors.Is(err, errs.ErrFormat) || errors.Is(err, errs.ErrCorrupt) {
			t.Fatalf("ReadHeader error = %v, want ErrFormat", err)
		}
		if want := "snapshot format version 7; this build reads version 1"; !strings.Contains(err.Error(), want) {
			t.Fatalf("ReadHeader error %q does not say %q", err, want)
		}
	}
}
