package raftstore

import (
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gojournal/journal/internal/testproc"
	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// A three-node cluster over loopback TCP, one node of which (node3) runs
// in a child process: this test binary run again, selected by
// envKillChild. Its store reports on stdout every call raft makes to it
// and every entry it acknowledged (StoreLogs returned nil), and its
// commands that raft committed while it led. The parent SIGKILLs it in the
// middle of the traffic, keeps the other two going, then checks the
// directory the child left: every entry node3 acknowledged is there,
// byte for byte, which includes every committed entry it had acknowledged.
// Reopened in a node of this process at node3's address, it rejoins and
// applies every committed command in index order.
const envKillChild = "JOURNAL_RAFT_KILL_CHILD" // node3's directory

// killConfig is the raft configuration of every node of these tests: no
// snapshots, so every entry stays in the logs to be checked.
func killConfig(cfg *raft.Config) {
	cfg.SnapshotThreshold = 1 << 40
	cfg.SnapshotInterval = time.Hour
}

// tracedStore is node3's store in the child: it prints each StoreLogs and
// DeleteRange before the call ("storing", "deleting min max") and, if it
// returned nil, what it acknowledged ("stored index term type hash" per
// entry, "deleted min max").
type tracedStore struct {
	*Store
	mu sync.Mutex // one call at a time, so its lines are in call order
}

func (s *tracedStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *tracedStore) StoreLogs(logs []*raft.Log) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Println("storing")
	if err := s.Store.StoreLogs(logs); err != nil {
		return err
	}
	var b strings.Builder
	for _, l := range logs {
		fmt.Fprintf(&b, "stored %d %d %d %d\n", l.Index, l.Term, l.Type, entryHash(l))
	}
	os.Stdout.WriteString(b.String()) // one write: no other line in between
	return nil
}

func (s *tracedStore) DeleteRange(min, max uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Printf("deleting %d %d\n", min, max)
	if err := s.Store.DeleteRange(min, max); err != nil {
		return err
	}
	fmt.Printf("deleted %d %d\n", min, max)
	return nil
}

func entryHash(l *raft.Log) uint64 {
	h := fnv.New64a()
	h.Write(l.Data)
	h.Write(l.Extensions)
	return h.Sum64()
}

// tcpNode is a node of these tests, on a loopback TCP transport.
type tcpNode struct {
	id    raft.ServerID
	dir   string
	store *Store
	trans *raft.NetworkTransport
	fsm   *fsm
	raft  *raft.Raft
}

// startTCPNode opens the store in dir (through wrap, if not nil) and
// starts raft on a transport bound to bind ("127.0.0.1:0" for any port).
func startTCPNode(t testing.TB, id raft.ServerID, dir, bind string, wrap func(*Store) raft.LogStore) *tcpNode {
	t.Helper()
	n := &tcpNode{id: id, dir: dir, fsm: &fsm{}}
	var err error
	if n.store, err = Open(dir, &Options{Log: &wal.Options{Logger: quiet}}); err != nil {
		t.Fatalf("%s: open store: %v", id, err)
	}
	var logs raft.LogStore = n.store
	if wrap != nil {
		logs = wrap(n.store)
	}
	// The address a killed child listened on may take a moment to be
	// free again.
	for deadline := time.Now().Add(10 * time.Second); ; {
		n.trans, err = raft.NewTCPTransportWithLogger(bind, nil, 3, time.Second, hclog.NewNullLogger())
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("%s: listen on %s: %v", id, bind, err)
	}
	cfg := (&cluster{conf: killConfig}).config(id)
	if n.raft, err = raft.NewRaft(cfg, n.fsm, logs, n.store, raft.NewInmemSnapshotStore(), n.trans); err != nil {
		t.Fatalf("%s: NewRaft: %v", id, err)
	}
	return n
}

func (n *tcpNode) stop() {
	n.raft.Shutdown().Error()
	n.trans.Close()
	n.store.Close()
}

// TestKillChild is node3 in the child process; it does nothing unless run
// by TestKilledProcessRejoins. It prints its address, then serves until
// it is killed, applying commands ("child-N") whenever it leads.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(envKillChild)
	if dir == "" {
		return
	}
	n := startTCPNode(t, "node3", dir, "127.0.0.1:0", func(s *Store) raft.LogStore { return &tracedStore{Store: s} })
	fmt.Printf("addr %s\n", n.trans.LocalAddr())
	go func() {
		// The parent's end of stdin closes when it exits: never outlive
		// it, whatever happened to it.
		io.Copy(io.Discard, os.Stdin)
		os.Exit(1)
	}()
	var next struct {
		sync.Mutex
		n int
	}
	for range appliers {
		go func() {
			for {
				if n.raft.State() != raft.Leader {
					time.Sleep(time.Millisecond)
					continue
				}
				next.Lock()
				cmd := fmt.Sprintf("child-%d", next.n)
				next.n++
				next.Unlock()
				if f := n.raft.Apply([]byte(cmd), time.Second); f.Error() == nil {
					fmt.Printf("committed %d %s\n", f.Index(), cmd)
				}
			}
		}()
	}
	select {}
}

// appliers is how many goroutines apply commands at once on the leader,
// so that raft batches them into one StoreLogs.
const appliers = 4

// committed is a command raft committed, and where.
type committed struct {
	index uint64
	cmd   string
}

// node3Log is what node3's store acknowledged, rebuilt from its lines.
type node3Log struct {
	entries  map[uint64]string // index -> "term type hash"
	inFlight string            // the last "storing" or "deleting" line not acknowledged
	stored   int               // entries acknowledged
	last     uint64            // the highest index acknowledged
}

// read takes one line of the child's.
func (l *node3Log) read(line string, cmds *[]committed) error {
	f := strings.Fields(line)
	switch {
	case len(f) == 0:
	case f[0] == "storing" || f[0] == "deleting":
		l.inFlight = line
	case f[0] == "stored" && len(f) == 5:
		index, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return err
		}
		l.entries[index] = strings.Join(f[2:], " ")
		l.inFlight = ""
		l.stored++
		l.last = max(l.last, index)
	case f[0] == "deleted" && len(f) == 3:
		var min, max uint64
		if _, err := fmt.Sscanf(line, "deleted %d %d", &min, &max); err != nil {
			return err
		}
		for i := range l.entries {
			if min <= i && i <= max {
				delete(l.entries, i)
			}
		}
		l.inFlight = ""
	case f[0] == "committed" && len(f) == 3:
		index, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return err
		}
		*cmds = append(*cmds, committed{index, f[2]})
	}
	return nil
}

func TestKilledProcessRejoins(t *testing.T) {
	rng := newRand(t)
	childLeads := rng.IntN(2) == 0
	killAfter := 150 + rng.IntN(600)           // entries node3 acknowledged
	killDelay := time.Duration(rng.IntN(3000)) // µs after that
	t.Logf("node3 (the child) leads: %v; killed %v after it acknowledged %d entries", childLeads, killDelay*time.Microsecond, killAfter)

	dir3 := t.TempDir()
	child := testproc.Start(t, "TestKillChild", []string{envKillChild + "=" + dir3})
	var addr3 string
	if _, err := fmt.Sscanf(child.Expect("addr "), "addr %s", &addr3); err != nil {
		t.Fatal(err)
	}
	nodes := []*tcpNode{
		startTCPNode(t, "node1", t.TempDir(), "127.0.0.1:0", nil),
		startTCPNode(t, "node2", t.TempDir(), "127.0.0.1:0", nil),
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	servers := []raft.Server{{ID: "node3", Address: raft.ServerAddress(addr3)}}
	for _, n := range nodes {
		servers = append(servers, raft.Server{ID: n.id, Address: n.trans.LocalAddr()})
	}
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	if childLeads {
		transferTo(t, nodes, "node3", addr3)
	}

	// The child's lines: node3's store calls and its commits.
	var log3 node3Log
	log3.entries = map[uint64]string{}
	var childCmds []committed
	reached := make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		var err error
		signal := reached
		for line := range child.Lines {
			if err == nil {
				err = log3.read(line, &childCmds)
			}
			if log3.stored >= killAfter && signal != nil {
				close(signal)
				signal = nil
			}
		}
		readDone <- err
	}()
	ap := startAppliers(nodes, "parent")
	select {
	case <-reached:
	case <-time.After(time.Minute):
		t.Fatalf("node3 did not acknowledge %d entries within a minute", killAfter)
	}
	time.Sleep(killDelay * time.Microsecond)
	child.Kill()
	if err := <-readDone; err != nil {
		t.Fatalf("reading the child's lines: %v", err)
	}
	child.Wait()
	// The others go on without node3 (electing a leader first if it led).
	ap.waitFor(t, 50, 30*time.Second)

	// The directory the child left holds every entry it acknowledged.
	cmds := append(ap.stop(), childCmds...)
	slices.SortFunc(cmds, func(a, b committed) int { return int(a.index) - int(b.index) })
	covered := checkKilledStore(t, dir3, &log3, cmds)
	t.Logf("node3 acknowledged %d entries (log up to %d; in flight at the kill: %q); %d of the %d committed commands were among them",
		log3.stored, log3.last, log3.inFlight, covered, len(cmds))
	if covered == 0 {
		t.Fatal("no committed command was acknowledged by node3 before the kill: the check covered nothing")
	}

	// Reopened in this process at its address, node3 rejoins.
	n3 := startTCPNode(t, "node3", dir3, addr3, nil)
	nodes = append(nodes, n3)
	after := startAppliers(nodes, "after")
	after.waitFor(t, 20, 30*time.Second)
	cmds = append(cmds, after.stop()...)
	slices.SortFunc(cmds, func(a, b committed) int { return int(a.index) - int(b.index) })
	want := make([]string, len(cmds))
	for i, c := range cmds {
		want[i] = c.cmd
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := n3.fsm.commands()
		if containsInOrder(got, want) {
			t.Logf("node3 rejoined and applied all %d committed commands in order (%d applied)", len(want), len(got))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node3 applied %d commands, not all %d committed ones in index order", len(got), len(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkKilledStore opens node3's directory as the child left it and checks
// that it holds every entry the child acknowledged, as acknowledged: all
// of them, or all but those of a DeleteRange in flight at the kill (which
// may or may not have happened). It returns how many of cmds were among
// them.
func checkKilledStore(t *testing.T, dir string, l *node3Log, cmds []committed) int {
	t.Helper()
	s, err := Open(dir, &Options{Log: &wal.Options{Logger: quiet}})
	if err != nil {
		t.Fatalf("reopen node3's store after SIGKILL: %v", err)
	}
	defer s.Close()
	var dmin, dmax uint64
	if _, err := fmt.Sscanf(l.inFlight, "deleting %d %d", &dmin, &dmax); err != nil {
		dmin, dmax = 1, 0
	}
	dropped := 0 // entries of an in-flight DeleteRange found gone
	for _, i := range slices.Sorted(maps.Keys(l.entries)) {
		var e raft.Log
		err := s.GetLog(i, &e)
		if err == raft.ErrLogNotFound && dmin <= i && i <= dmax {
			dropped++
			continue
		}
		if err != nil {
			t.Fatalf("node3 acknowledged entry %d (%s), missing after SIGKILL: %v", i, l.entries[i], err)
		}
		if got := fmt.Sprintf("%d %d %d", e.Term, e.Type, entryHash(&e)); got != l.entries[i] {
			t.Fatalf("node3 entry %d is %q after SIGKILL, it acknowledged %q", i, got, l.entries[i])
		}
	}
	if inRange := countIn(l.entries, dmin, dmax); dropped != 0 && dropped != inRange {
		t.Fatalf("a DeleteRange(%d, %d) in flight at the kill dropped %d of the %d entries in range: not atomic", dmin, dmax, dropped, inRange)
	}
	covered := 0
	for _, c := range cmds {
		h := fnv.New64a()
		h.Write([]byte(c.cmd))
		if want := fmt.Sprintf("%d %d", raft.LogCommand, h.Sum64()); strings.HasSuffix(l.entries[c.index], " "+want) {
			covered++
		}
	}
	return covered
}

func countIn(m map[uint64]string, min, max uint64) int {
	n := 0
	for i := range m {
		if min <= i && i <= max {
			n++
		}
	}
	return n
}

// transferTo moves leadership to id, retrying until the nodes see it lead.
func transferTo(t *testing.T, nodes []*tcpNode, id raft.ServerID, addr string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, n := range nodes {
			if _, leader := n.raft.LeaderWithID(); leader == id {
				return
			}
		}
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				n.raft.LeadershipTransferToServer(id, raft.ServerAddress(addr)).Error()
			}
		}
	}
	t.Fatalf("leadership did not move to %s", id)
}

// applierSet applies commands (prefix-N) on whichever of its nodes leads,
// from several goroutines, recording those committed.
type applierSet struct {
	mu   sync.Mutex
	cmds []committed
	quit chan struct{}
	wg   sync.WaitGroup
}

func startAppliers(nodes []*tcpNode, prefix string) *applierSet {
	a := &applierSet{quit: make(chan struct{})}
	var next struct {
		sync.Mutex
		n int
	}
	for range appliers {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for {
				select {
				case <-a.quit:
					return
				default:
				}
				var leader *raft.Raft
				for _, n := range nodes {
					if n.raft.State() == raft.Leader {
						leader = n.raft
					}
				}
				if leader == nil {
					time.Sleep(time.Millisecond)
					continue
				}
				next.Lock()
				cmd := fmt.Sprintf("%s-%d", prefix, next.n)
				next.n++
				next.Unlock()
				if f := leader.Apply([]byte(cmd), time.Second); f.Error() == nil {
					a.mu.Lock()
					a.cmds = append(a.cmds, committed{f.Index(), cmd})
					a.mu.Unlock()
				}
			}
		}()
	}
	return a
}

// waitFor waits until n more commands have been committed.
func (a *applierSet) waitFor(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	a.mu.Lock()
	want := len(a.cmds) + n
	a.mu.Unlock()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		a.mu.Lock()
		got := len(a.cmds)
		a.mu.Unlock()
		if got >= want {
			return
		}
	}
	t.Fatalf("fewer than %d commands committed in %v", n, timeout)
}

// stop stops the appliers and returns the commands committed.
func (a *applierSet) stop() []committed {
	close(a.quit)
	a.wg.Wait()
	return a.cmds
}
