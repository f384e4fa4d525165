package powercut

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
)

// SectorSize is the disk's atomic unit: a write reaches the durable medium
// sector by sector, never half a sector. The loop device is attached with
// the same logical sector size, so no file system ever writes less than
// one sector.
const SectorSize = 4096

// ErrPowerCut is returned by Sync after the power was cut: the flush never
// completed, so nothing written in the meantime may be acknowledged.
var ErrPowerCut = errors.New("powercut: power is off")

// Disk is a block device with a volatile write cache, the model a real
// disk with its cache enabled follows.
//
//   - Write puts sectors in the cache (volatile); Read returns the cache
//     over the medium (durable).
//   - Sync (a flush: FUSE FSYNC, which the loop driver sends for every
//     REQ_OP_FLUSH and for REQ_FUA) moves every cached sector to the
//     medium. Nothing else makes data durable.
//   - Cut drops the cache: all of it, or a random subset of its sectors
//     (a drive that had written some of its cache, in any order, when the
//     power went). The medium keeps what was flushed, plus the survivors.
//
// Between Cut and PowerOn the disk is dead to the writers of the old boot:
// their writes are discarded (and succeed, so the dying file system can be
// unmounted quickly) and every Sync fails with ErrPowerCut, so no append
// can be acknowledged after the cut. Writers are told apart by boot
// epoch: each open of disk.img belongs to the epoch it was opened in, and
// requests from an earlier epoch never touch the disk again, even if a
// lazily unmounted file system outlives the round.
//
// All methods are safe for concurrent use.
type Disk struct {
	mu       sync.Mutex
	size     int64
	durable  []byte
	volatile map[int64][]byte // sector number -> its cached contents
	epoch    uint64           // boot number; Cut ends an epoch
	powered  bool
	kept     map[int64][]byte // sectors a cut let through, applied at PowerOn
	last     CutResult
	trigger  *trigger
	stats    DiskStats
}

// Trigger arms a cut on an I/O event rather than at a moment: at the
// Write-th write request from now (which is torn: a random prefix of its
// sectors reaches the cache, the rest is lost with the power), or just
// before the Sync-th flush from now (the cache then holds everything
// written since the previous flush). Zero fields are not used; the first
// event to come fires.
type Trigger struct {
	Write int
	Sync  int
}

type trigger struct {
	Trigger
	writes, syncs int
	keep          float64
	rng           *rand.Rand
	fired         chan CutResult
}

// DiskStats counts what reached the disk. The loop driver's flushes show
// up as Syncs: they are the evidence that fdatasync inside the mounted file
// system reaches the disk.
type DiskStats struct {
	Writes        uint64 // write requests while powered
	BytesWritten  uint64
	Reads         uint64
	Syncs         uint64 // flushes that made the cache durable
	SyncedSectors uint64 // sectors moved from cache to medium by Syncs
	Closes        uint64 // FUSE FLUSH (close(2)): not a barrier
	Zeroes        uint64 // fallocate punch-hole / zero-range requests
	Cuts          uint64
	DroppedOnCut  uint64 // cached sectors lost by cuts
	KeptOnCut     uint64 // cached sectors that reached the medium anyway
	DeadWrites    uint64 // writes after a cut (discarded)
	DeadSyncs     uint64 // flushes after a cut (failed)
}

// NewDisk returns a zeroed, powered disk of size bytes (a multiple of
// SectorSize).
func NewDisk(size int64) *Disk {
	if size <= 0 || size%SectorSize != 0 {
		panic(fmt.Sprintf("powercut: disk size %d is not a positive multiple of %d", size, SectorSize))
	}
	return &Disk{size: size, durable: make([]byte, size), volatile: map[int64][]byte{}, epoch: 1, powered: true}
}

// Size is the disk's size in bytes.
func (d *Disk) Size() int64 { return d.size }

// Epoch is the current boot number; an open made now belongs to it.
func (d *Disk) Epoch() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.epoch
}

// Stats returns the counters.
func (d *Disk) Stats() DiskStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Dirty is the number of cached (not yet durable) sectors.
func (d *Disk) Dirty() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.volatile)
}

// live reports whether a request from epoch may touch the disk. Called
// with mu held.
func (d *Disk) live(epoch uint64) bool { return d.powered && epoch == d.epoch }

// ReadAt fills p from off: cached sectors over the medium. Reads are served
// whatever the epoch: a dying file system may read what it likes.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.Reads++
	if off >= d.size {
		return 0, nil
	}
	n := int(min(int64(len(p)), d.size-off))
	for done := 0; done < n; {
		pos := off + int64(done)
		sec, in := pos/SectorSize, pos%SectorSize
		src := d.durable[sec*SectorSize : (sec+1)*SectorSize]
		if c, ok := d.volatile[sec]; ok {
			src = c
		}
		done += copy(p[done:n], src[in:])
	}
	return n, nil
}

// WriteAt caches p at off for a writer of the given epoch. A write from a
// dead epoch is discarded and reported as done.
func (d *Disk) WriteAt(epoch uint64, p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.live(epoch) {
		d.stats.DeadWrites++
		return len(p), nil
	}
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, fmt.Errorf("powercut: write of %d bytes at %d beyond the disk (%d bytes)", len(p), off, d.size)
	}
	d.stats.Writes++
	d.stats.BytesWritten += uint64(len(p))
	if t := d.trigger; t != nil && t.Write > 0 {
		if t.writes++; t.writes == t.Write {
			// The write is torn at a sector boundary: its first k
			// sectors make it to the cache.
			first, end := off/SectorSize, (off+int64(len(p))+SectorSize-1)/SectorSize
			k := t.rng.Int64N(end - first + 1)
			n := min(int64(len(p)), (first+k)*SectorSize-off)
			d.write(p[:max(n, 0)], off)
			d.fire(fmt.Sprintf("write %d (%d bytes at %d) torn after %d of %d sectors", t.writes, len(p), off, k, end-first))
			return len(p), nil
		}
	}
	d.write(p, off)
	return len(p), nil
}

// write caches p at off, sector by sector. Called with mu held.
func (d *Disk) write(p []byte, off int64) {
	for done := 0; done < len(p); {
		pos := off + int64(done)
		sec, in := pos/SectorSize, pos%SectorSize
		c, ok := d.volatile[sec]
		if !ok {
			c = make([]byte, SectorSize)
			if in != 0 || len(p)-done < SectorSize {
				copy(c, d.durable[sec*SectorSize:])
			}
			d.volatile[sec] = c
		}
		done += copy(c[in:], p[done:])
	}
}

// Zero caches zeros over [off, off+n): what fallocate(PUNCH_HOLE) and
// fallocate(ZERO_RANGE) leave, as the loop driver's discard and
// write-zeroes requests use them.
func (d *Disk) Zero(epoch uint64, off, n int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.live(epoch) {
		d.stats.DeadWrites++
		return nil
	}
	if off < 0 || off > d.size {
		return fmt.Errorf("powercut: zero range at %d beyond the disk", off)
	}
	n = min(n, d.size-off)
	d.stats.Zeroes++
	zeros := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(zeros)))
		d.write(zeros[:k], off)
		off += k
		n -= k
	}
	return nil
}

// Sync makes every cached sector durable: the flush barrier. After a cut
// it fails with ErrPowerCut.
func (d *Disk) Sync(epoch uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.trigger; t != nil && t.Sync > 0 && d.live(epoch) {
		if t.syncs++; t.syncs == t.Sync {
			d.fire(fmt.Sprintf("before flush %d", t.syncs))
		}
	}
	if !d.live(epoch) {
		d.stats.DeadSyncs++
		return ErrPowerCut
	}
	d.stats.Syncs++
	d.stats.SyncedSectors += uint64(len(d.volatile))
	d.drain()
	return nil
}

// drain moves the cache to the medium. Called with mu held.
func (d *Disk) drain() {
	for sec, c := range d.volatile {
		copy(d.durable[sec*SectorSize:], c)
	}
	clear(d.volatile)
}

// CountClose counts a FUSE FLUSH, which close(2) sends. It is not a
// barrier: closing a file does not flush a disk's cache.
func (d *Disk) CountClose() {
	d.mu.Lock()
	d.stats.Closes++
	d.mu.Unlock()
}

// CutResult says what a cut did to the cache.
type CutResult struct {
	Cached  int     // sectors in the cache when the power went
	Kept    int     // of those, sectors that reached the medium anyway
	KeepP   float64 // probability each cached sector had to survive
	Dropped int
	// What fired the cut: "" for Cut, else the trigger and, for a torn
	// write, how much of it reached the cache.
	Event string
}

// Arm arms a cut on an I/O event (see Trigger); the channel receives its
// result when it fires. Each cached sector then survives with probability
// keep, drawn from rng, which the disk owns from now on. A Cut before the
// trigger fires disarms it.
func (d *Disk) Arm(t Trigger, keep float64, rng *rand.Rand) <-chan CutResult {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trigger = &trigger{Trigger: t, keep: keep, rng: rng, fired: make(chan CutResult, 1)}
	return d.trigger.fired
}

// fire cuts the power for the armed trigger. Called with mu held.
func (d *Disk) fire(event string) {
	t := d.trigger
	d.trigger = nil
	r := d.cut(t.rng, t.keep)
	r.Event = event
	d.last = r
	t.fired <- r
}

// Cut cuts the power now. Each cached sector survives with probability keep
// (0: the whole cache is lost; 1: it had all been written), drawn from rng;
// the rest are lost. Until PowerOn, writes are discarded and syncs fail.
// If an armed trigger has already cut the power, Cut returns what that cut
// did.
func (d *Disk) Cut(rng *rand.Rand, keep float64) CutResult {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.powered {
		return d.last
	}
	d.trigger = nil
	d.last = d.cut(rng, keep)
	return d.last
}

// cut drops the cache. Called with mu held.
func (d *Disk) cut(rng *rand.Rand, keep float64) CutResult {
	r := CutResult{Cached: len(d.volatile), KeepP: keep}
	d.kept = map[int64][]byte{}
	// Visit sectors in a fixed order so a seed reproduces the same cut.
	secs := make([]int64, 0, len(d.volatile))
	for sec := range d.volatile {
		secs = append(secs, sec)
	}
	slices.Sort(secs)
	for _, sec := range secs {
		if keep >= 1 || (keep > 0 && rng.Float64() < keep) {
			d.kept[sec] = d.volatile[sec]
		}
	}
	r.Kept = len(d.kept)
	r.Dropped = r.Cached - r.Kept
	d.stats.Cuts++
	d.stats.KeptOnCut += uint64(r.Kept)
	d.stats.DroppedOnCut += uint64(r.Dropped)
	d.powered = false
	return r
}

// Powered reports whether the power is on.
func (d *Disk) Powered() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.powered
}

// PowerOn starts the next boot: the medium gets the sectors the cut let
// through, the cache is empty, and a new epoch begins (opens from earlier
// epochs stay dead).
func (d *Disk) PowerOn() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.powered {
		panic("powercut: PowerOn while powered")
	}
	clear(d.volatile)
	for sec, c := range d.kept {
		copy(d.durable[sec*SectorSize:], c)
	}
	d.kept = nil
	d.epoch++
	d.powered = true
}

// Durable returns a copy of the medium's bytes in [off, off+n), ignoring
// the cache (for tests).
func (d *Disk) Durable(off, n int64) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.durable[off : off+n])
}
