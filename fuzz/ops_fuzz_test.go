package fuzz

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/gojournal/journal/internal/crashtest"
	"github.com/gojournal/journal/vfs/crashfs"
)

// maxOps bounds the calls one input makes, so each run stays quick.
const maxOps = 48

// runOps interprets each byte as one call to the log: the low three bits
// choose it, the rest size or place it.
func runOps(d *crashtest.Driver, ops []byte) {
	for _, b := range ops[:min(len(ops), maxOps)] {
		arg := int(b >> 3)
		l := d.Log()
		first, last := l.FirstIndex(), l.LastIndex()
		// an index in [first-1, last], as truncations and checkpoints take
		at := first - 1 + uint64(arg)%(last-first+2)
		ok := true
		if snap := d.Model().Snapshot; snap != 0 && b&7 == 4 {
			at = min(at, snap) // the log must continue the snapshot
		} else if snap != 0 && b&7 == 5 {
			at = max(at, snap)
		}
		switch b & 7 {
		case 0, 1, 2:
			ok = d.Append(arg * 311 % 20000)
		case 3:
			ok = d.Batch(make([]int, 2+arg%4)...)
		case 4:
			ok = d.TruncateFront(at + 1)
		case 5:
			ok = d.TruncateBack(at)
		case 6:
			ok = d.Sync()
		case 7:
			ok = d.Checkpoint(at)
		}
		if !ok {
			return
		}
	}
}

// FuzzCrashOps runs a sequence of log calls chosen by the input on the
// crash-simulating file system, crashes after the chosen mutating
// operation, builds a crash state from the seed, and checks I1-I4 on what
// recovery makes of it.
func FuzzCrashOps(f *testing.F) {
	f.Add([]byte{0, 8, 16, 3, 11, 6, 0}, uint16(9), uint64(1))
	f.Add([]byte{240, 248, 232, 0, 0, 4, 13, 5, 0, 7, 0}, uint16(40), uint64(2))
	f.Add([]byte{0, 0, 0, 0, 5, 0, 3, 29, 0}, uint16(1000), uint64(3))
	// Recycling (seed bit 4): appends across rotations, a release that
	// recycles a segment, appends into it.
	// (248: an append of 9641 bytes; 84: TruncateFront(11) after 12.)
	f.Add(append(append(bytes.Repeat([]byte{248}, 12), 84), bytes.Repeat([]byte{248}, 8)...), uint16(300), uint64(16))
	f.Fuzz(func(t *testing.T, ops []byte, crashAfter uint16, seed uint64) {
		fsys := crashfs.New()
		fsys.SetCrashAfter(int(crashAfter) + 1)
		opts := small
		opts.RecycleSegments = seed&16 != 0 // bits 0 and 1 choose the crash state
		d, ok := crashtest.NewDriver(fsys, opts)
		if ok {
			runOps(d, ops)
			d.Close()
		}
		rng := rand.New(rand.NewPCG(seed, 0))
		mode := []crashfs.CrashMode{crashfs.SyncedOnly, crashfs.RandomSectors, crashfs.Garbled}[seed%3]
		var fig figures
		if err := checkState(fsys.Crash(mode, rng), d.Model(), opts, rng, &fig, seed%4 == 0); err != nil {
			t.Fatalf("crash after op %d, %v state: %v", crashAfter+1, mode, err)
		}
	})
}
