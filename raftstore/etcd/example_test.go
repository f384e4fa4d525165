package etcd_test

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"

	"github.com/gojournal/journal/raftstore/etcd"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// A single-member raft group on a journal directory: bootstrap, campaign,
// propose, run the Ready loop until the proposals are applied; then restart
// from the directory and see raft hand the committed entries back.
func Example() {
	dir, err := os.MkdirTemp("", "raft-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	opts := &etcd.Options{Logger: slog.New(slog.DiscardHandler)}

	st, err := etcd.Open(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	// Bootstrap: a snapshot of index 0 that only names the voters.
	err = st.ApplySnapshot(&pb.Snapshot{Metadata: &pb.SnapshotMetadata{ConfState: &pb.ConfState{Voters: []uint64{1}}}})
	if err != nil {
		log.Fatal(err)
	}
	rn := newNode(st)
	if err := rn.Campaign(); err != nil {
		log.Fatal(err)
	}
	run(st, rn, []string{"x=1", "y=2"})
	if err := st.Close(); err != nil {
		log.Fatal(err)
	}

	// Restart: no snapshot was taken, so the state machine starts empty and
	// raft replays every committed entry.
	st, err = etcd.Open(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	last, _ := st.LastIndex()
	fmt.Println("after restart: log ends at", last, "commit", st.HardState().GetCommit())
	rn = newNode(st)
	if err := rn.Campaign(); err != nil {
		log.Fatal(err)
	}
	run(st, rn, []string{"z=3"})
	// Output:
	// applied x=1 at 2
	// applied y=2 at 3
	// after restart: log ends at 3 commit 3
	// applied x=1 at 2
	// applied y=2 at 3
	// applied z=3 at 5
}

// newNode starts member 1 on st. A state machine restored from st's
// snapshot has applied everything up to the snapshot's index: raft then
// hands back only the committed entries after it.
func newNode(st *etcd.Storage) *raft.RawNode {
	snap, err := st.Snapshot()
	if err != nil {
		log.Fatal(err)
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: st, Applied: snap.GetMetadata().GetIndex(),
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256,
		Logger: &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)},
	})
	if err != nil {
		log.Fatal(err)
	}
	return rn
}

// run handles Readys, proposing once the node leads, until every proposal
// is applied.
func run(st *etcd.Storage, rn *raft.RawNode, proposals []string) {
	pending := map[string]bool{}
	for _, p := range proposals {
		pending[p] = true
	}
	for len(pending) > 0 {
		if rn.BasicStatus().RaftState == raft.StateLeader && len(proposals) > 0 {
			for _, p := range proposals {
				if err := rn.Propose([]byte(p)); err != nil {
					log.Fatal(err)
				}
			}
			proposals = nil
		}
		if !rn.HasReady() {
			rn.Tick()
			continue
		}
		rd := rn.Ready()
		// 1. A snapshot from the leader replaces the log (and the state).
		if !raft.IsEmptySnap(rd.Snapshot) {
			if err := st.ApplySnapshot(rd.Snapshot); err != nil {
				log.Fatal(err)
			}
		}
		// 2. Entries and HardState are durable before any message goes.
		if err := st.Save(rd.HardState, rd.Entries); err != nil {
			log.Fatal(err)
		}
		// 3. Send rd.Messages to the peers (a single member has none).
		// 4. Apply what is committed.
		for _, e := range rd.CommittedEntries {
			if e.GetType() == pb.EntryType_EntryNormal && len(e.GetData()) > 0 {
				fmt.Printf("applied %s at %d\n", e.GetData(), e.GetIndex())
				delete(pending, string(e.GetData()))
			}
		}
		// 5. Tell raft the Ready is done.
		rn.Advance(rd)
	}
}
