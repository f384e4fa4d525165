//go:build race

package etcd

// raceEnabled reports a -race build. The crash and failure enumerations run
// one goroutine over an in-memory file system, where the race detector
// finds little and slows them tenfold, so under it they sample their cases.
const raceEnabled = true
