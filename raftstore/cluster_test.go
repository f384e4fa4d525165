package raftstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// fsm is the state machine of the cluster tests: the commands applied, in
// order.
type fsm struct {
	mu      sync.Mutex
	applied []string
}

func (f *fsm) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, string(l.Data))
	return len(f.applied)
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return snapshot(slices.Clone(f.applied)), nil
}

func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	var applied []string
	if err := json.NewDecoder(r).Decode(&applied); err != nil {
		return err
	}
	f.mu.Lock()
	f.applied = applied
	f.mu.Unlock()
	return nil
}

func (f *fsm) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied)
}

type snapshot []string

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode([]string(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (snapshot) Release() {}

// node is one server of an in-process cluster.
type node struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	dir   string
	fs    vfs.FS
	index int // in cluster.nodes
	trans *raft.InmemTransport
	store nodeStore
	snaps raft.SnapshotStore
	fsm   *fsm
	raft  *raft.Raft
}

// nodeStore is a node's raft.LogStore and raft.StableStore.
type nodeStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

type cluster struct {
	t     *testing.T
	nodes []*node
	conf  func(*raft.Config)
	open  func(nd *node) (nodeStore, error)
}

// newCluster starts n nodes, each with its Store in its own directory, all
// connected through in-memory transports, and bootstraps them.
func newCluster(t *testing.T, n int, conf func(*raft.Config)) *cluster {
	return newClusterWith(t, n, conf, func(nd *node) (nodeStore, error) {
		return Open(nd.dir, &Options{Log: &wal.Options{FS: nd.fs, Logger: quiet}})
	})
}

// newClusterWith is newCluster with the nodes' stores opened by open.
func newClusterWith(t *testing.T, n int, conf func(*raft.Config), open func(nd *node) (nodeStore, error)) *cluster {
	c := &cluster{t: t, conf: conf, open: open}
	var servers []raft.Server
	for i := range n {
		id := raft.ServerID(fmt.Sprintf("node%d", i+1))
		nd := &node{id: id, addr: raft.ServerAddress(id), index: i, dir: t.TempDir(), fs: vfs.Default}
		snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(nd.dir, "snapshots"), 2, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		nd.snaps = snaps
		c.nodes = append(c.nodes, nd)
		servers = append(servers, raft.Server{ID: id, Address: nd.addr})
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}
	if err := c.nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.shutdown)
	return c
}

func (c *cluster) config(id raft.ServerID) *raft.Config {
	cfg := raft.DefaultConfig()
	cfg.LocalID = id
	cfg.HeartbeatTimeout = 100 * time.Millisecond
	cfg.ElectionTimeout = 100 * time.Millisecond
	cfg.LeaderLeaseTimeout = 100 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.Logger = hclog.NewNullLogger()
	if c.conf != nil {
		c.conf(cfg)
	}
	return cfg
}

// start opens nd's store and starts raft on it.
func (c *cluster) start(nd *node) {
	c.t.Helper()
	var err error
	nd.store, err = c.open(nd)
	if err != nil {
		c.t.Fatalf("%s: open store: %v", nd.id, err)
	}
	_, nd.trans = raft.NewInmemTransport(nd.addr)
	for _, o := range c.nodes {
		if o != nd && o.trans != nil && o.raft != nil {
			nd.trans.Connect(o.addr, o.trans)
			o.trans.Connect(nd.addr, nd.trans)
		}
	}
	nd.fsm = &fsm{}
	nd.raft, err = raft.NewRaft(c.config(nd.id), nd.fsm, nd.store, nd.store, nd.snaps, nd.trans)
	if err != nil {
		c.t.Fatalf("%s: NewRaft: %v", nd.id, err)
	}
	for _, o := range c.nodes {
		if o != nd && o.trans != nil && o.raft != nil {
			nd.trans.Connect(o.addr, o.trans)
		}
	}
}

// stop shuts nd down cleanly and closes its store.
func (c *cluster) stop(nd *node) {
	c.t.Helper()
	c.disconnect(nd)
	if err := nd.raft.Shutdown().Error(); err != nil {
		c.t.Fatalf("%s: shutdown: %v", nd.id, err)
	}
	if err := nd.store.Close(); err != nil {
		c.t.Fatalf("%s: close store: %v", nd.id, err)
	}
	nd.raft = nil
}

func (c *cluster) disconnect(nd *node) {
	nd.trans.DisconnectAll()
	for _, o := range c.nodes {
		if o != nd && o.trans != nil {
			o.trans.Disconnect(nd.addr)
		}
	}
}

func (c *cluster) shutdown() {
	for _, nd := range c.nodes {
		if nd.raft != nil {
			nd.raft.Shutdown().Error()
			nd.store.Close()
			nd.raft = nil
		}
	}
}

// leader waits for a leader among the running nodes.
func (c *cluster) leader() *node {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, nd := range c.nodes {
			if nd.raft != nil && nd.raft.State() == raft.Leader {
				return nd
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatal("no leader elected within 10 s")
	return nil
}

// apply applies commands prefix-0 .. prefix-(n-1) through the leader.
func (c *cluster) apply(prefix string, n int) []string {
	c.t.Helper()
	var cmds []string
	for i := range n {
		cmd := fmt.Sprintf("%s-%d", prefix, i)
		for {
			err := c.leader().raft.Apply([]byte(cmd), 5*time.Second).Error()
			if err == nil {
				break
			}
			if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) {
				c.t.Fatalf("Apply(%s): %v", cmd, err)
			}
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// converge waits until every running node applied exactly the leader's
// commands, and checks they hold want in that order.
func (c *cluster) converge(want []string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ref := c.leader().fsm.commands()
		same := true
		for _, nd := range c.nodes {
			if nd.raft != nil && !slices.Equal(nd.fsm.commands(), ref) {
				same = false
			}
		}
		if same && containsInOrder(ref, want) {
			return
		}
		if time.Now().After(deadline) {
			for _, nd := range c.nodes {
				if nd.raft != nil {
					c.t.Logf("%s applied %d commands", nd.id, len(nd.fsm.commands()))
				}
			}
			c.t.Fatalf("the nodes did not converge on the %d commands within 20 s", len(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// containsInOrder reports whether every command of want appears in got,
// the first occurrences in want's order. (A command retried after
// ErrLeadershipLost may have committed before: raft applies it twice.)
func containsInOrder(got, want []string) bool {
	pos := map[string]int{}
	for i, g := range got {
		if _, seen := pos[g]; !seen {
			pos[g] = i
		}
	}
	last := -1
	for _, w := range want {
		p, ok := pos[w]
		if !ok || p < last {
			return false
		}
		last = p
	}
	return true
}

// applyVia applies commands prefix-0 .. prefix-(n-1) through whichever of
// rafts leads, retrying each until it is acknowledged (for 20 s at most).
// It runs beside the test goroutine, so it uses rafts fixed in advance
// rather than the nodes, which the test goroutine restarts.
func applyVia(rafts []*raft.Raft, prefix string, n int) ([]string, error) {
	var acked []string
	for i := range n {
		cmd := fmt.Sprintf("%s-%d", prefix, i)
		deadline := time.Now().Add(20 * time.Second)
		for {
			var err error = raft.ErrNotLeader
			for _, r := range rafts {
				if r.State() == raft.Leader {
					err = r.Apply([]byte(cmd), time.Second).Error()
					break
				}
			}
			if err == nil {
				acked = append(acked, cmd)
				break
			}
			if time.Now().After(deadline) {
				return acked, fmt.Errorf("Apply(%s): %w", cmd, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return acked, nil
}

func (c *cluster) rafts() []*raft.Raft {
	var rs []*raft.Raft
	for _, nd := range c.nodes {
		if nd.raft != nil {
			rs = append(rs, nd.raft)
		}
	}
	return rs
}

func (c *cluster) follower() *node {
	c.t.Helper()
	ld := c.leader()
	for _, nd := range c.nodes {
		if nd != ld && nd.raft != nil {
			return nd
		}
	}
	c.t.Fatal("no follower")
	return nil
}

func TestClusterAppliesCommands(t *testing.T) {
	c := newCluster(t, 3, nil)
	want := c.apply("cmd", 200)
	c.converge(want)
	for _, nd := range c.nodes {
		if last, _ := nd.store.LastIndex(); last < 200 {
			t.Fatalf("%s: store LastIndex %d after 200 commands", nd.id, last)
		}
	}
}

// TestFollowerRestartCatchesUp stops a follower (store closed), applies
// more commands, reopens its store from its directory and restarts it.
func TestFollowerRestartCatchesUp(t *testing.T) {
	c := newCluster(t, 3, nil)
	want := c.apply("before", 50)
	c.converge(want)
	f := c.follower()
	c.stop(f)
	want = append(want, c.apply("while-down", 100)...)
	c.start(f)
	want = append(want, c.apply("after", 20)...)
	c.converge(want)
}

// TestKilledNodeRejoins takes a node's store from a simulated power loss
// (crashfs: only what was synced survives) while commands are applied, and
// restarts it from there: its store must hold every entry its raft had
// stored, and it rejoins with every committed command.
func TestKilledNodeRejoins(t *testing.T) {
	c := newCluster(t, 3, nil)
	want := c.apply("warmup", 20)
	c.converge(want)
	f := c.follower()
	// Move f onto a crash-simulating file system: copy its directory
	// into one, durably.
	c.stop(f)
	f.fs = copyToCrashFS(t, f.dir)
	c.start(f)
	// Commands go on while f is killed in the middle of them.
	type result struct {
		acked []string
		err   error
	}
	during := make(chan result, 1)
	rafts := c.rafts()
	go func() {
		acked, err := applyVia(rafts, "during", 400)
		during <- result{acked, err}
	}()
	for f.raft.LastIndex() < 120 {
		time.Sleep(time.Millisecond)
	}
	// The power goes: take what the disk holds, then stop the process
	// (its later writes go to the old file system, like a dead process's).
	stored := f.raft.LastIndex()
	crashed := f.fs.(*crashfs.FS).Crash(crashfs.SyncedOnly, nil)
	c.disconnect(f)
	f.raft.Shutdown().Error()
	f.store.Close()
	f.raft, f.fs = nil, crashed
	res := <-during
	if res.err != nil {
		t.Fatal(res.err)
	}
	acked := res.acked
	want = append(want, acked...)
	s, err := Open(f.dir, &Options{Log: &wal.Options{FS: f.fs, Logger: quiet}})
	if err != nil {
		t.Fatalf("reopen the crashed store: %v", err)
	}
	if last, _ := s.LastIndex(); last < stored {
		t.Fatalf("crashed store ends at %d; its raft had stored up to %d", last, stored)
	}
	s.Close()
	t.Logf("killed at raft index %d, in the middle of %d commands", stored, len(acked))
	c.start(f)
	want = append(want, c.apply("after", 20)...)
	c.converge(want)
}

// copyToCrashFS copies dir (a store's directory tree) into a new crashfs
// at the same path, all of it durable.
func copyToCrashFS(t *testing.T, dir string) *crashfs.FS {
	t.Helper()
	fsys := crashfs.New()
	var copyDir func(d string)
	copyDir = func(d string) {
		if err := fsys.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		names, err := vfs.Default.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			p := filepath.Join(d, name)
			fi, err := vfs.Default.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.IsDir() {
				if name != "snapshots" {
					copyDir(p)
				}
				continue
			}
			if strings.HasSuffix(name, "LOCK") {
				continue
			}
			b, err := readAll(vfs.Default, p)
			if err != nil {
				t.Fatal(err)
			}
			if err := vfs.WriteFile(fsys, p, 0o644, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
				t.Fatal(err)
			}
		}
		for x := d; ; x = filepath.Dir(x) {
			if err := fsys.SyncDir(x); err != nil {
				t.Fatal(err)
			}
			if filepath.Dir(x) == x {
				break
			}
		}
	}
	copyDir(dir)
	return fsys
}

func readAll(fsys vfs.FS, path string) ([]byte, error) {
	f, err := fsys.OpenFile(path, 0, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
}

// TestSnapshotInstallOnLaggingFollower: the leader compacts its log past
// what a stopped follower holds, so the follower gets a snapshot; raft then
// deletes the follower's whole log and continues it from the snapshot's
// index + 1, past its old end.
func TestSnapshotInstallOnLaggingFollower(t *testing.T) {
	c := newCluster(t, 3, func(cfg *raft.Config) {
		cfg.TrailingLogs = 10
		cfg.SnapshotThreshold = 1 << 30 // snapshots only when asked
	})
	want := c.apply("before", 30)
	c.converge(want)
	f := c.follower()
	c.stop(f)
	oldLast := func() uint64 {
		s, err := Open(f.dir, &Options{Log: &wal.Options{FS: f.fs, Logger: quiet}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		last, _ := s.LastIndex()
		return last
	}()
	want = append(want, c.apply("while-down", 200)...)
	ld := c.leader()
	if err := ld.raft.Snapshot().Error(); err != nil {
		t.Fatalf("leader snapshot: %v", err)
	}
	if first, _ := ld.store.FirstIndex(); first <= oldLast+1 {
		t.Fatalf("leader log starts at %d after compaction; the follower ends at %d: no snapshot would be needed", first, oldLast)
	}
	c.start(f)
	want = append(want, c.apply("after", 10)...)
	c.converge(want)
	first, _ := f.store.FirstIndex()
	if first <= oldLast+1 {
		t.Fatalf("follower log starts at %d, its old end was %d: it was not restarted past it by a snapshot", first, oldLast)
	}
	// It reopens from that state.
	c.stop(f)
	c.start(f)
	want = append(want, c.apply("reopened", 10)...)
	c.converge(want)
}

// TestReElectionWhileAppending stops the leader while commands keep being
// applied; the others elect a new leader and go on; the old leader comes
// back, drops any entries it had that were not committed, and catches up.
func TestReElectionWhileAppending(t *testing.T) {
	c := newCluster(t, 3, nil)
	want := c.apply("first", 20)
	c.converge(want)
	stop := make(chan struct{})
	acked := make(chan []string)
	// The appending goroutine uses the rafts running now (the test
	// goroutine replaces the old leader's): one of the two that stay
	// up becomes leader.
	var rafts []*raft.Raft
	for _, nd := range c.nodes {
		rafts = append(rafts, nd.raft)
	}
	go func() {
		var done []string
		defer func() { acked <- done }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cmd := fmt.Sprintf("cont-%d", i)
			var ld *raft.Raft
			for _, r := range rafts {
				if r.State() == raft.Leader {
					ld = r
				}
			}
			if ld == nil {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if ld.Apply([]byte(cmd), time.Second).Error() == nil {
				done = append(done, cmd)
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	old := c.leader()
	c.disconnect(old) // it may still append entries no one else sees
	time.Sleep(300 * time.Millisecond)
	c.stop(old)
	time.Sleep(300 * time.Millisecond)
	c.start(old)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	cont := <-acked
	if len(cont) == 0 {
		t.Fatal("no command was applied while leadership changed")
	}
	want = append(want, cont...)
	want = append(want, c.apply("last", 10)...)
	c.converge(want)
	t.Logf("%d commands acknowledged across the re-election", len(cont))
}
