//go:build !journal_portable

package main

// portableBuild reports a journal_portable build: the log's lock is an
// fcntl record lock, not a flock.
const portableBuild = false
