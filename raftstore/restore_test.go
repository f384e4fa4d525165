package raftstore

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/raft"
)

// TestUserRestore restores a user snapshot (raft.Restore) on the leader of
// a 3-node cluster: raft, seeing a MonotonicLogStore, deletes the
// leader's whole log, puts the snapshot one index past its old end and
// goes on after it, leaving a gap the followers can cross only by
// installing the snapshot (their logs emptied in turn). Every node must end with the restored state followed
// by the later commands, and again after every node restarts from its
// directory. On a Store and on a group of a Shared store.
func TestUserRestore(t *testing.T) {
	opens := map[string]func(nd *node) (nodeStore, error){
		"Store": func(nd *node) (nodeStore, error) {
			return Open(nd.dir, &Options{Log: &wal.Options{FS: nd.fs, Logger: quiet}})
		},
		"Shared": func(nd *node) (nodeStore, error) {
			sh, err := OpenShared(nd.dir, &Options{Log: &wal.Options{FS: nd.fs, Logger: quiet}})
			if err != nil {
				return nil, err
			}
			g, err := sh.Group(uint64(nd.index) + 40)
			if err != nil {
				sh.Close()
				return nil, err
			}
			return sharedGroup{g, sh}, nil
		},
	}
	for name, open := range opens {
		t.Run(name, func(t *testing.T) {
			c := newClusterWith(t, 3, func(cfg *raft.Config) {
				cfg.TrailingLogs = 5
				cfg.SnapshotThreshold = 1 << 30 // snapshots only when asked
			}, open)
			c.converge(c.apply("before", 40))
			ld := c.leader()
			oldLast, _ := ld.store.LastIndex()
			restored := []string{"restored-1", "restored-2"}
			state, _ := json.Marshal(restored)
			meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: 3, Term: 1, Size: int64(len(state))}
			if err := ld.raft.Restore(meta, bytes.NewReader(state), 5*time.Second); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			// Raft applied a no-op after the restore, one index past the
			// snapshot's, which is one past the old end.
			if first, _ := ld.store.FirstIndex(); first != oldLast+2 {
				t.Fatalf("leader's log starts at %d after the restore, want %d (old end %d, the snapshot at %d)", first, oldLast+2, oldLast, oldLast+1)
			}
			after := c.apply("after", 20)
			want := append(slices.Clone(restored), after...)
			c.converge(want)
			c.exactly(want)
			for _, nd := range c.nodes {
				if first, _ := nd.store.FirstIndex(); first <= oldLast+1 {
					t.Fatalf("%s's log starts at %d, before the snapshot at %d", nd.id, first, oldLast+1)
				}
			}
			for _, nd := range c.nodes {
				c.stop(nd)
			}
			for _, nd := range c.nodes {
				c.start(nd)
			}
			more := c.apply("restarted", 5)
			want = append(want, more...)
			c.converge(want)
			c.exactly(want)
		})
	}
}

// exactly checks that every running node applied exactly want (converge
// allows a retried command to be applied twice).
func (c *cluster) exactly(want []string) {
	c.t.Helper()
	for _, nd := range c.nodes {
		if nd.raft != nil && !slices.Equal(nd.fsm.commands(), want) {
			c.t.Fatalf("%s applied %q, want %q", nd.id, nd.fsm.commands(), want)
		}
	}
}
