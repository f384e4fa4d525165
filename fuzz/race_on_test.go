//go:build race

package fuzz

// raceEnabled reports a -race build.
const raceEnabled = true
