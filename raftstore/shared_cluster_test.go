package raftstore

import (
	"fmt"
	"sync"
	"testing"

	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/raft"
)

// host is a machine of a multi-raft deployment: one shared store holding
// its node of every raft group.
type host struct {
	dir string
	sh  *Shared
}

func (h *host) open(t *testing.T) {
	t.Helper()
	h.sh = openSharedT(t, h.dir, &Options{Log: &wal.Options{Logger: quiet}})
}

// groupNode is a node's store in a shared store: closing the node leaves
// the shared store to its host.
type groupNode struct{ *GroupStore }

func (groupNode) Close() error { return nil }

// TestSharedClusters runs 3 raft groups on 3 hosts, each host keeping its
// nodes of all 3 groups in one shared store, and applies commands in every
// group at once (their appends share the hosts' group commits). A host
// goes down (its nodes stopped, its store closed) while the groups go on
// and every running node compacts its log past it (head deletes releasing
// the other hosts' shared logs), then comes back from its directory and
// catches up in every group from a snapshot: each of its groups empties
// and continues past its old end.
func TestSharedClusters(t *testing.T) {
	hosts := make([]*host, 3)
	for i := range hosts {
		hosts[i] = &host{dir: t.TempDir()}
		hosts[i].open(t)
	}
	t.Cleanup(func() {
		for _, h := range hosts {
			h.sh.Close()
		}
	})
	var groups []*cluster
	for gid := uint64(1); gid <= 3; gid++ {
		compactOnDemand := func(cfg *raft.Config) {
			cfg.TrailingLogs = 10
			cfg.SnapshotThreshold = 1 << 30 // snapshots only when asked
		}
		groups = append(groups, newClusterWith(t, 3, compactOnDemand, func(nd *node) (nodeStore, error) {
			g, err := hosts[nd.index].sh.Group(gid)
			return groupNode{g}, err
		}))
	}
	want := make([][]string, len(groups))
	applyAll := func(prefix string, n int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, len(groups))
		for k, c := range groups {
			rafts := c.rafts()
			wg.Go(func() {
				var acked []string
				acked, errs[k] = applyVia(rafts, fmt.Sprintf("g%d-%s", k+1, prefix), n)
				want[k] = append(want[k], acked...)
			})
		}
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				t.Fatalf("group %d: %v", k+1, err)
			}
		}
	}
	converge := func() {
		t.Helper()
		for k, c := range groups {
			c.converge(want[k])
		}
	}
	applyAll("before", 60)
	converge()
	down := hosts[2]
	for _, c := range groups {
		c.stop(c.nodes[2])
	}
	if err := down.sh.Close(); err != nil {
		t.Fatal(err)
	}
	oldLast := make([]uint64, len(groups))
	down.open(t)
	for k := range groups {
		oldLast[k], _ = groupT(t, down.sh, uint64(k+1)).LastIndex()
	}
	down.sh.Close()
	applyAll("while-down", 60)
	for k, c := range groups {
		for _, r := range c.rafts() {
			if err := r.Snapshot().Error(); err != nil {
				t.Fatalf("group %d: snapshot: %v", k+1, err)
			}
		}
		if first, _ := c.leader().store.FirstIndex(); first <= oldLast[k]+1 {
			t.Fatalf("group %d: leader log starts at %d after compaction, the host that is down ends at %d", k+1, first, oldLast[k])
		}
	}
	down.open(t)
	for _, c := range groups {
		c.start(c.nodes[2])
	}
	applyAll("after", 20)
	converge()
	for _, h := range hosts[:2] {
		if h.sh.log.FirstIndex() == 1 {
			t.Fatal("a running host's shared log was never released after its groups compacted")
		}
	}
	// Each group's log on the host that came back restarted past its
	// old end, and is its own.
	for k := range groups {
		g := groupT(t, down.sh, uint64(k+1))
		first, _ := g.FirstIndex()
		if first <= oldLast[k]+1 {
			t.Fatalf("group %d on the restarted host starts at %d, its old end was %d: not restarted by a snapshot", k+1, first, oldLast[k])
		}
		last, _ := g.LastIndex()
		var e raft.Log
		if err := g.GetLog(last, &e); err != nil {
			t.Fatalf("group %d: GetLog(%d): %v", k+1, last, err)
		}
		if e.Type == raft.LogCommand && string(e.Data[:3]) != fmt.Sprintf("g%d-", k+1) {
			t.Fatalf("group %d's last entry on the restarted host is %q", k+1, e.Data)
		}
	}
}
