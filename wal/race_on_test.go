//go:build race

package wal

// raceEnabled reports a -race build, in which sync.Pool drops a share of
// what is put back on purpose, so pooled buffers are allocated again.
const raceEnabled = true
