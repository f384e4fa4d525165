package errs

import (
	"errors"
	"testing"
)

func TestCheckVersion(t *testing.T) {
	tests := []struct {
		found uint32
		reads []uint32
		want  string // "" for no error
	}{
		{1, []uint32{1}, ""},
		{2, []uint32{1, 2}, ""},
		{0, []uint32{1}, "journal: unsupported file format: thing format version 0; this build reads version 1"},
		{3, []uint32{1, 2}, "journal: unsupported file format: thing format version 3; this build reads versions 1 and 2"},
		{9, []uint32{1, 2, 4}, "journal: unsupported file format: thing format version 9; this build reads versions 1, 2 and 4"},
	}
	for _, tt := range tests {
		err := CheckVersion("thing", tt.found, tt.reads)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckVersion(%d, %v) = %v, want nil", tt.found, tt.reads, err)
		case tt.want != "" && (!errors.Is(err, ErrFormat) || err.Error() != tt.want):
			t.Errorf("CheckVersion(%d, %v) = %v, want %q (ErrFormat)", tt.found, tt.reads, err, tt.want)
		}
	}
}
