package raftstore

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/testproc"
	"github.com/gojournal/journal/segment"
	"github.com/hashicorp/raft"
)

// TestSharedKilledProcessKeepsAcknowledged SIGKILLs, round after round, a
// child process (this test binary run again, selected by
// envSharedKillChild) that drives several groups of one Shared store on
// real files at once, as raft would: batches of entries, compaction of
// heads (which releases the shared log's front, and with small segments
// removes segment files), a conflicting tail deleted and stored again in
// a new term, snapshot installs (everything deleted, the log continuing
// higher up), and stable keys set. The child prints each call before it
// makes it and, once it returned nil, what it acknowledged. The parent
// kills it at a random moment, reopens the directory with OpenShared and
// checks every group: it holds exactly what its acknowledged calls left,
// entry by entry and byte for byte, and its stable keys as last set,
// except that the call in flight at the kill (at most one a group) may
// have happened whole or not at all. Most rounds leave the directory to
// the next child, which goes on from what it finds, as a restarted node.
//
// JOURNAL_SEED replays the parent's choices (groups, child seeds, kill
// points); the child's interleaving of groups, and so where exactly the
// kill lands, differ from run to run. JOURNAL_SHARED_KILL_ROUNDS sets the
// number of rounds and lifts the time budget.
func TestSharedKilledProcessKeepsAcknowledged(t *testing.T) {
	rng := newRand(t)
	rounds, budget := 20, 15*time.Second
	if s := os.Getenv(envSharedKillRounds); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive number", envSharedKillRounds, s)
		}
		rounds, budget = n, 0
	}
	var k sharedKill
	start := time.Now()
	for r := 0; r < rounds; r++ {
		if budget != 0 && r >= 5 && time.Since(start) > budget {
			t.Logf("stopping after %d rounds: the %v budget is spent (set %s to run a fixed number)", r, budget, envSharedKillRounds)
			break
		}
		if k.dir == "" || rng.IntN(5) == 0 {
			k.fresh(t, rng)
		}
		k.round(t, r, rng)
	}
	t.Logf("rounds %d in %v, fresh directories %d, groups %d; acknowledged: %d StoreLogs of %d entries, %d DeleteRange (%d of a head, after which the shared log's front had moved %d times), %d stable sets; "+
		"in flight at the kill: %d (%d found done); directories found with their first segment files released: %d (%d segment files at the last); lost: 0",
		k.rounds, time.Since(start).Round(time.Millisecond), k.dirs, k.groupsSeen, k.stores, k.entries, k.deletes, k.heads, k.releases, k.sets,
		k.inFlight, k.inFlightDone, k.filesGone, k.files)
	if k.releases == 0 {
		t.Fatal("no kill came after a release of the shared log's front: the test did not cover releases")
	}
	if k.filesGone == 0 {
		t.Fatal("no directory left by a kill had lost segment files to releases: the test did not cover their removal")
	}
}

const (
	envSharedKillChild  = "JOURNAL_SHARED_KILL_CHILD"  // the store's directory
	envSharedKillGroups = "JOURNAL_SHARED_KILL_GROUPS" // the group ids, comma-separated
	envSharedKillSeed   = "JOURNAL_SHARED_KILL_SEED"   // the child's seed
	envSharedKillRounds = "JOURNAL_SHARED_KILL_ROUNDS"
)

// sharedKillOptions are the child's and the parent's options: segments of
// the smallest size, so that releases remove files, and a stable log
// compacted often.
func sharedKillOptions() *Options {
	o := testOptions()
	o.CompactAfter = 50
	return o
}

// sharedKill is the parent's state across rounds: the directory, what each
// of its groups holds, and the figures.
type sharedKill struct {
	dir    string
	groups map[uint64]*killModel

	rounds, dirs, groupsSeen              int
	stores, entries, deletes, heads, sets int
	releases, inFlight, inFlightDone      int
	filesGone, files                      int    // rounds whose oldest segment file had gone; files at the last check
	sharedFirst                           uint64 // the highest first index of the shared log a child reported
}

// fresh starts a new directory with 2 to 8 groups, ids small and large.
// Few groups make it likely that every group but one is empty, so that a
// release may cut the shared log up to its end while that one appends.
func (k *sharedKill) fresh(t *testing.T, rng *rand.Rand) {
	k.dir, k.sharedFirst, k.groups = t.TempDir(), 0, map[uint64]*killModel{}
	for len(k.groups) < 2+rng.IntN(7) {
		id := 1 + rng.Uint64N(20)
		if rng.IntN(2) == 0 {
			id = rng.Uint64()
		}
		k.groups[id] = newKillModel()
	}
	k.dirs++
	k.groupsSeen += len(k.groups)
}

// round runs one child until the kill and checks what it left.
func (k *sharedKill) round(t *testing.T, r int, rng *rand.Rand) {
	t.Helper()
	seed := rng.Uint64()
	killAfter := 20 + rng.IntN(400)                               // calls acknowledged, of all groups
	killDelay := time.Duration(rng.IntN(2000)) * time.Microsecond // after that
	where := fmt.Sprintf("round %d (child seed %d, killed %v after %d acknowledged calls)", r, seed, killDelay, killAfter)
	ids := slices.Sorted(maps.Keys(k.groups))
	var idList []string
	for _, id := range ids {
		idList = append(idList, strconv.FormatUint(id, 10))
	}
	child := testproc.Start(t, "TestSharedKillChild", []string{
		envSharedKillChild + "=" + k.dir,
		envSharedKillGroups + "=" + strings.Join(idList, ","),
		envSharedKillSeed + "=" + strconv.FormatUint(seed, 10),
	})
	reached := make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		var err error
		acked := 0
		for line := range child.Lines {
			if err != nil {
				continue
			}
			var ack bool
			ack, err = k.read(line)
			if ack {
				if acked++; acked == killAfter {
					close(reached)
				}
			}
		}
		readDone <- err
	}()
	select {
	case <-reached:
		time.Sleep(killDelay)
	case err := <-readDone: // the child ended on its own: it failed
		child.Wait()
		t.Fatalf("%s: the child stopped before the kill (%v)", where, err)
	case <-time.After(time.Minute):
		t.Fatalf("%s: the child did not acknowledge %d calls in a minute", where, killAfter)
	}
	child.Kill()
	if err := <-readDone; err != nil {
		t.Fatalf("%s: reading the child's lines: %v", where, err)
	}
	child.Wait()
	k.check(t, where)
	k.rounds++
}

// read takes one line of the child's and reports whether it acknowledged
// a call.
func (k *sharedKill) read(line string) (ack bool, err error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return false, nil
	}
	if f[0] == "error" {
		return false, fmt.Errorf("child: %s", line)
	}
	if len(f) < 2 {
		return false, fmt.Errorf("child line %q", line)
	}
	id, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return false, fmt.Errorf("child line %q: %v", line, err)
	}
	m := k.groups[id]
	if m == nil {
		return false, fmt.Errorf("child line %q: no group %d", line, id)
	}
	c, err := parseKillCall(f[0], f[2:])
	if err != nil {
		return false, fmt.Errorf("child line %q: %v", line, err)
	}
	if !c.done {
		m.pending = &c
		return false, nil
	}
	if m.pending == nil || !c.same(*m.pending) {
		return false, fmt.Errorf("child line %q acknowledges a call it did not announce (%v)", line, m.pending)
	}
	m.pending = nil
	m.apply(c)
	k.count(c)
	return true, nil
}

func (k *sharedKill) count(c killCall) {
	switch c.kind {
	case "store":
		k.stores++
		k.entries += int(c.b - c.a + 1)
	case "delete":
		k.deletes++
		if c.head {
			k.heads++
			if c.sharedFirst > max(k.sharedFirst, 1) {
				k.sharedFirst = c.sharedFirst
				k.releases++
			}
		}
	default:
		k.sets++
	}
}

// countFiles notes whether releases have removed the shared log's first
// segment files: the oldest one left starts after journal index 1.
func (k *sharedKill) countFiles(t *testing.T) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(k.dir, sharedLog, "*"+segment.Ext))
	if err != nil || len(names) == 0 {
		t.Fatalf("the shared log's segments: %v (%d)", err, len(names))
	}
	slices.Sort(names)
	if first, ok := segment.ParseName(filepath.Base(names[0])); ok && first > 1 {
		k.filesGone++
	}
	k.files = len(names)
}

// check reopens the directory the killed child left and compares every
// group with its model: exactly what was acknowledged, or that and the
// call in flight. The state found becomes the model for the next child.
func (k *sharedKill) check(t *testing.T, where string) {
	t.Helper()
	sh, err := OpenShared(k.dir, sharedKillOptions())
	if err != nil {
		t.Fatalf("%s: OpenShared after SIGKILL: %v", where, err)
	}
	defer sh.Close()
	for id := range sh.groups {
		if k.groups[id] == nil {
			t.Fatalf("%s: the reopened store has a group %d, which never stored anything", where, id)
		}
	}
	if f := sh.log.FirstIndex(); f < k.sharedFirst {
		t.Fatalf("%s: the shared log starts at %d after the kill; a child saw it released up to %d", where, f, k.sharedFirst)
	}
	k.countFiles(t)
	for _, id := range slices.Sorted(maps.Keys(k.groups)) {
		m := k.groups[id]
		g, err := sh.Group(id)
		if err != nil {
			t.Fatal(err)
		}
		err = m.matches(g)
		if err == nil {
			if m.pending != nil {
				k.inFlight++
			}
			m.pending = nil
			continue
		}
		if m.pending == nil {
			t.Fatalf("%s: group %d after SIGKILL: %v", where, id, err)
		}
		done := m.clone()
		done.apply(*m.pending)
		if err2 := done.matches(g); err2 != nil {
			t.Fatalf("%s: group %d after SIGKILL, with %v in flight: neither before it (%v) nor after it (%v)", where, id, *m.pending, err, err2)
		}
		k.inFlight++
		k.inFlightDone++
		done.pending = nil
		k.groups[id] = done
	}
}

// killCall is a call of the child's on one group, as its line tells it:
//
//	storing ID FROM TO TERM SALT    stored ID FROM TO TERM SALT
//	deleting ID MIN MAX             deleted ID MIN MAX HEAD SHAREDFIRST
//	setting ID KEY VALUE            set ID KEY VALUE
//
// A store's entries are killEntry(ID, i, TERM, SALT) for i in [FROM, TO].
// HEAD is 1 if the delete took the head of the group's log, SHAREDFIRST
// the shared log's first index after the call.
type killCall struct {
	kind        string // store, delete, set
	done        bool   // acknowledged, not announced
	a, b, term  uint64 // FROM TO TERM, MIN MAX
	salt        uint64
	key, value  string
	head        bool
	sharedFirst uint64
}

func (c killCall) same(o killCall) bool {
	return c.kind == o.kind && c.a == o.a && c.b == o.b && c.term == o.term && c.salt == o.salt && c.key == o.key && c.value == o.value
}

func (c killCall) String() string {
	switch c.kind {
	case "store":
		return fmt.Sprintf("StoreLogs(%d..%d, term %d)", c.a, c.b, c.term)
	case "delete":
		return fmt.Sprintf("DeleteRange(%d, %d)", c.a, c.b)
	}
	return fmt.Sprintf("Set(%s, %s)", c.key, c.value)
}

func parseKillCall(verb string, f []string) (killCall, error) {
	c := killCall{done: verb == "stored" || verb == "deleted" || verb == "set"}
	nums := func(n int) ([]uint64, error) {
		if len(f) != n {
			return nil, fmt.Errorf("%d fields after the group, want %d", len(f), n)
		}
		v := make([]uint64, n)
		for i := range v {
			var err error
			if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				return nil, err
			}
		}
		return v, nil
	}
	var v []uint64
	var err error
	switch verb {
	case "storing", "stored":
		c.kind = "store"
		if v, err = nums(4); err == nil {
			c.a, c.b, c.term, c.salt = v[0], v[1], v[2], v[3]
		}
	case "deleting":
		c.kind = "delete"
		if v, err = nums(2); err == nil {
			c.a, c.b = v[0], v[1]
		}
	case "deleted":
		c.kind = "delete"
		if v, err = nums(4); err == nil {
			c.a, c.b, c.head, c.sharedFirst = v[0], v[1], v[2] == 1, v[3]
		}
	case "setting", "set":
		c.kind = "set"
		if len(f) != 2 {
			return c, fmt.Errorf("%d fields after the group, want 2", len(f))
		}
		c.key, c.value = f[0], f[1]
	default:
		return c, fmt.Errorf("unknown verb %q", verb)
	}
	return c, err
}

// The stable keys the child sets: CurrentTerm with SetUint64 (its value
// printed in decimal), LastVoteCand with Set.
const (
	keyTerm = "CurrentTerm"
	keyVote = "LastVoteCand"
)

// killModel is what one group holds: entries [first, last] (none when
// last < first), as killEntry made them, and its stable keys.
type killModel struct {
	first, last uint64
	entries     map[uint64]killSpec
	stable      map[string]string
	pending     *killCall // the call announced and not acknowledged
}

// killSpec is what killEntry needs besides the group and the index.
type killSpec struct{ term, salt uint64 }

func newKillModel() *killModel {
	return &killModel{first: 1, entries: map[uint64]killSpec{}, stable: map[string]string{keyTerm: "0", keyVote: ""}}
}

func (m *killModel) clone() *killModel {
	c := *m
	c.entries, c.stable = maps.Clone(m.entries), maps.Clone(m.stable)
	return &c
}

func (m *killModel) empty() bool { return m.last < m.first }

// apply does c to the model as the store does it.
func (m *killModel) apply(c killCall) {
	switch c.kind {
	case "store":
		if m.empty() {
			m.first = c.a
		}
		for i := c.a; i <= c.b; i++ {
			m.entries[i] = killSpec{c.term, c.salt}
		}
		m.last = c.b
	case "delete":
		if m.empty() || c.b < m.first || c.a > m.last {
			return
		}
		lo, hi := max(c.a, m.first), min(c.b, m.last)
		for i := lo; i <= hi; i++ {
			delete(m.entries, i)
		}
		if lo == m.first {
			m.first = hi + 1
		} else {
			m.last = lo - 1
		}
	case "set":
		m.stable[c.key] = c.value
	}
}

// matches reports how g differs from the model, if it does.
func (m *killModel) matches(g *GroupStore) error {
	first, err1 := g.FirstIndex()
	last, err2 := g.LastIndex()
	if err1 != nil || err2 != nil {
		return fmt.Errorf("FirstIndex, LastIndex: %v, %v", err1, err2)
	}
	wantFirst, wantLast := m.first, m.last
	if m.empty() {
		wantFirst, wantLast = 0, 0
	}
	if first != wantFirst || last != wantLast {
		return fmt.Errorf("holds [%d, %d], want [%d, %d]", first, last, wantFirst, wantLast)
	}
	for i := first; i <= last && last != 0; i++ {
		var got raft.Log
		if err := g.GetLog(i, &got); err != nil {
			return fmt.Errorf("GetLog(%d): %v", i, err)
		}
		s := m.entries[i]
		if want := killEntry(g.id, i, s.term, s.salt); !sameEntry(&got, want) {
			return fmt.Errorf("entry %d is (term %d, type %d, %d data bytes, %d extension bytes, appended %v), want (term %d, type %d, %d, %d, %v) or the bytes differ",
				i, got.Term, got.Type, len(got.Data), len(got.Extensions), got.AppendedAt, want.Term, want.Type, len(want.Data), len(want.Extensions), want.AppendedAt)
		}
	}
	for _, i := range []uint64{first - 1, last + 1} {
		var got raft.Log
		if err := g.GetLog(i, &got); i != 0 && err != raft.ErrLogNotFound {
			return fmt.Errorf("GetLog(%d) outside [%d, %d]: %v, want raft.ErrLogNotFound", i, first, last, err)
		}
	}
	term, err1 := g.GetUint64([]byte(keyTerm))
	vote, err2 := g.Get([]byte(keyVote))
	if err1 != nil || err2 != nil {
		return fmt.Errorf("stable keys: %v, %v", err1, err2)
	}
	if got := strconv.FormatUint(term, 10); got != m.stable[keyTerm] {
		return fmt.Errorf("%s is %s, want %s", keyTerm, got, m.stable[keyTerm])
	}
	if string(vote) != m.stable[keyVote] {
		return fmt.Errorf("%s is %q, want %q", keyVote, vote, m.stable[keyVote])
	}
	return nil
}

// killEntry is the entry the child stores at index of group id in a batch
// of term with salt: every field set from them, the group and the index
// written into its data (so that no group's entry equals another's), its
// size mostly small, sometimes several kilobytes.
func killEntry(id, index, term, salt uint64) *raft.Log {
	rng := rand.New(rand.NewPCG(salt, index))
	size := rng.IntN(200)
	if rng.IntN(10) == 0 {
		size = rng.IntN(12 << 10)
	}
	data := fmt.Appendf(nil, "group %d index %d term %d|", id, index, term)
	for range size {
		data = append(data, byte(rng.Uint32()))
	}
	e := &raft.Log{Index: index, Term: term, Type: raft.LogType(rng.IntN(6)), Data: data}
	if rng.IntN(3) == 0 {
		e.Extensions = fmt.Appendf(nil, "ext %x", rng.Uint64())
	}
	if rng.IntN(8) != 0 {
		e.AppendedAt = time.Unix(1700000000+int64(index), rng.Int64N(1e9)).UTC()
	}
	return e
}

// TestSharedKillChild is the child of TestSharedKilledProcessKeepsAcknowledged;
// it does nothing unless run by it. It opens the store and drives every
// group from its own goroutine until it is killed.
func TestSharedKillChild(t *testing.T) {
	dir := os.Getenv(envSharedKillChild)
	if dir == "" {
		return
	}
	out := &killOut{}
	fail := func(format string, args ...any) {
		out.line("error " + fmt.Sprintf(format, args...))
		os.Exit(1)
	}
	seed, err := strconv.ParseUint(os.Getenv(envSharedKillSeed), 10, 64)
	if err != nil {
		fail("%s: %v", envSharedKillSeed, err)
	}
	sh, err := OpenShared(dir, sharedKillOptions())
	if err != nil {
		fail("OpenShared: %v", err)
	}
	go func() {
		// The parent's end of stdin closes when it exits: never outlive
		// it, whatever happened to it.
		os.Stdin.Read(make([]byte, 1))
		os.Exit(1)
	}()
	for k, s := range strings.Split(os.Getenv(envSharedKillGroups), ",") {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fail("%s: %v", envSharedKillGroups, err)
		}
		g, err := sh.Group(id)
		if err != nil {
			fail("Group(%d): %v", id, err)
		}
		d := &killDriver{sh: sh, g: g, out: out, rng: rand.New(rand.NewPCG(seed, uint64(k)))}
		go func() {
			if err := d.run(); err != nil {
				fail("group %d: %v", id, err)
			}
		}()
	}
	select {}
}

// killOut writes the child's lines, each in one write.
type killOut struct{ mu sync.Mutex }

func (o *killOut) line(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	os.Stdout.WriteString(s + "\n")
}

// killDriver drives one group as raft would.
type killDriver struct {
	sh   *Shared
	g    *GroupStore
	out  *killOut
	rng  *rand.Rand
	term uint64
	next uint64 // where an empty log continues
}

// run goes on from what the group holds, in a new term, as a restarted
// node would, until the process is killed.
func (d *killDriver) run() error {
	cur, err := d.g.GetUint64([]byte(keyTerm))
	if err != nil {
		return err
	}
	d.term = cur
	if last, _ := d.g.LastIndex(); last != 0 {
		var e raft.Log
		if err := d.g.GetLog(last, &e); err != nil {
			return err
		}
		d.term = max(d.term, e.Term)
	}
	d.next = 1 + d.rng.Uint64N(1000)
	if err := d.newTerm(); err != nil {
		return err
	}
	for {
		if err := d.step(); err != nil {
			return err
		}
	}
}

// step makes one call, or a few that belong together.
func (d *killDriver) step() error {
	first, _ := d.g.FirstIndex()
	last, _ := d.g.LastIndex()
	n := uint64(0)
	if last != 0 {
		n = last - first + 1
	}
	switch r := d.rng.IntN(100); {
	case r < 55 || n == 0:
		from := last + 1
		if n == 0 {
			from = d.next
		}
		return d.store(from, from+d.rng.Uint64N(40))
	case r < 70 || n > 600:
		// Compaction after a snapshot: keep the last few entries, or
		// (half the time) none; now and then a range starting below the
		// head.
		keep := d.rng.Uint64N(min(n, 50))
		if d.rng.IntN(2) == 0 {
			keep = 0
		}
		return d.delete(first-d.rng.Uint64N(min(first, 2)), last-keep)
	case r < 78 && n >= 2:
		// A new leader's log differs from some index on: the tail goes
		// and the leader's entries replace it.
		from := first + 1 + d.rng.Uint64N(n-1)
		if err := d.delete(from, last+d.rng.Uint64N(3)); err != nil {
			return err
		}
		if err := d.newTerm(); err != nil {
			return err
		}
		return d.store(from, from+d.rng.Uint64N(20))
	case r < 82:
		// A snapshot installed: everything goes, the log continues after
		// the snapshot's index, past its end or below it.
		d.next = last + 1 + d.rng.Uint64N(200)
		if d.rng.IntN(3) == 0 {
			d.next = first + d.rng.Uint64N(n)
		}
		if err := d.delete(first, last); err != nil {
			return err
		}
		return d.newTerm()
	case r < 90:
		return d.set(keyVote, fmt.Sprintf("node-%d-%d", d.term, d.rng.IntN(5)))
	default:
		return d.newTerm()
	}
}

func (d *killDriver) newTerm() error {
	d.term++
	return d.set(keyTerm, strconv.FormatUint(d.term, 10))
}

func (d *killDriver) store(from, to uint64) error {
	salt := d.rng.Uint64()
	args := fmt.Sprintf("%d %d %d %d %d", d.g.id, from, to, d.term, salt)
	logs := make([]*raft.Log, 0, to-from+1)
	for i := from; i <= to; i++ {
		logs = append(logs, killEntry(d.g.id, i, d.term, salt))
	}
	d.out.line("storing " + args)
	if err := d.g.StoreLogs(logs); err != nil {
		return err
	}
	d.out.line("stored " + args)
	return nil
}

func (d *killDriver) delete(min, max uint64) error {
	first, _ := d.g.FirstIndex()
	args := fmt.Sprintf("%d %d %d", d.g.id, min, max)
	d.out.line("deleting " + args)
	if err := d.g.DeleteRange(min, max); err != nil {
		return err
	}
	head := 0
	if min <= first && first != 0 {
		head = 1
	}
	d.out.line(fmt.Sprintf("deleted %s %d %d", args, head, d.sh.log.FirstIndex()))
	return nil
}

func (d *killDriver) set(key, value string) error {
	args := fmt.Sprintf("%d %s %s", d.g.id, key, value)
	d.out.line("setting " + args)
	var err error
	if key == keyTerm {
		v, _ := strconv.ParseUint(value, 10, 64)
		err = d.g.SetUint64([]byte(key), v)
	} else {
		err = d.g.Set([]byte(key), []byte(value))
	}
	if err != nil {
		return err
	}
	d.out.line("set " + args)
	return nil
}
