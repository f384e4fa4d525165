package powercut

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/seedtest"
	"golang.org/x/sys/unix"
)

// Environment variables of the power-cut tests.
const (
	// EnvRounds sets the number of power cuts per file system.
	EnvRounds = "JOURNAL_POWERCUT_ROUNDS"
	// EnvSeed replays a run's random choices (cut moments and modes,
	// record sizes); the seed is printed by every run.
	EnvSeed = seedtest.Env
	// EnvEvidence is where a failing round copies the log directory
	// (default: the system's temporary directory).
	EnvEvidence = "JOURNAL_POWERCUT_EVIDENCE"
)

// defaultRounds keeps a run of both file systems within a few minutes on
// two cores.
const defaultRounds = 25

func TestMain(m *testing.M) {
	if code, ok := ChildFromEnv(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func rounds(t *testing.T) int {
	if s := os.Getenv(EnvRounds); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("%s=%q: want a positive number", EnvRounds, s)
		}
		return v
	}
	return defaultRounds
}

// needs skips the test unless power cuts can run on fsys here.
func needs(t *testing.T, fsys FileSystem) {
	t.Helper()
	if why := Preflight(); why != "" {
		t.Skip(why)
	}
	if why := fsys.Missing(); why != "" {
		t.Skip(why)
	}
}

// childCommand runs this test binary as the workload.
func childCommand(env []string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// TestPowerCut cuts the power under a workload of concurrent, synced
// appends on each file system and checks, after every recovery, that no
// acknowledged record was lost (I1), that the log is a gap-free prefix of
// what was appended (I2), and that recovery is idempotent and the log
// takes appends that survive the next cut (I3).
func TestPowerCut(t *testing.T) {
	s, n := seedtest.Seed(t), rounds(t)
	t.Logf("%s=%d", EnvRounds, n)
	evidence := os.Getenv(EnvEvidence)
	if evidence == "" {
		evidence = os.TempDir()
	}
	var all []*Figures
	for i, fsys := range FileSystems {
		t.Run(fsys.Name, func(t *testing.T) {
			needs(t, fsys)
			fig, err := Run(Config{
				FS:       fsys,
				Rounds:   n,
				Seed:     s + uint64(i),
				Work:     t.TempDir(),
				Child:    childCommand,
				Logf:     t.Logf,
				Evidence: evidence,
			})
			all = append(all, fig)
			for _, v := range fig.Violations {
				t.Error(v)
			}
			if err != nil {
				t.Fatalf("%s=%d: %v", EnvSeed, s, err)
			}
			if len(fig.Violations) > 0 {
				t.Errorf("%s=%d: %d violations; rerun with %s=%d", EnvSeed, s, len(fig.Violations), EnvSeed, s)
			}
		})
	}
	for _, fig := range all {
		t.Log(fig)
	}
}

// bootForTest makes fsys on a fresh disk and mounts it.
func bootForTest(t *testing.T, fsys FileSystem) (*machine, *Disk) {
	t.Helper()
	work := t.TempDir()
	fuseDir, mnt := filepath.Join(work, "fuse"), filepath.Join(work, "mnt")
	for _, d := range []string{fuseDir, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	disk := NewDisk(DiskSize())
	srv, err := Serve(fuseDir, disk)
	if err != nil {
		t.Fatal(err)
	}
	m := &machine{cfg: Config{FS: fsys}, disk: disk, srv: srv, mnt: mnt}
	t.Cleanup(func() {
		if err := m.halt(); err != nil {
			t.Error(err)
		}
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	dev, err := AttachLoop(srv.Image())
	if err != nil {
		t.Fatal(err)
	}
	m.dev = dev
	if _, err := run(2*time.Minute, fsys.Mkfs[0], append(fsys.Mkfs[1:], dev)...); err != nil {
		t.Fatal(err)
	}
	if err := Mount(fsys, dev, mnt); err != nil {
		t.Fatal(err)
	}
	m.mounts = true
	return m, disk
}

// TestPowerCutFlushReachesDisk is the premise of the harness: an
// fdatasync inside the mounted file system reaches the simulated disk as a
// flush (FUSE FSYNC), a write without one does not, and a cut keeps what
// was flushed and loses what was not.
func TestPowerCutFlushReachesDisk(t *testing.T) {
	for _, fsys := range FileSystems {
		t.Run(fsys.Name, func(t *testing.T) {
			needs(t, fsys)
			m, disk := bootForTest(t, fsys)

			synced := bytes.Repeat([]byte("durable!"), 512)
			f, err := os.OpenFile(filepath.Join(m.mnt, "synced"), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := syncFile(f); err != nil {
				t.Fatal(err)
			}
			if err := syncDir(m.mnt); err != nil {
				t.Fatal(err)
			}
			const n = 50
			before := disk.Stats()
			for i := range n {
				if _, err := f.WriteAt(synced, int64(i*len(synced))); err != nil {
					t.Fatal(err)
				}
				if err := syncFile(f); err != nil {
					t.Fatal(err)
				}
			}
			after := disk.Stats()
			syncs := after.Syncs - before.Syncs
			t.Logf("%s: %d write+fdatasync pairs reached the disk as %d writes and %d flushes (FUSE FSYNC)",
				fsys.Name, n, after.Writes-before.Writes, syncs)
			if syncs < n {
				t.Fatalf("%d fdatasyncs made only %d flushes reach the disk", n, syncs)
			}

			// Written, not synced: the page cache holds it; the disk
			// sees neither the data nor a flush.
			g, err := os.OpenFile(filepath.Join(m.mnt, "unsynced"), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			before = disk.Stats()
			for i := range n {
				if _, err := g.WriteAt([]byte("volatile"), int64(i*8)); err != nil {
					t.Fatal(err)
				}
			}
			g.Close()
			after = disk.Stats()
			t.Logf("%s: %d writes without fdatasync: %d flushes reached the disk", fsys.Name, n, after.Syncs-before.Syncs)

			// Overwritten and written back without a flush: the data
			// reaches the disk's cache, and the cut takes it.
			if _, err := f.WriteAt(bytes.Repeat([]byte("VOLATILE"), 512), 0); err != nil {
				t.Fatal(err)
			}
			before = disk.Stats()
			if err := unix.SyncFileRange(int(f.Fd()), 0, 4096, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER); err != nil {
				t.Fatal(err)
			}
			after = disk.Stats()
			dirty := disk.Dirty()
			t.Logf("%s: overwrite + sync_file_range: %d writes, %d flushes reached the disk, %d sectors cached",
				fsys.Name, after.Writes-before.Writes, after.Syncs-before.Syncs, dirty)
			if dirty == 0 || after.Syncs != before.Syncs {
				t.Fatalf("written-back data should wait in the disk's cache: %d sectors cached, %d flushes", dirty, after.Syncs-before.Syncs)
			}

			res, err := m.cut(&Figures{}, func() CutResult { return disk.Cut(rand.New(rand.NewPCG(1, 2)), 0) }, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: cut with %d sectors cached (p=%.2f, %d kept)", fsys.Name, res.Cached, res.KeepP, res.Kept)
			got, err := os.ReadFile(filepath.Join(m.mnt, "synced"))
			if err != nil {
				t.Fatalf("synced file lost: %v", err)
			}
			if want := bytes.Repeat(synced, n); !bytes.Equal(got, want) {
				t.Fatalf("synced file: %d bytes after the cut, want %d", len(got), len(want))
			}
			if res.Dropped < dirty {
				t.Errorf("the cut dropped %d sectors, %d were cached", res.Dropped, dirty)
			}
			if b, err := os.ReadFile(filepath.Join(m.mnt, "unsynced")); err == nil && len(b) > 0 {
				t.Errorf("a file never synced kept %d bytes across a cut that dropped the whole cache", len(b))
			}
		})
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// String lets a failing test print a Figures.
var _ fmt.Stringer = (*Figures)(nil)
