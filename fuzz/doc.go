// Package fuzz holds journal's cross-package native Go fuzz targets and the
// crash battery. It has no code of its own: the targets live in its tests,
// seeded from testdata/fuzz. A target that needs one package's internals
// lives next to that package (FuzzSegmentDecode in package segment).
//
// Run one with, for example:
//
//	go test ./fuzz -run='^$' -fuzz=FuzzCrashOps -fuzztime=60s
//
// A plain "go test ./fuzz" replays the seed corpus and every failure the
// fuzzer has saved, as regression tests.
package fuzz
