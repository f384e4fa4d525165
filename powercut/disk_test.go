package powercut

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func sectors(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n*SectorSize) }

func read(t *testing.T, d *Disk, off, n int64) []byte {
	t.Helper()
	b := make([]byte, n)
	if k, err := d.ReadAt(b, off); err != nil || int64(k) != n {
		t.Fatalf("ReadAt(%d, %d) = %d, %v", off, n, k, err)
	}
	return b
}

func write(t *testing.T, d *Disk, epoch uint64, p []byte, off int64) {
	t.Helper()
	if k, err := d.WriteAt(epoch, p, off); err != nil || k != len(p) {
		t.Fatalf("WriteAt(%d bytes at %d) = %d, %v", len(p), off, k, err)
	}
}

func TestPowerCutDiskCacheAndFlush(t *testing.T) {
	d := NewDisk(16 * SectorSize)
	e := d.Epoch()
	write(t, d, e, sectors(2, 'a'), 0)
	if got := read(t, d, 0, 2*SectorSize); !bytes.Equal(got, sectors(2, 'a')) {
		t.Fatal("a cached write does not read back")
	}
	if got := d.Durable(0, 2*SectorSize); !bytes.Equal(got, sectors(2, 0)) {
		t.Fatal("a write reached the medium without a flush")
	}
	if err := d.Sync(e); err != nil {
		t.Fatal(err)
	}
	if got := d.Durable(0, 2*SectorSize); !bytes.Equal(got, sectors(2, 'a')) {
		t.Fatal("a flush did not make the cache durable")
	}
	// A write of part of a sector keeps the rest of it.
	write(t, d, e, []byte("xy"), 10)
	want := sectors(1, 'a')
	copy(want[10:], "xy")
	if got := read(t, d, 0, SectorSize); !bytes.Equal(got, want) {
		t.Fatal("a partial-sector write lost the rest of the sector")
	}
	if d.Dirty() != 1 {
		t.Fatalf("%d sectors cached, want 1", d.Dirty())
	}
	// Zeroing (discard, write-zeroes) is a write like any other.
	if err := d.Zero(e, SectorSize, SectorSize); err != nil {
		t.Fatal(err)
	}
	if got := read(t, d, SectorSize, SectorSize); !bytes.Equal(got, sectors(1, 0)) {
		t.Fatal("Zero did not zero")
	}
}

func TestPowerCutDiskCutDropsTheCache(t *testing.T) {
	for _, tc := range []struct {
		keep float64
		want byte
	}{{0, 'a'}, {1, 'b'}} {
		d := NewDisk(16 * SectorSize)
		e := d.Epoch()
		write(t, d, e, sectors(4, 'a'), 0)
		d.Sync(e)
		write(t, d, e, sectors(4, 'b'), 0)
		res := d.Cut(rand.New(rand.NewPCG(1, 1)), tc.keep)
		if res.Cached != 4 || res.Kept+res.Dropped != 4 {
			t.Fatalf("keep %v: cut %+v", tc.keep, res)
		}
		// The dying file system's writes and flushes go nowhere.
		write(t, d, e, sectors(4, 'c'), 0)
		if err := d.Sync(e); !errors.Is(err, ErrPowerCut) {
			t.Fatalf("Sync after the cut = %v, want ErrPowerCut", err)
		}
		d.PowerOn()
		if got := read(t, d, 0, 4*SectorSize); !bytes.Equal(got, sectors(4, tc.want)) {
			t.Fatalf("keep %v: after the cut the disk holds %q..., want %q", tc.keep, got[:1], tc.want)
		}
		// An open from before the cut stays dead.
		write(t, d, e, sectors(1, 'd'), 0)
		if err := d.Sync(e); !errors.Is(err, ErrPowerCut) {
			t.Fatalf("Sync from the old boot = %v, want ErrPowerCut", err)
		}
		if got := read(t, d, 0, 1); got[0] != tc.want {
			t.Fatal("a write from the old boot reached the disk")
		}
		if e2 := d.Epoch(); e2 == e || d.Sync(e2) != nil {
			t.Fatal("the new boot cannot flush")
		}
	}
}

func TestPowerCutDiskCutKeepsASubset(t *testing.T) {
	d := NewDisk(256 * SectorSize)
	write(t, d, d.Epoch(), sectors(256, 'z'), 0)
	res := d.Cut(rand.New(rand.NewPCG(2, 2)), 0.5)
	d.PowerOn()
	kept := 0
	for i := range int64(256) {
		if read(t, d, i*SectorSize, 1)[0] == 'z' {
			kept++
		}
	}
	if kept != res.Kept || kept == 0 || kept == 256 {
		t.Fatalf("%d sectors survived a cut with p=0.5, the cut says %d", kept, res.Kept)
	}
}

func TestPowerCutDiskTriggers(t *testing.T) {
	t.Run("TornWrite", func(t *testing.T) {
		d := NewDisk(64 * SectorSize)
		e := d.Epoch()
		fired := d.Arm(Trigger{Write: 3}, 1, rand.New(rand.NewPCG(3, 3)))
		write(t, d, e, sectors(1, 'a'), 0)
		write(t, d, e, sectors(1, 'b'), SectorSize)
		if !d.Powered() {
			t.Fatal("fired early")
		}
		write(t, d, e, sectors(32, 'c'), 2*SectorSize)
		res := <-fired
		if d.Powered() || res.Event == "" {
			t.Fatalf("did not fire on the third write: %+v", res)
		}
		d.PowerOn()
		// Everything before survives (keep 1); the torn write survives
		// as a prefix of whole sectors.
		torn := 0
		for i := int64(2); i < 34; i++ {
			if read(t, d, i*SectorSize, 1)[0] == 'c' {
				if int64(torn) != i-2 {
					t.Fatalf("the torn write kept sector %d but not %d", i, torn+2)
				}
				torn++
			}
		}
		if got := read(t, d, 0, 2*SectorSize); !bytes.Equal(got, append(sectors(1, 'a'), sectors(1, 'b')...)) {
			t.Fatal("writes before the torn one were lost with keep 1")
		}
		t.Logf("%s: %d of 32 sectors", res.Event, torn)
	})
	t.Run("BeforeFlush", func(t *testing.T) {
		d := NewDisk(64 * SectorSize)
		e := d.Epoch()
		fired := d.Arm(Trigger{Sync: 2}, 0, rand.New(rand.NewPCG(4, 4)))
		write(t, d, e, sectors(1, 'a'), 0)
		if err := d.Sync(e); err != nil {
			t.Fatal(err)
		}
		write(t, d, e, sectors(1, 'b'), SectorSize)
		if err := d.Sync(e); !errors.Is(err, ErrPowerCut) {
			t.Fatalf("the flush the cut came before returned %v", err)
		}
		res := <-fired
		if res.Cached != 1 || res.Dropped != 1 {
			t.Fatalf("cut %+v, want one cached sector dropped", res)
		}
		d.PowerOn()
		if got := read(t, d, 0, 2*SectorSize); !bytes.Equal(got, append(sectors(1, 'a'), sectors(1, 0)...)) {
			t.Fatal("want the first flush's sector, not the second's")
		}
	})
}
