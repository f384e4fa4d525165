//go:build !race

package raftstore

// raceEnabled reports a -race build (see race_on_test.go).
const raceEnabled = false
