package errorfs_test

import (
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/vfs/errorfs"
)

// Fail each sync of a workload in turn.
func Example() {
	replace := func(fsys vfs.FS) error {
		return vfs.WriteFile(fsys, "meta", 0o644, func(w io.Writer) error {
			_, err := io.WriteString(w, "new")
			return err
		})
	}

	clean := errorfs.Wrap(crashfs.New())
	replace(clean)
	for n := 1; n <= clean.Count(errorfs.OpSync); n++ {
		fsys := errorfs.Wrap(crashfs.New(), errorfs.Rule{Op: errorfs.OpSync, N: n, Err: syscall.ENOSPC})
		err := replace(fsys)
		fmt.Println(errors.Is(err, errorfs.ErrInjected), errors.Is(err, syscall.ENOSPC))
	}
	// Output:
	// true true
}
