// Package fuzz holds journal's native Go fuzz targets. It has no code of its
// own: the targets live in its tests, seeded from testdata/fuzz.
//
// Run one with, for example:
//
//	go test ./fuzz -run='^$' -fuzz=FuzzSegmentDecode -fuzztime=60s
//
// A plain "go test ./fuzz" replays the seed corpus and every failure the
// fuzzer has saved, as regression tests.
package fuzz
