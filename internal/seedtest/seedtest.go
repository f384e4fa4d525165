// Package seedtest owns the seed of the repository's random tests: where it
// comes from (the JOURNAL_SEED environment variable, else a fresh random
// value), how a test reports it, and the generator derived from it. A test
// that draws its choices from here prints one line naming its seed, and
// JOURNAL_SEED set to that number replays the same choices.
//
// The derivation in New is fixed: seeds printed by earlier runs, and by the
// per-package helpers this package replaced, must keep replaying the same
// runs. A test that derives its generators otherwise (another PCG stream,
// one generator per round) takes Seed and keeps its own derivation.
package seedtest

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// Env is the environment variable that replays a random test's choices.
// Tests that start child processes pass the seed on under this name.
const Env = "JOURNAL_SEED"

// Seed returns the seed of a random test: the value of JOURNAL_SEED when it
// is set and not empty, else a fresh random one. A value that is not a
// decimal uint64 fails the test, so a mistyped replay never silently runs
// another seed. Seed logs "seed N (replay with JOURNAL_SEED=N)".
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv(Env); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", Env, s, err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", seed, Env, seed)
	return seed
}

// Rand returns New(Seed(t)).
func Rand(t testing.TB) *rand.Rand {
	t.Helper()
	return New(Seed(t))
}

// New returns the generator of seed s: PCG with s as its state seed and
// s^0x9e3779b97f4a7c15 (the golden-ratio constant, so the two words differ)
// as its stream.
func New(s uint64) *rand.Rand {
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}
