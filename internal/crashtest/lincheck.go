package crashtest

// The concurrent model check: clients call the log at once on the
// crash-simulating file system, every call is recorded with its invocation
// and response, the power is cut, and the history followed by the recovery
// is checked against LinModel.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/wal"
)

// Concurrent is one history to run: every choice comes from Program, Seed
// and the flags, so a failure can be run again (thread timing still varies).
type Concurrent struct {
	Clients     int    // 1 to MaxClients goroutines
	Program     []byte // byte k is the call of client k%Clients; see call
	NoSync      bool
	Compression wal.Compression
	Recycle     bool // Options.RecycleSegments
	// CrashAfter cuts the power after that many mutating file-system
	// operations; 0 cuts it after the last call returned (the log open).
	CrashAfter int
	Mode       crashfs.CrashMode
	Seed       uint64 // the crash state's random choices
	// Exclude lists calls not to make (each becomes a Read), to look past
	// a known bug in one of them.
	Exclude []OpKind
}

// NewConcurrent draws a history from seed: clients calls each.
func NewConcurrent(seed uint64, clients, calls int) Concurrent {
	rng := rand.New(rand.NewPCG(seed, 0x6c696e))
	c := Concurrent{
		Clients: clients,
		Program: make([]byte, clients*calls),
		NoSync:  rng.IntN(2) == 0,
		Mode:    crashfs.CrashMode(rng.IntN(3)),
		Seed:    seed,
	}
	for i := range c.Program {
		c.Program[i] = byte(rng.Uint32())
	}
	if rng.IntN(2) == 0 {
		c.Compression = wal.S2
	}
	if rng.IntN(3) != 0 {
		c.CrashAfter = 1 + rng.IntN(60*clients*calls/10+20)
	}
	// Drawn last, so that a seed's other choices stay as they were.
	c.Recycle = rng.IntN(2) == 0
	return c
}

func (c Concurrent) String() string {
	return fmt.Sprintf("%d clients, %d calls, NoSync %v, compression %d, recycle %v, crash after %d FS ops (0: at the end), %v state",
		c.Clients, len(c.Program), c.NoSync, c.Compression, c.Recycle, c.CrashAfter, c.Mode)
}

// Options are the log options of the history.
func (c Concurrent) Options() wal.Options {
	return wal.Options{SegmentSize: wal.MinSegmentSize, NoSync: c.NoSync, Compression: c.Compression, RecycleSegments: c.Recycle}
}

// Run is what running a Concurrent history produced.
type Run struct {
	History []porcupine.Operation // the calls and, last, Recover
	Calls   int                   // calls made (Recover not counted)
	Crashed bool                  // the crash point was reached during the calls
	// State is the crash state as the power loss left it, before recovery
	// touched it (a pristine copy); Recovered what Recover read from it.
	State     *crashfs.FS
	Recovered Log
	// Dropped lists the errors of appends that linearized as dropped.
	Dropped []string
	// Recycled counts the segment files the log recycled before the
	// power cut (Options.RecycleSegments).
	Recycled uint64
}

// Hang is how long the calls of a history may take before it is reported
// as stuck (a call that never returns is a violation too).
var Hang = 20 * time.Second

// ErrHang is the violation of a history whose calls did not return. They
// still run: the caller should stop.
var ErrHang = errors.New("crashtest: calls did not return")

// Execute runs c, cuts the power and recovers. An error is a violation found
// before the linearizability check: a call that hung, or a crash state that
// does not open (the directory must always open).
func (c Concurrent) Execute() (*Run, error) {
	fsys := crashfs.New()
	if c.CrashAfter > 0 {
		fsys.SetCrashAfter(c.CrashAfter)
	}
	opts := c.Options()
	l, err := Open(fsys, opts)
	if err != nil {
		if !fsys.Crashed() {
			return nil, fmt.Errorf("Open of an empty directory: %w", err)
		}
		l = nil // crashed inside Open: the history is empty
	}
	h := &recorder{payloads: map[uint64][]byte{}}
	if l != nil {
		if err := h.run(l, c); err != nil {
			h.mu.Lock()
			defer h.mu.Unlock()
			return &Run{History: slices.Clone(h.ops), Calls: len(h.ops)}, err
		}
	}
	var recycled uint64
	if l != nil {
		recycled = l.Metrics().SegmentsRecycled
	}
	st := fsys.Crash(c.Mode, rand.New(rand.NewPCG(c.Seed, 0x637273)))
	if l != nil {
		l.Close() // the power is already cut: only releases its goroutines
	}
	run := &Run{Calls: len(h.ops), Crashed: fsys.Crashed(), State: st.Crash(crashfs.SyncedOnly, nil), Dropped: h.dropped, Recycled: recycled}
	_, got, err := Recover(st, opts, false)
	if err != nil {
		return run, fmt.Errorf("recovery failed on a crash state: %w", err)
	}
	run.Recovered = got
	ll := LinLog{First: got.First, Snapshot: got.Snapshot}
	for i := got.First; i <= got.Last; i++ {
		ll.IDs = append(ll.IDs, h.decode(got.Records[i]))
	}
	at := h.clock.Add(1)
	run.History = append(h.ops, porcupine.Operation{
		ClientId: c.Clients, Input: LinInput{Kind: OpRecover, Client: c.Clients},
		Call: at, Return: at + 1, Output: LinOutput{Log: ll},
	})
	return run, nil
}

// Check checks that the history is linearizable. Unknown means the checker
// ran out of time.
func (r *Run) Check(noSync bool, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(LinModel(noSync), r.History, timeout)
}

// Describe lists the history's calls in order of invocation.
func (r *Run) Describe() string {
	ops := slices.Clone(r.History)
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, "  [%4d, %4d] %s\n", op.Call, op.Return, DescribeCall(op.Input.(LinInput), op.Output.(LinOutput)))
	}
	return b.String()
}

// recorder runs the clients and records their calls.
type recorder struct {
	clock    atomic.Int64 // invocations and responses, in real-time order
	stop     atomic.Bool  // a call failed with the crash: no new calls
	mu       sync.Mutex
	ops      []porcupine.Operation
	payloads map[uint64][]byte
	dropped  []string
	nextID   atomic.Uint64
	snap     atomic.Uint64 // index of the last checkpoint that succeeded
}

func (h *recorder) run(l *wal.Log, c Concurrent) error {
	var wg sync.WaitGroup
	done := make(chan struct{})
	inflight := make([]atomic.Pointer[LinInput], c.Clients)
	start := make(chan struct{}) // all clients start together, so calls overlap
	for k := range c.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			cl := &client{h: h, l: l, id: k, now: &inflight[k], exclude: c.Exclude}
			for i := k; i < len(c.Program) && !h.stop.Load(); i += c.Clients {
				cl.call(c.Program[i])
			}
			cl.closeReader()
		}()
	}
	close(start)
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(Hang):
	}
	var stuck []string
	for k := range inflight {
		if in := inflight[k].Load(); in != nil {
			stuck = append(stuck, DescribeCall(*in, LinOutput{ErrMsg: "(no response)", Err: ErrKindOther}))
		}
	}
	return fmt.Errorf("%w within %v (spinning or deadlocked): %s\n%s", ErrHang, Hang, strings.Join(stuck, "; "), goroutines())
}

// goroutines is the stack of every goroutine: where a hung call waits, and
// what holds it up.
func goroutines() string {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return "goroutines:\n" + string(buf[:n])
}

// decode maps a record to the payload id it is exactly, or Garbage.
func (h *recorder) decode(rec []byte) uint64 {
	id, ok := PayloadID(rec)
	h.mu.Lock()
	want, known := h.payloads[id]
	h.mu.Unlock()
	if !ok || !known || !bytes.Equal(rec, want) {
		return Garbage
	}
	return id
}

func (h *recorder) record(in LinInput, call, ret int64, out LinOutput) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: in.Client, Input: in, Call: call, Output: out, Return: ret})
	if dropped(in, out) {
		h.dropped = append(h.dropped, out.ErrMsg)
	}
}

// client is one goroutine of the history.
type client struct {
	h       *recorder
	l       *wal.Log
	id      int
	r       *wal.Reader
	now     *atomic.Pointer[LinInput]
	exclude []OpKind
}

// opOf is the call a program byte makes (see call).
func opOf(b byte) OpKind {
	switch op := b & 15; {
	case b == 0xff:
		return OpClose
	case op <= 4:
		return OpAppend
	case op <= 6:
		return OpBatch
	case op <= 8, op == 15:
		return OpRead
	case op <= 11:
		return OpTruncateFront + OpKind(op-9)
	case op == 12:
		return OpSync
	}
	return OpNext
}

// call decodes one program byte into a call and makes it: the low four bits
// choose the call (see opOf), the high four its argument.
func (c *client) call(b byte) {
	arg := uint64(b >> 4)
	in := LinInput{Client: c.id}
	first, last := c.l.FirstIndex(), c.l.LastIndex()
	var fn func() LinOutput
	in.Kind = opOf(b)
	if slices.Contains(c.exclude, in.Kind) {
		in.Kind = OpRead
	}
	switch in.Kind {
	case OpClose:
		fn = func() LinOutput { return result(c.l.Close()) }
	case OpAppend:
		in.IDs = c.newPayloads(1, arg)
		fn = func() LinOutput { return appended(c.l.Append(c.h.payload(in.IDs[0]))) }
	case OpBatch:
		in.IDs = c.newPayloads(int(arg%4), arg)
		recs := make([][]byte, len(in.IDs))
		for k, id := range in.IDs {
			recs[k] = c.h.payload(id)
		}
		fn = func() LinOutput { return appended(c.l.AppendBatch(recs)) }
	case OpRead:
		in.Index = first - 1 + arg%(last-first+3)
		fn = func() LinOutput { return c.read(in.Index) }
	case OpTruncateFront:
		// mostly allowed: at most the snapshot's index plus one; up to
		// two past the end (a restart there), and on an empty log
		// sometimes below its start
		in.Index = first + arg%(last-first+4)
		if first > last && arg%3 == 0 {
			in.Index = 1 + arg%first
		}
		if snap := c.h.snap.Load(); snap != 0 && arg < 12 {
			in.Index = min(in.Index, snap+1)
		}
		fn = func() LinOutput { return result(c.l.TruncateFront(in.Index)) }
	case OpTruncateBack:
		// mostly a few records off the end, sometimes more
		in.Index = max(first-1, c.h.snap.Load(), last-min(last, arg%4))
		if arg >= 13 {
			in.Index = first - 1 + arg%(last-first+2)
		}
		fn = func() LinOutput { return result(c.l.TruncateBack(in.Index)) }
	case OpCheckpoint:
		in.Index = first - 1 + arg%(last-first+2)
		fn = func() LinOutput { return c.checkpoint(in.Index) }
	case OpSync:
		fn = func() LinOutput { return result(c.l.Sync()) }
	case OpNext:
		if c.r == nil || arg == 0 {
			c.closeReader()
			in.Index = max(1, first-1+arg%3)
			c.r = c.l.NewReader(in.Index)
		}
		fn = c.next
	}
	c.now.Store(&in)
	call := c.h.clock.Add(1)
	out := fn()
	ret := c.h.clock.Add(1)
	c.now.Store(nil)
	c.h.record(in, call, ret, out)
	if out.Err == ErrKindUnknown {
		c.h.stop.Store(true)
	}
}

// newPayloads makes n records, sized by arg: mostly small, some a few KiB
// so that segments rotate.
func (c *client) newPayloads(n int, arg uint64) []uint64 {
	ids := make([]uint64, n)
	for k := range ids {
		ids[k] = c.h.nextID.Add(1)
		size := int(arg) * 37
		if arg >= 12 {
			size = int(arg-11) * 6000
		}
		c.h.mu.Lock()
		c.h.payloads[ids[k]] = Payload(ids[k], size)
		c.h.mu.Unlock()
	}
	return ids
}

func (h *recorder) payload(id uint64) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.payloads[id]
}

func result(err error) LinOutput {
	out := LinOutput{Err: Classify(err)}
	if err != nil {
		out.ErrMsg = err.Error()
	}
	return out
}

func appended(index uint64, err error) LinOutput {
	out := result(err)
	out.Index = index
	return out
}

func (c *client) read(index uint64) LinOutput {
	rec, err := c.l.Read(index)
	out := result(err)
	if err == nil {
		out.ID = c.h.decode(rec)
	}
	return out
}

func (c *client) checkpoint(index uint64) LinOutput {
	out := result(c.l.Checkpoint(index, func(w io.Writer) error {
		_, err := w.Write(SnapshotState(index))
		return err
	}))
	if out.Err == ErrNone {
		c.h.snap.Store(index)
	}
	return out
}

func (c *client) next() LinOutput {
	if !c.r.Next() {
		out := result(c.r.Err())
		if out.Err != ErrNone {
			c.closeReader() // a Reader's error is final: the next call makes a new one
		}
		return out
	}
	rec := c.r.Record()
	return LinOutput{More: true, Index: c.r.Index(), ID: c.h.decode(rec)}
}

func (c *client) closeReader() {
	if c.r != nil {
		c.r.Close()
		c.r = nil
	}
}

// Explain says where the check got stuck: the longest sequence of calls the
// model could explain, the state it left, and the earliest call left over
// (usually the one that misbehaved, or the one its result contradicts).
func (r *Run) Explain(noSync bool, info porcupine.LinearizationInfo) string {
	var best []porcupine.Operation
	for _, part := range info.PartialLinearizationsOperations() {
		for _, seq := range part {
			if len(seq) > len(best) {
				best = seq
			}
		}
	}
	m := LinModel(noSync)
	state := m.Init()
	for _, op := range best {
		_, state = m.Step(state, op.Input, op.Output)
	}
	var next *porcupine.Operation
	for i := range r.History {
		op := &r.History[i]
		if !slices.ContainsFunc(best, func(o porcupine.Operation) bool { return o.Call == op.Call }) &&
			(next == nil || op.Call < next.Call) {
			next = op
		}
	}
	s := fmt.Sprintf("the model explains %d of %d calls, leaving %s", len(best), len(r.History), m.DescribeState(state))
	if next != nil {
		s += fmt.Sprintf("; the earliest call left over: [%d, %d] %s", next.Call, next.Return, DescribeCall(next.Input.(LinInput), next.Output.(LinOutput)))
	}
	return s
}
