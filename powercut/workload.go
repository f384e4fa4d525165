package powercut

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gojournal/journal/internal/crashtest"
	"github.com/gojournal/journal/wal"
)

// The workload process: the test binary run again with these variables
// set. It appends to the log until the power is cut and it is killed.
const (
	EnvChildDir   = "JOURNAL_POWERCUT_CHILD_DIR" // the log directory; set only in the child
	EnvChildRound = "JOURNAL_POWERCUT_CHILD_ROUND"
	EnvChildSeed  = "JOURNAL_POWERCUT_CHILD_SEED"
)

// Workload parameters.
const (
	// Writers is how many goroutines append at once, so group commit
	// gathers several records per fdatasync.
	Writers = 4
	// SegmentSize is the log's segment size: the smallest allowed, so
	// rotations (segment creation, sealing, directory syncs) happen often.
	SegmentSize = wal.MinSegmentSize
	// RoundBytes bounds what one round appends; a writer that finds the
	// budget spent stops (and the cut finds the log idle).
	RoundBytes = 8 << 20
)

// LogOptions are the options the workload and the checker open the log
// with.
func LogOptions() *wal.Options {
	return &wal.Options{
		SegmentSize: SegmentSize,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// Shape is how the workload's writers draw their calls (crashtest
// streams, replayed by the checker): a quarter are batches of 2 to 6
// records; records are mostly small, some of several KiB, and now and then
// one larger than a segment (which gets a segment of its own).
var Shape = crashtest.Shape{
	Batch: func(r *rand.Rand) int {
		if r.IntN(4) == 0 {
			return 2 + r.IntN(5)
		}
		return 1
	},
	Size: func(r *rand.Rand) int {
		switch p := r.IntN(100); {
		case p < 60:
			return r.IntN(256)
		case p < 90:
			return 256 + r.IntN(4096)
		case p < 99:
			return 4096 + r.IntN(12<<10)
		}
		return 40<<10 + r.IntN(60<<10)
	},
}

// ChildMain is the workload process. It opens the log in dir, prints
//
//	ready FIRST LAST CLEAN
//
// (CLEAN is 1 when Open repaired nothing)
// and then, from Writers goroutines, appends records of the given round
// with Append (single records) and AppendBatch (2 to 6 records), printing
//
//	ack INDEX WRITER SEQ
//
// for each record once its call has returned nil. A writer whose call fails
// prints "fail WRITER ERROR" and stops. It returns the exit code.
func ChildMain(dir string, round uint32, seed uint64) int {
	l, err := wal.Open(dir, LogOptions())
	if err != nil {
		fmt.Fprintf(os.Stderr, "powercut child: open %s: %v\n", dir, err)
		return 2
	}
	rec := l.Recovered()
	clean := 0
	if rec.Torn == nil && len(rec.Removed) == 0 {
		clean = 1
	}
	var out sync.Mutex
	say := func(s string) {
		out.Lock()
		defer out.Unlock()
		os.Stdout.WriteString(s)
	}
	say(fmt.Sprintf("ready %d %d %d\n", l.FirstIndex(), l.LastIndex(), clean))

	var spent atomic.Int64
	var wg sync.WaitGroup
	for w := range uint32(Writers) {
		wg.Go(func() {
			stream := crashtest.NewStream(seed, writerID(round, w), Shape)
			for spent.Load() < RoundBytes {
				c := stream.Next()
				for _, r := range c.Recs {
					spent.Add(int64(len(r)))
				}
				var first uint64
				var err error
				if c.Batch {
					first, err = l.AppendBatch(c.Recs)
				} else {
					first, err = l.Append(c.Recs[0])
				}
				if err != nil {
					say(fmt.Sprintf("fail %d %v\n", w, err))
					return
				}
				var acks []byte
				for k := range c.Recs {
					acks = fmt.Appendf(acks, "ack %d %d %d\n", first+uint64(k), w, c.Seq+uint64(k))
				}
				say(string(acks))
			}
		})
	}
	wg.Wait()
	say("idle\n")
	// Keep the log open, as a process killed by the power cut would.
	for {
		time.Sleep(time.Hour)
	}
}

// ChildFromEnv runs the workload if this process is a workload child and
// returns its exit code; ok is false in the parent.
func ChildFromEnv() (code int, ok bool) {
	dir := os.Getenv(EnvChildDir)
	if dir == "" {
		return 0, false
	}
	round, err1 := strconv.ParseUint(os.Getenv(EnvChildRound), 10, 32)
	seed, err2 := strconv.ParseUint(os.Getenv(EnvChildSeed), 10, 64)
	if err1 != nil || err2 != nil {
		fmt.Fprintf(os.Stderr, "powercut child: bad %s or %s\n", EnvChildRound, EnvChildSeed)
		return 2, true
	}
	return ChildMain(dir, uint32(round), seed), true
}
