package raftstore_test

import (
	"fmt"
	"log"
	"os"

	"github.com/gojournal/journal/raftstore"
	"github.com/hashicorp/raft"
)

// A node of several raft groups keeps them all in one Shared store: each
// group's GroupStore is the raft.LogStore and raft.StableStore handed to
// raft.NewRaft for that group.
func ExampleOpenShared() {
	dir, _ := os.MkdirTemp("", "raftstore-example-")
	defer os.RemoveAll(dir)

	sh, err := raftstore.OpenShared(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer sh.Close()
	for id := uint64(1); id <= 2; id++ {
		g, err := sh.Group(id)
		if err != nil {
			log.Fatal(err)
		}
		// raft.NewRaft(conf, fsm, g, g, snapshots, transport) would
		// use it so; here, as raft would, store and read back.
		cmd := fmt.Sprintf("command of group %d", id)
		if err := g.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte(cmd)}}); err != nil {
			log.Fatal(err)
		}
	}
	g2, _ := sh.Group(2)
	var e raft.Log
	if err := g2.GetLog(1, &e); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("group 2, index 1: %s\n", e.Data)
	// Output: group 2, index 1: command of group 2
}
