// Command raftkv is a replicated key-value store: three hashicorp/raft
// nodes in one process, each keeping its raft log and stable state in a
// journal directory (package raftstore), talking over in-memory
// transports. It writes keys, stops one node (as a killed process leaves
// it: raft gone, its store closed), writes more, restarts the node from
// its directory and shows it catch up.
//
//	cd examples/raftkv && go run . [-dir DIR] [-keys 100]
//
// It is a module of its own (the root module does not depend on raft), so
// `go run ./examples/raftkv` from the repository's root fails: run it from
// examples/raftkv.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gojournal/journal/raftstore"
	"github.com/gojournal/journal/wal"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func main() {
	dir := flag.String("dir", "", "directory for the three nodes (default: a new temporary directory, removed afterwards)")
	keys := flag.Int("keys", 100, "keys to write before, and again while, the third node is down")
	flag.Parse()
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "journal-raftkv-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	if err := run(*dir, *keys, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// kv is the replicated state machine: commands are "key=value".
type kv struct {
	mu sync.Mutex
	m  map[string]string
}

func (k *kv) Apply(l *raft.Log) any {
	key, val, _ := strings.Cut(string(l.Data), "=")
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[key] = val
	return nil
}

func (k *kv) Snapshot() (raft.FSMSnapshot, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, err := json.Marshal(k.m)
	return kvSnapshot(b), err
}

func (k *kv) Restore(r io.ReadCloser) error {
	defer r.Close()
	m := map[string]string{}
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return err
	}
	k.mu.Lock()
	k.m = m
	k.mu.Unlock()
	return nil
}

func (k *kv) get(key string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.m[key]
}

func (k *kv) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

type kvSnapshot []byte

func (s kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (kvSnapshot) Release() {}

// node is one server: its raft, its journal-backed store, its state.
type node struct {
	id    raft.ServerID
	dir   string
	trans *raft.InmemTransport
	store *raftstore.Store
	kv    *kv
	raft  *raft.Raft
}

// start opens the node's store from its directory (recovering it as after
// a crash) and starts raft on it, connected to the running peers.
func (n *node) start(peers []*node) error {
	var err error
	n.store, err = raftstore.Open(filepath.Join(n.dir, "raft"), &raftstore.Options{
		Log: &wal.Options{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		return err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(n.dir, "snapshots"), 2, hclog.NewNullLogger())
	if err != nil {
		return err
	}
	_, n.trans = raft.NewInmemTransport(raft.ServerAddress(n.id))
	for _, p := range peers {
		if p != n && p.raft != nil {
			n.trans.Connect(raft.ServerAddress(p.id), p.trans)
			p.trans.Connect(raft.ServerAddress(n.id), n.trans)
		}
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = n.id
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.Logger = hclog.NewNullLogger()
	n.kv = &kv{m: map[string]string{}}
	n.raft, err = raft.NewRaft(cfg, n.kv, n.store, n.store, snaps, n.trans)
	return err
}

// stop cuts the node off and stops it, as a killed process stops: raft
// and the store go (the store's lock with them).
func (n *node) stop(peers []*node) error {
	n.trans.DisconnectAll()
	for _, p := range peers {
		if p != n && p.trans != nil {
			p.trans.Disconnect(raft.ServerAddress(n.id))
		}
	}
	err := n.raft.Shutdown().Error()
	n.raft = nil
	return errors.Join(err, n.store.Close())
}

func run(dir string, keys int, out io.Writer) error {
	var nodes []*node
	var servers []raft.Server
	for i := range 3 {
		id := raft.ServerID(fmt.Sprintf("node%d", i+1))
		nodes = append(nodes, &node{id: id, dir: filepath.Join(dir, string(id))})
		servers = append(servers, raft.Server{ID: id, Address: raft.ServerAddress(id)})
	}
	for _, n := range nodes {
		if err := n.start(nodes); err != nil {
			return err
		}
	}
	defer func() {
		for _, n := range nodes {
			if n.raft != nil {
				n.stop(nodes)
			}
		}
	}()
	// Bootstrapping an existing cluster (a second run on -dir) fails
	// harmlessly: the nodes already know their peers.
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil &&
		!errors.Is(err, raft.ErrCantBootstrap) {
		return err
	}
	set := func(prefix string) error {
		start := time.Now()
		for i := range keys {
			if err := apply(nodes, fmt.Sprintf("%s-%03d=%d", prefix, i, i)); err != nil {
				return err
			}
		}
		fmt.Fprintf(out, "wrote %d keys %q through the leader in %v\n", keys, prefix+"-*", time.Since(start).Round(time.Millisecond))
		return nil
	}
	if err := set("before"); err != nil {
		return err
	}
	if err := converged(nodes, keys); err != nil {
		return err
	}
	fmt.Fprintf(out, "all three nodes hold %d keys\n", keys)

	// Stop a follower, as if its process were killed.
	victim := nodes[0]
	for _, n := range nodes {
		if n.raft.State() != raft.Leader {
			victim = n
		}
	}
	last, _ := victim.store.LastIndex()
	if err := victim.stop(nodes); err != nil {
		return err
	}
	fmt.Fprintf(out, "stopped %s (its raft log ends at index %d)\n", victim.id, last)
	if err := set("while-down"); err != nil {
		return err
	}

	// Restart it from its journal directory: it recovers its log and
	// term from disk and the leader sends it what it missed.
	if err := victim.start(nodes); err != nil {
		return err
	}
	start := time.Now()
	if err := converged(nodes, 2*keys); err != nil {
		return err
	}
	last, _ = victim.store.LastIndex()
	fmt.Fprintf(out, "restarted %s from its directory: it caught up to index %d in %v\n",
		victim.id, last, time.Since(start).Round(time.Millisecond))
	key := fmt.Sprintf("while-down-%03d", keys-1)
	fmt.Fprintf(out, "%s reads %s = %s\n", victim.id, key, victim.kv.get(key))
	return nil
}

// apply applies cmd through whichever node leads, waiting for a leader.
func apply(nodes []*node, cmd string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n.raft == nil || n.raft.State() != raft.Leader {
				continue
			}
			err := n.raft.Apply([]byte(cmd), 5*time.Second).Error()
			if err == nil || (!errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost)) {
				return err
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no leader took %q within 10 s", cmd)
}

// converged waits until every running node holds at least want keys.
func converged(nodes []*node, want int) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		for _, n := range nodes {
			if n.raft != nil && n.kv.size() < want {
				ok = false
			}
		}
		if ok {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("the nodes did not all reach %d keys within 20 s", want)
}
