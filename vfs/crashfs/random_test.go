package crashfs

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
)

// randomProgram is a random workload over a few files in three directories
// with a model of what it did: every byte it ever wrote to each inode, and
// which inodes and directories have changed since their last Sync or
// SyncDir.
type randomProgram struct {
	t      *testing.T
	rng    *rand.Rand
	fsys   *FS
	names  map[string]int            // current path -> inode id (1..15)
	wrote  []map[int64]map[byte]bool // by inode id: offset -> bytes written there
	dirty  []bool                    // by inode id: changed since its last Sync
	dirDir map[string]bool           // directory changed since its last SyncDir
	writes int
}

var randomDirs = []string{"", "a", "b"}

func newRandomProgram(t *testing.T, rng *rand.Rand) *randomProgram {
	p := &randomProgram{t: t, rng: rng, fsys: New(), names: map[string]int{},
		wrote: []map[int64]map[byte]bool{nil}, dirty: []bool{false}, dirDir: map[string]bool{}}
	mkdir(t, p.fsys, "a")
	mkdir(t, p.fsys, "b")
	syncDir(t, p.fsys, "")
	return p
}

func (p *randomProgram) randomName() string {
	return filepath.Join(randomDirs[p.rng.IntN(3)], fmt.Sprint(p.rng.IntN(3)))
}

// existing returns a random current path, or "" if there is none.
func (p *randomProgram) existing() string {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range p.names {
			if !yield(n) {
				return
			}
		}
	})
	if len(names) == 0 {
		return ""
	}
	return names[p.rng.IntN(len(names))]
}

// step makes one random change.
func (p *randomProgram) step() {
	t, fsys := p.t, p.fsys
	name := p.existing()
	switch op := p.rng.IntN(9); {
	case op == 0 || name == "":
		name = p.randomName()
		if _, ok := p.names[name]; ok || len(p.wrote) == 16 {
			return
		}
		create(t, fsys, name, "")
		p.names[name] = len(p.wrote)
		p.wrote = append(p.wrote, map[int64]map[byte]bool{})
		p.dirty = append(p.dirty, false) // empty, as durable as it is
		p.dirDir[filepath.Dir(name)] = true
	case op == 1:
		id := p.names[name]
		p.writes++
		b := byte(id<<4 | (p.writes%15 + 1)) // names its inode and the write
		off, n := p.rng.Int64N(3*SectorSize), 1+p.rng.IntN(700)
		for i := off; i < off+int64(n); i++ {
			if p.wrote[id][i] == nil {
				p.wrote[id][i] = map[byte]bool{}
			}
			p.wrote[id][i][b] = true
		}
		writeAt(t, fsys, name, string(slices.Repeat([]byte{b}, n)), off)
		p.dirty[id] = true
	case op == 2 || op == 3:
		syncFile(t, fsys, name)
		p.dirty[p.names[name]] = false
	case op == 4:
		d := randomDirs[p.rng.IntN(3)]
		syncDir(t, fsys, d)
		p.dirDir[filepath.Clean(d)] = false
	case op == 5:
		to := p.randomName()
		rename(t, fsys, name, to)
		if p.names[to] != p.names[name] {
			p.names[to] = p.names[name]
			delete(p.names, name)
		}
		p.dirDir[filepath.Dir(name)], p.dirDir[filepath.Dir(to)] = true, true
	case op == 6:
		remove(t, fsys, name)
		delete(p.names, name)
		p.dirDir[filepath.Dir(name)] = true
	case op == 7:
		truncate(t, fsys, name, p.rng.Int64N(4*SectorSize))
		p.dirty[p.names[name]] = true
	case op == 8:
		preallocate(t, fsys, name, p.rng.Int64N(4*SectorSize))
		p.dirty[p.names[name]] = true
	}
}

// check crashes the program's FS in mode and checks what a real file
// system promises: a synced file under a synced name keeps exactly its
// contents; no byte appears that was never written to that file (but in
// Garbled mode); File.Data never calls data a hole.
func (p *randomProgram) check(mode CrashMode) {
	t := p.t
	c := p.fsys.Crash(mode, p.rng)
	for name, id := range p.names {
		if p.dirty[id] || p.dirDir[filepath.Dir(name)] {
			continue
		}
		want, _ := readFile(p.fsys, name)
		got, err := readFile(c, name)
		if err != nil || string(got) != string(want) {
			t.Fatalf("%v crash: %s, synced under a synced name, reads %q (%v), want %q", mode, name, got, err, want)
		}
	}
	for name, data := range tree(t, c) {
		if data == "/" {
			continue
		}
		dataCovers(t, c, name)
		if mode == Garbled {
			continue
		}
		id := -1
		for off, b := range []byte(data) {
			if b == 0 {
				continue
			}
			if id == -1 {
				id = int(b >> 4)
			}
			if int(b>>4) != id || !p.wrote[id][int64(off)][b] {
				t.Fatalf("%v crash: %s holds %#x at %d, which was never written there", mode, name, b, off)
			}
		}
	}
}

// TestRandomProgramPromises runs random programs and crashes them often,
// in every mode, checking what a power loss on a POSIX file system may
// and may not leave (see randomProgram.check).
func TestRandomProgramPromises(t *testing.T) {
	rng := seedtest.Rand(t)
	for range 20 {
		p := newRandomProgram(t, rng)
		for i := range 100 {
			p.step()
			if i%5 == 4 {
				for _, mode := range []CrashMode{SyncedOnly, RandomSectors, Garbled} {
					p.check(mode)
				}
				for name := range p.names {
					dataCovers(t, p.fsys, name)
				}
			}
		}
	}
}
