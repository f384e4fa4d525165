package errorfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
)

// base returns an in-memory FS holding db/a ("hello") and db/sub.
func base(t *testing.T) *crashfs.FS {
	t.Helper()
	mem := crashfs.New()
	if err := mem.MkdirAll("db/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := mem.OpenFile("db/a", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	return mem
}

func contents(t *testing.T, fsys vfs.FS, name string) string {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return string(b)
}

// TestRules lists which of five syncs each set of rules fails.
func TestRules(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		fail  []int // 1-based calls that must fail
	}{
		{"NoRules", nil, nil},
		{"First", []Rule{{Op: OpSync, N: 1}}, []int{1}},
		{"ZeroMeansFirst", []Rule{{Op: OpSync}}, []int{1}},
		{"Third", []Rule{{Op: OpSync, N: 3}}, []int{3}},
		{"StickyFromThird", []Rule{{Op: OpSync, N: 3, Sticky: true}}, []int{3, 4, 5}},
		{"BeyondLast", []Rule{{Op: OpSync, N: 6}}, nil},
		{"TwoRules", []Rule{{Op: OpSync, N: 2}, {Op: OpSync, N: 4}}, []int{2, 4}},
		{"OtherKind", []Rule{{Op: OpWrite, N: 1}, {Op: OpSyncDir, N: 1}}, nil},
		{"MatchCountsOnlyMatching", []Rule{{Op: OpSync, N: 2, Match: func(p string) bool { return strings.HasSuffix(p, "b") }}}, []int{4}},
		{"MatchSticky", []Rule{{Op: OpSync, Sticky: true, Match: func(p string) bool { return strings.HasSuffix(p, "a") }}}, []int{1, 3, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := Wrap(base(t), tt.rules...)
			files := map[string]vfs.File{}
			for _, name := range []string{"db/a", "db/b"} {
				f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				files[name] = f
			}
			var failed []int
			for call := 1; call <= 5; call++ {
				name := "db/a" // syncs go a, b, a, b, a
				if call%2 == 0 {
					name = "db/b"
				}
				err := files[name].Sync()
				if err == nil {
					continue
				}
				failed = append(failed, call)
				var e *Error
				if !errors.As(err, &e) || e.Op != OpSync || e.Path != name || e.Call != call {
					t.Errorf("call %d: error %#v", call, err)
				}
			}
			if !slices.Equal(failed, tt.fail) {
				t.Errorf("failed calls %v, want %v", failed, tt.fail)
			}
			if got := fsys.Count(OpSync); got != 5 {
				t.Errorf("Count(OpSync) = %d, want 5", got)
			}
			if got := fsys.Injected(); got != len(tt.fail) {
				t.Errorf("Injected = %d, want %d", got, len(tt.fail))
			}
		})
	}
}

// TestEachKind fails one call of each kind and checks it was counted
// under that kind, reported as an *Error, and not passed on.
func TestEachKind(t *testing.T) {
	tests := []struct {
		op   Op
		call func(fsys *FS, f vfs.File) error
		// check, if set, verifies the wrapped FS saw nothing.
		check func(t *testing.T, mem *crashfs.FS, f vfs.File)
	}{
		{OpCreate, func(fsys *FS, _ vfs.File) error {
			_, err := fsys.OpenFile("db/new", os.O_RDWR|os.O_CREATE, 0o644)
			return err
		}, func(t *testing.T, mem *crashfs.FS, _ vfs.File) {
			if _, err := mem.Stat("db/new"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("failed create created the file: %v", err)
			}
		}},
		{OpOpen, func(fsys *FS, _ vfs.File) error { _, err := fsys.OpenFile("db/a", os.O_RDONLY, 0); return err }, nil},
		{OpRead, func(_ *FS, f vfs.File) error { _, err := f.ReadAt(make([]byte, 1), 0); return err }, nil},
		{OpWrite, func(_ *FS, f vfs.File) error { _, err := f.WriteAt([]byte("J"), 0); return err },
			func(t *testing.T, mem *crashfs.FS, _ vfs.File) {
				if got := contents(t, mem, "db/a"); got != "hello" {
					t.Errorf("failed write wrote: %q", got)
				}
			}},
		{OpSync, func(_ *FS, f vfs.File) error { return f.Sync() },
			func(t *testing.T, mem *crashfs.FS, _ vfs.File) {
				for _, dir := range []string{"/", "db"} {
					if err := mem.SyncDir(dir); err != nil {
						t.Fatal(err)
					}
				}
				if got := contents(t, mem.Crash(crashfs.SyncedOnly, nil), "db/a"); got != "" {
					t.Errorf("failed sync made %q durable", got)
				}
			}},
		{OpTruncate, func(_ *FS, f vfs.File) error { return f.Truncate(1) },
			func(t *testing.T, mem *crashfs.FS, _ vfs.File) {
				if got := contents(t, mem, "db/a"); got != "hello" {
					t.Errorf("failed truncate truncated: %q", got)
				}
			}},
		{OpPreallocate, func(_ *FS, f vfs.File) error { return f.Preallocate(100) },
			func(t *testing.T, mem *crashfs.FS, _ vfs.File) {
				if got := contents(t, mem, "db/a"); got != "hello" {
					t.Errorf("failed preallocate grew the file: %q", got)
				}
			}},
		{OpSize, func(_ *FS, f vfs.File) error { _, err := f.Size(); return err }, nil},
		{OpChmod, func(_ *FS, f vfs.File) error { return f.Chmod(0o600) },
			func(t *testing.T, mem *crashfs.FS, _ vfs.File) {
				fi, err := mem.Stat("db/a")
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode().Perm(); got != 0o644 {
					t.Errorf("failed chmod changed the mode to %#o", got)
				}
			}},
		{OpWriteback, func(_ *FS, f vfs.File) error { return f.StartWriteback(0, 5) }, nil},
		{OpData, func(_ *FS, f vfs.File) error { _, _, _, err := f.Data(0); return err }, nil},
		{OpClose, func(_ *FS, f vfs.File) error { return f.Close() },
			func(t *testing.T, _ *crashfs.FS, f vfs.File) {
				if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, fs.ErrClosed) {
					t.Errorf("read after a failed close: %v, want ErrClosed", err)
				}
			}},
		{OpRemove, func(fsys *FS, _ vfs.File) error { return fsys.Remove("db/a") },
			func(t *testing.T, mem *crashfs.FS, _ vfs.File) {
				if _, err := mem.Stat("db/a"); err != nil {
					t.Errorf("failed remove removed: %v", err)
				}
			}},
		{OpRename, func(fsys *FS, _ vfs.File) error { return fsys.Rename("db/a", "db/b") },
			func(t *testing.T, mem *crashfs.FS, _ vfs.File) {
				if _, err := mem.Stat("db/a"); err != nil {
					t.Errorf("failed rename renamed: %v", err)
				}
			}},
		{OpMkdirAll, func(fsys *FS, _ vfs.File) error { return fsys.MkdirAll("db/x/y", 0o755) },
			func(t *testing.T, mem *crashfs.FS, _ vfs.File) {
				if _, err := mem.Stat("db/x"); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("failed MkdirAll made a directory: %v", err)
				}
			}},
		{OpReadDir, func(fsys *FS, _ vfs.File) error { _, err := fsys.ReadDir("db"); return err }, nil},
		{OpStat, func(fsys *FS, _ vfs.File) error { _, err := fsys.Stat("db/a"); return err }, nil},
		{OpSyncDir, func(fsys *FS, _ vfs.File) error { return fsys.SyncDir("db") },
			func(t *testing.T, mem *crashfs.FS, _ vfs.File) {
				if got, err := mem.Crash(crashfs.SyncedOnly, nil).ReadDir("/"); err != nil || len(got) != 0 {
					t.Errorf("failed SyncDir made entries durable: %q, %v", got, err)
				}
			}},
		{OpLock, func(fsys *FS, _ vfs.File) error { _, err := fsys.Lock("db/LOCK"); return err },
			func(t *testing.T, mem *crashfs.FS, _ vfs.File) {
				l, err := mem.Lock("db/LOCK")
				if err != nil {
					t.Errorf("failed Lock holds the lock: %v", err)
					return
				}
				l.Close()
			}},
	}
	covered := map[Op]bool{}
	for _, tt := range tests {
		covered[tt.op] = true
		t.Run(tt.op.String(), func(t *testing.T) {
			mem := base(t)
			fsys := Wrap(mem)
			f, err := fsys.OpenFile("db/a", os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			before := counts(fsys)
			fsys.Add(Rule{Op: tt.op, N: 1})
			err = tt.call(fsys, f)
			var e *Error
			if !errors.As(err, &e) || e.Op != tt.op || !errors.Is(err, ErrInjected) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("got %v, want an injected EIO on %v", err, tt.op)
			}
			after := counts(fsys)
			for op := OpCreate; op < numOps; op++ {
				want := before[op]
				if op == tt.op {
					want++
				}
				if after[op] != want {
					t.Errorf("Count(%v) went from %d to %d", op, before[op], after[op])
				}
			}
			if tt.check != nil {
				tt.check(t, mem, f)
			}
			// With the rule spent, the same call passes.
			if tt.op != OpClose {
				if err := tt.call(fsys, f); err != nil {
					t.Errorf("second call: %v", err)
				}
			}
		})
	}
	for op := OpCreate; op < numOps; op++ {
		if !covered[op] {
			t.Errorf("no case for %v", op)
		}
	}
}

func counts(fsys *FS) map[Op]int {
	m := map[Op]int{}
	for op := OpCreate; op < numOps; op++ {
		m[op] = fsys.Count(op)
	}
	return m
}

func TestErrorValues(t *testing.T) {
	tests := []struct {
		name string
		err  error
		is   []error
	}{
		{"Default", nil, []error{ErrInjected, syscall.EIO}},
		{"NoSpace", syscall.ENOSPC, []error{ErrInjected, syscall.ENOSPC}},
		{"Custom", syscall.EACCES, []error{ErrInjected, syscall.EACCES, fs.ErrPermission}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := Wrap(base(t), Rule{Op: OpRename, Err: tt.err})
			err := fsys.Rename("db/a", "db/b")
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) is false", err, target)
				}
			}
			if errors.Is(err, syscall.ENOENT) {
				t.Errorf("%v is ENOENT", err)
			}
		})
	}
	err := (&Error{Op: OpSync, Path: "db/a", Call: 3, Err: syscall.EIO}).Error()
	if want := "errorfs: injected sync error (call 3) on db/a: input/output error"; err != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestAddCountsFromNow(t *testing.T) {
	fsys := Wrap(base(t))
	for range 3 {
		if err := fsys.SyncDir("db"); err != nil {
			t.Fatal(err)
		}
	}
	fsys.Add(Rule{Op: OpSyncDir, N: 2})
	if err := fsys.SyncDir("db"); err != nil {
		t.Errorf("1st SyncDir after Add: %v", err)
	}
	if err := fsys.SyncDir("db"); !errors.Is(err, ErrInjected) {
		t.Errorf("2nd SyncDir after Add: %v", err)
	}
	var e *Error
	if err := fsys.SyncDir("db"); err != nil {
		t.Errorf("3rd SyncDir after Add: %v", err)
	}
	fsys.Add(Rule{Op: OpSyncDir, Sticky: true})
	if err := fsys.SyncDir("db"); !errors.As(err, &e) || e.Call != 7 {
		t.Errorf("SyncDir under a sticky rule: %v", err)
	}
	fsys.Clear()
	if err := fsys.SyncDir("db"); err != nil {
		t.Errorf("SyncDir after Clear: %v", err)
	}
	if fsys.Count(OpSyncDir) != 8 || fsys.Injected() != 2 {
		t.Errorf("Count %d, Injected %d", fsys.Count(OpSyncDir), fsys.Injected())
	}
}

func TestRenameMatchesEitherName(t *testing.T) {
	isMeta := func(p string) bool { return strings.HasSuffix(p, "meta") }
	fsys := Wrap(base(t), Rule{Op: OpRename, Sticky: true, Match: isMeta})
	if err := fsys.Rename("db/a", "db/b"); err != nil {
		t.Errorf("unmatched rename: %v", err)
	}
	if err := fsys.Rename("db/b", "db/meta"); !errors.Is(err, ErrInjected) {
		t.Errorf("rename onto meta: %v", err)
	}
	if err := fsys.Rename("db/meta", "db/c"); !errors.Is(err, ErrInjected) {
		t.Errorf("rename from meta: %v", err)
	}
}

// TestWriteFileFailures fails each call atomic replacement makes, in turn,
// and checks every failure is reported and leaves the old file in place.
func TestWriteFileFailures(t *testing.T) {
	replace := func(fsys vfs.FS) error {
		return vfs.WriteFile(fsys, "db/a", 0o644, func(w io.Writer) error {
			_, err := io.WriteString(w, "new")
			return err
		})
	}
	clean := Wrap(base(t))
	if err := replace(clean); err != nil {
		t.Fatal(err)
	}
	tried := 0
	for op := OpCreate; op < numOps; op++ {
		for n := 1; n <= clean.Count(op); n++ {
			name := fmt.Sprintf("%v#%d", op, n)
			mem := base(t)
			fsys := Wrap(mem, Rule{Op: op, N: n})
			err := replace(fsys)
			if fsys.Injected() != 1 {
				t.Fatalf("%s: injected %d errors", name, fsys.Injected())
			}
			got := contents(t, mem, "db/a")
			// Only a failed SyncDir comes after the rename: the file is
			// replaced but the replacement is not known durable.
			if op == OpSyncDir {
				if !errors.Is(err, ErrInjected) || got != "new" {
					t.Errorf("%s: WriteFile returned %v, file %q", name, err, got)
				}
				continue
			}
			if !errors.Is(err, ErrInjected) || got != "hello" {
				t.Errorf("%s: WriteFile returned %v, file %q", name, err, got)
			}
			tried++
		}
	}
	if tried < 4 {
		t.Errorf("only %d calls to fail", tried)
	}
}

func TestConcurrentUse(t *testing.T) {
	fsys := Wrap(base(t), Rule{Op: OpWrite, N: 50, Sticky: true})
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for g := range 4 {
		wg.Go(func() {
			f, err := fsys.OpenFile(fmt.Sprintf("db/f%d", g), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for i := range 25 {
				if _, err := f.WriteAt([]byte{byte(i)}, int64(i)); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if fsys.Count(OpWrite) != 100 || failed != 51 || fsys.Injected() != 51 {
		t.Errorf("Count %d, failed %d, Injected %d; want 100, 51, 51", fsys.Count(OpWrite), failed, fsys.Injected())
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{OpSync: "sync", OpCreate: "create", OpLock: "lock", 0: "Op(0)", numOps: fmt.Sprintf("Op(%d)", int(numOps))} {
		if op.String() != want {
			t.Errorf("%d: %q, want %q", int(op), op.String(), want)
		}
	}
	if Wrap(base(t)).Count(0) != 0 {
		t.Error("Count of an invalid Op")
	}
	defer func() {
		if recover() == nil {
			t.Error("Add of a rule with no Op did not panic")
		}
	}()
	Wrap(base(t), Rule{N: 1})
}
