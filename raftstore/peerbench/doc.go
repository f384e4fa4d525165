// Package peerbench benchmarks raftstore beside hashicorp/raft-wal and
// raft-boltdb/v2, through hashicorp/raft/bench and a few raft-shaped
// cases of its own, in one run. TestDifferentialAgainstBoltDB runs one
// random sequence of raft's calls on raft-boltdb and on raftstore's Store
// and Shared, comparing every answer (its seed is printed and replayed
// with JOURNAL_SEED).
//
// It is a module of its own so that the peers' dependencies stay out of
// raftstore's go.mod. raft-boltdb/v2 v2.3.1 imports
// github.com/hashicorp/go-metrics/compat, which go-metrics v0.7.0 (the
// version hashicorp/raft v1.8.0 requires) no longer has: this module
// therefore builds against raft v1.7.3 and go-metrics v0.5.4. The
// LogStore interface is the same in both raft versions, and raftstore's
// own tests run against both.
package peerbench
