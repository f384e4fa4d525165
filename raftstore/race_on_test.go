//go:build race

package raftstore

// raceEnabled reports a -race build: tests that only move large buffers,
// with no goroutines meeting, skip themselves there (CI runs this module
// without -race too, against raft v1.7.3).
const raceEnabled = true
