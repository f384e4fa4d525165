package etcd

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// The cluster tests run three raft.RawNodes in one goroutine, each on its own
// Storage, joined by an in-memory message bus that can cut nodes off. Each
// node's state machine is the list of the proposals it applied; every apply
// is checked against the first one any node made at that index (state
// machine safety), and at the end every live node holds the same list.

var raftQuiet = &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)}

type node struct {
	id      uint64
	dir     string
	fsys    vfs.FS // nil: the OS
	st      *Storage
	rn      *raft.RawNode
	applied []string // the state machine: the data of each applied entry
	index   uint64   // the index of the last entry applied
	up      bool
	snaps   int    // snapshots installed from the leader
	snapAt  uint64 // the index of its Storage's snapshot
}

type cluster struct {
	t      *testing.T
	rng    *rand.Rand
	nodes  []*node // nodes[i].id == i+1
	inbox  map[uint64][]*pb.Message
	cut    map[uint64]bool   // nodes whose messages, both ways, are lost
	chosen map[uint64]string // index -> the data applied there first
	// compactEvery makes each node snapshot and compact its log every so
	// many applied entries, keeping compactKeep entries (0: never).
	compactEvery, compactKeep uint64
	// onChosen, if set, is called when an index is first applied.
	onChosen func(index uint64, data string)
}

var voters = []uint64{1, 2, 3}

func newCluster(t *testing.T, fsys func(id uint64) vfs.FS) *cluster {
	return newClusterAt(t, t.TempDir(), fsys, true)
}

// newClusterAt starts the nodes in root/1, root/2, root/3 (or each in
// "/node" of the FS fsys gives it), bootstrapping them if asked.
func newClusterAt(t *testing.T, root string, fsys func(id uint64) vfs.FS, bootstrap bool) *cluster {
	c := &cluster{t: t, rng: rand.New(rand.NewPCG(seedtest.Seed(t), 1)), inbox: map[uint64][]*pb.Message{},
		cut: map[uint64]bool{}, chosen: map[uint64]string{}}
	for _, id := range voters {
		n := &node{id: id, dir: filepath.Join(root, fmt.Sprint(id))}
		if fsys != nil {
			n.fsys, n.dir = fsys(id), "/node"
		}
		c.nodes = append(c.nodes, n)
		c.start(n, bootstrap)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.up {
				n.st.Close()
			}
		}
	})
	return c
}

// start opens n's Storage and starts its RawNode from it, as a restarted
// process does: the state machine is the snapshot's, and raft replays the
// committed entries after it.
func (c *cluster) start(n *node, bootstrap bool) {
	c.t.Helper()
	st, err := Open(n.dir, &Options{FS: n.fsys, SegmentSize: 64 << 10, Logger: quiet()})
	must(c.t, err)
	if bootstrap {
		must(c.t, st.ApplySnapshot(&pb.Snapshot{Metadata: &pb.SnapshotMetadata{
			ConfState: &pb.ConfState{Voters: voters}}}))
	}
	snap, err := st.Snapshot()
	must(c.t, err)
	n.st, n.applied, n.index = st, nil, snap.GetMetadata().GetIndex()
	n.snapAt = n.index
	if len(snap.GetData()) > 0 {
		must(c.t, json.Unmarshal(snap.GetData(), &n.applied))
	}
	n.rn, err = raft.NewRawNode(&raft.Config{
		ID: n.id, ElectionTick: 10, HeartbeatTick: 1, Storage: st, Applied: n.index,
		MaxSizePerMsg: 64 << 10, MaxInflightMsgs: 64, Logger: raftQuiet, PreVote: true,
	})
	must(c.t, err)
	n.up = true
}

// stop takes n down: Close (a clean stop), or nothing at all (a crash: the
// caller then takes the file system's state, as a kill or a power loss
// leaves it).
func (c *cluster) stop(n *node, clean bool) {
	if clean {
		must(c.t, n.st.Close())
	}
	n.up, n.st, n.rn = false, nil, nil
	c.inbox[n.id] = nil
}

// handle runs one Ready of n: persist (snapshot, entries, HardState), then
// send, then apply, then Advance. It is the loop the package documents.
func (c *cluster) handle(n *node) {
	c.t.Helper()
	rd := n.rn.Ready()
	if !raft.IsEmptySnap(rd.Snapshot) {
		must(c.t, n.st.ApplySnapshot(rd.Snapshot))
		n.applied = nil
		must(c.t, json.Unmarshal(rd.Snapshot.GetData(), &n.applied))
		n.index = rd.Snapshot.GetMetadata().GetIndex()
		n.snapAt = n.index
		n.snaps++
	}
	must(c.t, n.st.Save(rd.HardState, rd.Entries))
	for _, m := range rd.Messages {
		c.send(m)
	}
	for _, e := range rd.CommittedEntries {
		c.apply(n, e)
	}
	n.rn.Advance(rd)
	c.maybeCompact(n)
}

func (c *cluster) send(m *pb.Message) {
	to, from := m.GetTo(), m.GetFrom()
	if c.cut[to] || c.cut[from] || !c.nodes[to-1].up {
		return
	}
	c.inbox[to] = append(c.inbox[to], m)
}

func (c *cluster) apply(n *node, e *pb.Entry) {
	c.t.Helper()
	if e.GetIndex() != n.index+1 {
		c.t.Fatalf("node %d applies entry %d after %d", n.id, e.GetIndex(), n.index)
	}
	n.index = e.GetIndex()
	if e.GetType() != pb.EntryType_EntryNormal || len(e.GetData()) == 0 {
		return // the leaders' empty entries; there are no conf changes
	}
	data := string(e.GetData())
	if first, ok := c.chosen[e.GetIndex()]; ok && first != data {
		c.t.Fatalf("node %d applies %q at %d, where %q was applied", n.id, data, e.GetIndex(), first)
	}
	if _, ok := c.chosen[e.GetIndex()]; !ok && c.onChosen != nil {
		c.onChosen(e.GetIndex(), data)
	}
	c.chosen[e.GetIndex()] = data
	n.applied = append(n.applied, data)
}

func (c *cluster) maybeCompact(n *node) {
	c.t.Helper()
	if c.compactEvery == 0 {
		return
	}
	if n.index < n.snapAt+c.compactEvery {
		return
	}
	data, err := json.Marshal(n.applied)
	must(c.t, err)
	_, err = n.st.CreateSnapshot(n.index, &pb.ConfState{Voters: voters}, data)
	must(c.t, err)
	n.snapAt = n.index
	if first, _ := n.st.FirstIndex(); n.index > c.compactKeep && n.index-c.compactKeep >= first {
		must(c.t, n.st.Compact(n.index-c.compactKeep))
	}
}

// round ticks every live node (with probability tick), handles their Readys
// and delivers the messages sent, in a random order of nodes.
func (c *cluster) round(tick float64) {
	c.t.Helper()
	for _, k := range c.rng.Perm(len(c.nodes)) {
		n := c.nodes[k]
		if !n.up {
			continue
		}
		if c.rng.Float64() < tick {
			n.rn.Tick()
		}
		msgs := c.inbox[n.id]
		c.inbox[n.id] = nil
		for _, m := range msgs {
			if err := n.rn.Step(m); err != nil && err != raft.ErrStepPeerNotFound {
				c.t.Fatalf("node %d: step %v: %v", n.id, m.GetType(), err)
			}
			if m.GetType() == pb.MessageType_MsgSnap {
				c.nodes[m.GetFrom()-1].reportSnapshot(n.id)
			}
		}
		for n.up && n.rn.HasReady() {
			c.handle(n)
		}
	}
}

func (n *node) reportSnapshot(to uint64) {
	if n.up {
		n.rn.ReportSnapshot(to, raft.SnapshotFinish)
	}
}

// leader returns the live leader that the other live, connected nodes
// follow, or nil.
func (c *cluster) leader() *node {
	for _, n := range c.nodes {
		if n.up && !c.cut[n.id] && n.rn.BasicStatus().RaftState == raft.StateLeader {
			return n
		}
	}
	return nil
}

// propose proposes data at the leader, if there is one, and runs a round.
func (c *cluster) propose(data string) {
	if l := c.leader(); l != nil {
		_ = l.rn.Propose([]byte(data)) // may be dropped; only what commits counts
	}
	c.round(0.2)
}

// settle runs rounds until every live, connected node has applied the same
// entries, up to the leader's commit index.
func (c *cluster) settle() {
	c.t.Helper()
	for i := 0; i < 5000; i++ {
		c.round(0.2)
		if c.agreed() {
			return
		}
	}
	for _, n := range c.nodes {
		if n.up {
			c.t.Logf("node %d: %+v applied %d", n.id, n.rn.BasicStatus(), n.index)
		}
	}
	c.t.Fatal("the cluster did not settle")
}

func (c *cluster) agreed() bool {
	l := c.leader()
	if l == nil {
		return false
	}
	commit := l.rn.BasicStatus().GetCommit()
	for _, n := range c.nodes {
		if n.up && !c.cut[n.id] && (n.index != commit || len(n.applied) != len(l.applied)) {
			return false
		}
	}
	return true
}

// check verifies that every live node applied exactly the same proposals
// and that at least want of them committed.
func (c *cluster) check(want int) {
	c.t.Helper()
	c.settle()
	l := c.leader()
	for _, n := range c.nodes {
		if !n.up {
			continue
		}
		if fmt.Sprint(n.applied) != fmt.Sprint(l.applied) {
			c.t.Fatalf("node %d applied %d proposals, the leader (%d) %d:\n%v\n%v",
				n.id, len(n.applied), l.id, len(l.applied), n.applied, l.applied)
		}
	}
	if len(l.applied) < want {
		c.t.Fatalf("%d proposals committed, want at least %d", len(l.applied), want)
	}
	c.t.Logf("%d proposals committed and applied on every node (leader %d, commit %d)", len(l.applied), l.id, l.index)
}

func (c *cluster) proposeN(tag string, n int) {
	for i := 0; i < n; i++ {
		c.propose(fmt.Sprintf("%s-%d", tag, i))
	}
}

func TestClusterReplicates(t *testing.T) {
	c := newCluster(t, nil)
	c.settle()
	c.proposeN("a", 200)
	c.check(150)
	// A clean restart of a follower while proposals go on.
	f := c.follower()
	c.stop(f, true)
	c.proposeN("b", 100)
	c.start(f, false)
	c.proposeN("c", 50)
	c.check(300)
}

func (c *cluster) follower() *node {
	for _, n := range c.nodes {
		if n.up && n != c.leader() {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// A follower crashes (its Storage is never closed) while proposals go on,
// and restarts from what its directory kept: a killed process keeps all it
// wrote, a power loss only what was synced. It catches up with every
// committed entry, and the cluster goes on.
func TestClusterCrashRestart(t *testing.T) {
	crashes := []struct {
		name string
		mode crashfs.CrashMode
		kill bool
	}{
		{"kill", 0, true},
		{"power loss", crashfs.SyncedOnly, false},
		{"power loss keeping unsynced sectors at random", crashfs.RandomSectors, false},
	}
	for _, crash := range crashes {
		t.Run(crash.name, func(t *testing.T) {
			fss := map[uint64]*crashfs.FS{}
			c := newCluster(t, func(id uint64) vfs.FS { fss[id] = crashfs.New(); return fss[id] })
			c.settle()
			for round := range 3 {
				c.proposeN(fmt.Sprintf("r%d", round), 50+c.rng.IntN(50))
				victim := c.nodes[c.rng.IntN(3)] // the leader, sometimes
				before := victim.index
				c.stop(victim, false)
				if crash.kill {
					fss[victim.id].Kill()
				} else {
					fss[victim.id] = fss[victim.id].Crash(crash.mode, c.rng)
				}
				victim.fsys = fss[victim.id]
				c.proposeN(fmt.Sprintf("down%d", round), 30)
				c.start(victim, false)
				// Everything it applied before the crash was durable.
				if last, _ := victim.st.LastIndex(); last < before {
					t.Fatalf("node %d applied %d before the crash, its log ends at %d after", victim.id, before, last)
				}
				c.proposeN(fmt.Sprintf("up%d", round), 30)
				c.check(0)
			}
			c.check(150)
		})
	}
}

// A follower cut off while the others commit and compact far past its log
// gets the leader's snapshot (ApplySnapshot on an empty log continuing after
// it), then the entries after it, and survives a restart right after.
func TestClusterSnapshot(t *testing.T) {
	c := newCluster(t, nil)
	c.compactEvery, c.compactKeep = 40, 5
	c.settle()
	c.proposeN("a", 30)
	c.check(20)
	lag := c.follower()
	c.cut[lag.id] = true
	c.proposeN("b", 300)
	c.cut[lag.id] = false
	c.proposeN("c", 20)
	c.check(300)
	if lag.snaps == 0 {
		t.Fatalf("node %d caught up without a snapshot", lag.id)
	}
	c.stop(lag, true)
	c.start(lag, false)
	c.proposeN("d", 20)
	c.check(320)
}

// Leaders are cut off again and again while proposals go on: each time the
// others elect a new one, and what the old one had committed survives.
func TestClusterLeaderChange(t *testing.T) {
	c := newCluster(t, nil)
	c.compactEvery, c.compactKeep = 50, 10
	c.settle()
	terms := map[uint64]bool{}
	for round := range 6 {
		c.proposeN(fmt.Sprintf("r%d", round), 40)
		old := c.leader()
		if old == nil {
			c.settle()
			old = c.leader()
		}
		terms[old.rn.BasicStatus().GetTerm()] = true
		c.cut[old.id] = true
		// Proposals to the old leader go nowhere (they are in its log only,
		// and replaced when it rejoins); the others elect anew and commit
		// what they are given meanwhile.
		for i := 0; i < 40 || c.leader() == nil; i++ {
			if i > 5000 {
				t.Fatal("no new leader")
			}
			_ = old.rn.Propose([]byte(fmt.Sprintf("lost%d-%d", round, i)))
			c.propose(fmt.Sprintf("new%d-%d", round, i))
		}
		c.proposeN(fmt.Sprintf("after%d", round), 20)
		c.cut[old.id] = false
		c.check(0)
	}
	if len(terms) < 4 {
		t.Fatalf("leaders in %d terms, want several", len(terms))
	}
	c.check(300)
}
