package crashfs_test

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
)

// A file's data and its name become durable separately.
func Example() {
	fsys := crashfs.New()
	f, _ := fsys.OpenFile("log", os.O_RDWR|os.O_CREATE, 0o644)
	f.WriteAt([]byte("record"), 0)
	f.Sync()

	names, _ := fsys.Crash(crashfs.SyncedOnly, nil).ReadDir("/")
	fmt.Println("data synced:", names)

	fsys.SyncDir("/")
	names, _ = fsys.Crash(crashfs.SyncedOnly, nil).ReadDir("/")
	fmt.Println("directory synced too:", names)
	// Output:
	// data synced: []
	// directory synced too: [log]
}

// Crash-point enumeration: run a workload once to count its operations,
// then crash it after each one and check what a power loss leaves.
func ExampleFS_SetCrashAfter() {
	replace := func(fsys vfs.FS) error {
		return vfs.WriteFile(fsys, "meta", 0o644, func(w io.Writer) error {
			_, err := io.WriteString(w, "new")
			return err
		})
	}
	setup := func() *crashfs.FS {
		fsys := crashfs.New()
		vfs.WriteFile(fsys, "meta", 0o644, func(w io.Writer) error {
			_, err := io.WriteString(w, "old")
			return err
		})
		return fsys
	}

	fsys := setup()
	start := fsys.Ops()
	replace(fsys)
	end := fsys.Ops()
	survivors := map[bool]map[string]bool{false: {}, true: {}}
	for k := start; k <= end; k++ {
		fsys := setup()
		fsys.SetCrashAfter(k)
		err := replace(fsys)
		after := fsys.Crash(crashfs.SyncedOnly, nil)
		f, _ := after.OpenFile("meta", os.O_RDONLY, 0)
		b := make([]byte, 3)
		f.ReadAt(b, 0)
		survivors[err == nil][string(b)] = true
	}
	fmt.Println("crashed before WriteFile returned:", slices.Sorted(maps.Keys(survivors[false])))
	fmt.Println("crashed after WriteFile returned:", slices.Sorted(maps.Keys(survivors[true])))
	// Output:
	// crashed before WriteFile returned: [old]
	// crashed after WriteFile returned: [new]
}
