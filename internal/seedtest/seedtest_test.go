package seedtest

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// recorder stands in for the test given to Seed, recording what Seed logs
// and how it fails. Fatalf ends the goroutine as testing.T's does, so a
// Seed that went on after failing would be seen.
type recorder struct {
	testing.TB
	logs  []string
	fatal string
}

func (r *recorder) Helper() {}

func (r *recorder) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// seedOf runs Seed against a recorder on its own goroutine and reports
// whether Seed returned.
func seedOf(t *testing.T) (seed uint64, returned bool, r *recorder) {
	r = &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		seed = Seed(r)
		returned = true
	}()
	<-done
	return seed, returned, r
}

func TestBadSeedFailsTheTest(t *testing.T) {
	for _, v := range []string{"x", "-1", "1.5", " 7", "0x10", "18446744073709551616"} {
		t.Run(v, func(t *testing.T) {
			t.Setenv(Env, v)
			_, returned, r := seedOf(t)
			if returned {
				t.Fatalf("Seed returned with %s=%q; want the test failed", Env, v)
			}
			if want := fmt.Sprintf("%s=%q", Env, v); !strings.HasPrefix(r.fatal, want) {
				t.Errorf("failure %q; want it to start with %q", r.fatal, want)
			}
			if len(r.logs) != 0 {
				t.Errorf("logged %q before failing; want no seed reported", r.logs)
			}
		})
	}
}

func TestSetSeedReplays(t *testing.T) {
	for _, s := range []uint64{0, 1, 1795736587345503228, 1<<64 - 1} {
		t.Setenv(Env, fmt.Sprint(s))
		got, returned, r := seedOf(t)
		if !returned || got != s {
			t.Fatalf("%s=%d: Seed returned %d (returned %v, failure %q)", Env, s, got, returned, r.fatal)
		}
		want := fmt.Sprintf("seed %d (replay with JOURNAL_SEED=%d)", s, s)
		if len(r.logs) != 1 || r.logs[0] != want {
			t.Errorf("logged %q; want [%q]", r.logs, want)
		}
		// Two runs with the seed draw the same sequence, and it is the
		// one the replaced helpers drew, so their printed seeds replay.
		a, b := Rand(t), Rand(t)
		old := rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
		for i := range 100 {
			x, y, z := a.Uint64(), b.Uint64(), old.Uint64()
			if x != y || x != z {
				t.Fatalf("seed %d, draw %d: %d and %d, old derivation %d", s, i, x, y, z)
			}
		}
	}
}

// TestUnsetSeedIsFresh: without JOURNAL_SEED (or with it empty) each call
// draws a new seed and reports it.
func TestUnsetSeedIsFresh(t *testing.T) {
	t.Setenv(Env, "")
	a, okA, ra := seedOf(t)
	b, okB, rb := seedOf(t)
	if !okA || !okB {
		t.Fatalf("Seed failed without %s: %q %q", Env, ra.fatal, rb.fatal)
	}
	if a == b {
		t.Errorf("two fresh seeds are both %d", a)
	}
	for _, c := range []struct {
		seed uint64
		logs []string
	}{{a, ra.logs}, {b, rb.logs}} {
		want := fmt.Sprintf("seed %d (replay with JOURNAL_SEED=%d)", c.seed, c.seed)
		if len(c.logs) != 1 || c.logs[0] != want {
			t.Errorf("logged %q; want [%q]", c.logs, want)
		}
	}
}
