package crashtest

// The sequential specification of a wal.Log, for checking that concurrent
// histories are linearizable (with github.com/anishathalye/porcupine) and
// that what a crash leaves is a state the history could have made durable.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/wal"
)

// OpKind is a call of the concurrent model check.
type OpKind uint8

// The calls. Recover is not a call to the log: it is the power loss and the
// Open that follows, added after every other call returned.
const (
	OpAppend OpKind = iota
	OpBatch
	OpRead
	OpTruncateFront
	OpTruncateBack
	OpCheckpoint
	OpSync
	OpNext // Reader.Next
	OpClose
	OpRecover
)

// AllOps lists the calls a history makes.
var AllOps = []OpKind{OpAppend, OpBatch, OpRead, OpTruncateFront, OpTruncateBack, OpCheckpoint, OpSync, OpNext, OpClose}

var opNames = [...]string{"Append", "AppendBatch", "Read", "TruncateFront", "TruncateBack", "Checkpoint", "Sync", "Reader.Next", "Close", "Recover"}

func (k OpKind) String() string { return opNames[k] }

// Garbage is the payload id of a record that is not exactly a record the
// workload appended.
const Garbage = ^uint64(0)

// ErrKind is what an error means to the model. The model allows each kind
// only where the sequential log would return it.
type ErrKind uint8

const (
	ErrNone       ErrKind = iota
	ErrKindClosed         // wal.ErrClosed
	ErrKindNotFound
	ErrKindOutOfRange
	ErrKindCompacted // wal.ErrCompacted
	ErrKindTruncated // wal.ErrTruncated
	// ErrKindUnknown is a call that failed because the file system crashed
	// under it (crashfs.ErrCrashed, or wal.ErrFailed after that): it may or
	// may not have taken effect.
	ErrKindUnknown
	// ErrKindOther is any other error: a violation wherever it occurs.
	ErrKindOther
)

// Classify maps an error returned by the log to its ErrKind.
func Classify(err error) ErrKind {
	switch {
	case err == nil:
		return ErrNone
	case errors.Is(err, crashfs.ErrCrashed), errors.Is(err, wal.ErrFailed):
		return ErrKindUnknown
	case errors.Is(err, wal.ErrClosed):
		return ErrKindClosed
	case errors.Is(err, wal.ErrNotFound):
		return ErrKindNotFound
	case errors.Is(err, wal.ErrOutOfRange):
		return ErrKindOutOfRange
	case errors.Is(err, wal.ErrCompacted):
		return ErrKindCompacted
	case errors.Is(err, wal.ErrTruncated):
		return ErrKindTruncated
	}
	return ErrKindOther
}

// LinInput is a call: what it was asked.
type LinInput struct {
	Kind   OpKind
	Client int
	IDs    []uint64 // Append: one payload id; AppendBatch: any number
	// Index is the argument of Read, the truncations and Checkpoint; for
	// Reader.Next, nonzero when the call creates the Reader: NewReader(Index).
	Index uint64
}

// LinOutput is what a call returned.
type LinOutput struct {
	Err    ErrKind
	ErrMsg string // the error's text, for reports
	Index  uint64 // Append, AppendBatch: the first index; Reader.Next: Index()
	ID     uint64 // Read, Reader.Next: the payload id read (Garbage if none)
	More   bool   // Reader.Next returned true
	Log    LinLog // Recover
}

// LinLog is a recovered log as payload ids.
type LinLog struct {
	First    uint64
	IDs      []uint64
	Snapshot uint64
}

// MaxClients bounds the clients of one history (each may own a Reader).
const MaxClients = 8

// linState is the sequential log. It is a comparable value, so porcupine
// can compare states with ==.
type linState struct {
	first  uint64
	recs   string // per record: payload id (8 bytes) and 1 if it ends its call
	snap   uint64 // snapshot index, 0: none
	synced uint64 // records up to here survive a power loss
	closed bool
	// failed is set once a call failed with the crash: the log is failed
	// (wal.ErrFailed), and reads may fail too (never return wrong data).
	failed bool
	// gone holds the payload ids (8 bytes each) of records whose append
	// returned ErrTruncated: a TruncateBack dropped them, so they must not
	// survive.
	gone string
	// viewFirst and viewRecs, once the crash failed the log (viewSet), are
	// the log as it was before the first call the crash cut. The failed
	// log's reads may still show it: the outcome of that call (records an
	// append wrote, records a truncation dropped) is known only once
	// recovery has read the disk. See wal.ErrFailed.
	viewFirst uint64
	viewRecs  string
	viewSet   bool
	// readers[c] is the next index client c's Reader returns; 0: none.
	// returned[c] is the payload id of the record it returned last (0:
	// none), and stopped[c] the error that stopped it (sticky).
	readers  [MaxClients]uint64
	returned [MaxClients]uint64
	stopped  [MaxClients]ErrKind
}

const recWidth = 9

func (s linState) n() uint64    { return uint64(len(s.recs) / recWidth) }
func (s linState) last() uint64 { return s.first - 1 + s.n() }

// id is the payload id at index i, which must be in [first, last].
func (s linState) id(i uint64) uint64 {
	k := (i - s.first) * recWidth
	return binary.LittleEndian.Uint64([]byte(s.recs[k : k+8]))
}

// endsCall reports whether a crash may cut the log right after index i:
// the record ends its Append or AppendBatch (or a truncation cut there).
func (s linState) endsCall(i uint64) bool {
	return i < s.first || s.recs[(i-s.first)*recWidth+8] == 1
}

func (s linState) appendIDs(ids []uint64) linState {
	b := []byte(s.recs)
	for k, id := range ids {
		b = binary.LittleEndian.AppendUint64(b, id)
		b = append(b, boolByte(k == len(ids)-1))
	}
	s.recs = string(b)
	return s
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// dropFront drops the records before index.
func (s linState) dropFront(index uint64) linState {
	s.recs = s.recs[(index-s.first)*recWidth:]
	s.first = index
	return s
}

// truncateFront is TruncateFront(index): it drops the records before
// index, or, past the end or below the start, empties the log so that it
// continues at index.
func (s linState) truncateFront(index uint64) linState {
	if index >= s.first && index <= s.last()+1 {
		return s.dropFront(index)
	}
	s.recs, s.first, s.synced = "", index, min(s.synced, index-1)
	return s.dropReturned(index - 1)
}

// dropReturned marks the record each Reader returned last as dropped when
// it lies after index: a TruncateBack to index, or a restart at index+1,
// took it out of the log's history. The Reader must stop with
// ErrTruncated even once its index holds another record and that record
// is released too.
//
// Not once the crash failed the log: the calls that may take effect then
// are the one it cut and those failing after it, none of which changes
// the log a failed Log's Readers still read (see failedRead), and nothing
// can fill a dropped index again, so comparing the Reader's record with
// the log, as nextStep does, suffices.
func (s linState) dropReturned(index uint64) linState {
	if s.failed {
		return s
	}
	for c, pos := range s.readers {
		if pos != 0 && s.returned[c] != 0 && pos-1 > index {
			s.returned[c] = droppedID
		}
	}
	return s
}

// droppedID is returned[c] once a TruncateBack dropped that record: no
// record has it, and it is not 0 (nothing returned).
const droppedID = Garbage - 1

// dropBack drops the records after index; the record at index now ends
// what a crash may keep.
func (s linState) dropBack(index uint64) linState {
	s.recs = s.recs[:(index+1-s.first)*recWidth]
	if index >= s.first {
		b := []byte(s.recs)
		b[len(b)-1] = 1
		s.recs = string(b)
	}
	s.synced = min(s.synced, index)
	return s.dropReturned(index)
}

// LinModel is the sequential specification of a log opened with the given
// NoSync. Every call linearizes at one point between its invocation and its
// response; Recover, after every call, checks the state a power loss left.
func LinModel(noSync bool) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []any { return []any{linState{first: 1}} },
		Step: func(state, input, output any) []any {
			s, in, out := state.(linState), input.(LinInput), output.(LinOutput)
			if out.Err == ErrKindUnknown {
				// A call the crash cut: as if it never ran, or as if it
				// took effect (what it returned tells nothing).
				if !s.failed {
					s.viewFirst, s.viewRecs, s.viewSet = s.first, s.recs, true
				}
				s.failed = true
				next := []any{s}
				if t, ok := effect(s, in, noSync); ok {
					next = append(next, t)
					if in.Kind == OpCheckpoint {
						// The snapshot committed, the release did not.
						s.snap = in.Index
						next = append(next, s)
					}
				}
				return next
			}
			if s.viewSet && (in.Kind == OpRead || in.Kind == OpNext) {
				return failedRead(s, in, out, noSync)
			}
			if dropped(in, out) {
				// It appended, and a TruncateBack dropped some of the
				// records (at least the last) before it returned.
				if t, ok := appendStep(s, in, LinOutput{Index: s.last() + 1}, noSync); ok {
					return []any{t.forget(in.IDs[len(in.IDs)-1:])}
				}
				return nil
			}
			if t, ok := step(s, in, out, noSync); ok {
				return []any{t}
			}
			return nil
		},
		DescribeOperation: describeOp,
		DescribeState:     func(state any) string { return describeState(state.(linState)) },
	}
	return nm.ToModel()
}

// dropped reports whether out is an append's ErrTruncated: a TruncateBack
// racing the append dropped its records, or (a batch) some of them, the
// last included, keeping a prefix (see wal.Log.AppendBatch). Any other
// error from an append is a violation, ErrClosed included: Close flushes
// the appends given an index before it takes effect, so an append that
// gets ErrClosed linearizes after Close and appended nothing.
func dropped(in LinInput, out LinOutput) bool {
	return (in.Kind == OpAppend || in.Kind == OpBatch) && len(in.IDs) > 0 && out.Err == ErrKindTruncated
}

// forget notes that ids must not survive.
func (s linState) forget(ids []uint64) linState {
	b := []byte(s.gone)
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint64(b, id)
	}
	s.gone = string(b)
	return s
}

func (s linState) isGone(id uint64) bool {
	for k := 0; k < len(s.gone); k += 8 {
		if binary.LittleEndian.Uint64([]byte(s.gone[k:k+8])) == id {
			return true
		}
	}
	return false
}

// effect is the state after call in succeeded, whatever it returned.
func effect(s linState, in LinInput, noSync bool) (linState, bool) {
	out := LinOutput{Index: s.last() + 1}
	switch in.Kind {
	case OpClose:
		s.closed = true
		return s, true
	case OpAppend, OpBatch, OpTruncateFront, OpTruncateBack, OpCheckpoint, OpSync:
		return step(s, in, out, noSync)
	}
	return s, false // reads change nothing a crash keeps
}

// step applies call in with result out to s, reporting whether the
// sequential log could have returned out.
func step(s linState, in LinInput, out LinOutput, noSync bool) (linState, bool) {
	if in.Kind == OpRecover {
		return s, recovered(s, out.Log)
	}
	if s.closed {
		return s, out.Err == ErrKindClosed && !out.More
	}
	if s.failed && out.Err != ErrNone && (in.Kind == OpRead || in.Kind == OpNext) {
		return s, true
	}

	switch in.Kind {
	case OpAppend, OpBatch:
		return appendStep(s, in, out, noSync)
	case OpRead:
		if in.Index < s.first || in.Index > s.last() {
			return s, out.Err == ErrKindNotFound
		}
		return s, out.Err == ErrNone && out.ID == s.id(in.Index)
	case OpTruncateFront:
		// Past the end, or below the start of an empty log, the log
		// restarts at the index, unless a snapshot binds it.
		ok := in.Index >= 1 && (s.snap == 0 || in.Index <= s.snap+1) && (in.Index >= s.first || (s.n() == 0 && s.snap == 0))
		return okOrOutOfRange(s, ok, out, func() linState { return s.truncateFront(in.Index) })
	case OpTruncateBack:
		ok := in.Index+1 >= s.first && in.Index <= s.last() && in.Index >= s.snap
		return okOrOutOfRange(s, ok, out, func() linState { return s.dropBack(in.Index) })
	case OpCheckpoint:
		ok := in.Index >= 1 && in.Index+1 >= s.first && in.Index <= s.last()
		return okOrOutOfRange(s, ok, out, func() linState {
			s.snap = in.Index
			return s.dropFront(in.Index + 1)
		})
	case OpSync:
		s.synced = s.last()
		return s, out.Err == ErrNone
	case OpNext:
		return nextStep(s, in, out)
	case OpClose:
		s.closed, s.synced = true, s.last()
		return s, out.Err == ErrNone
	}
	return s, false
}

// failedRead is a read of the log the crash failed: it sees the log as
// the model has it, or as it was before the first call the crash cut.
func failedRead(s linState, in LinInput, out LinOutput, noSync bool) []any {
	var next []any
	if t, ok := step(s, in, out, noSync); ok {
		next = append(next, t)
	}
	v := s
	v.first, v.recs = s.viewFirst, s.viewRecs
	if t, ok := step(v, in, out, noSync); ok {
		// A read changes only its Reader. What it saw of the view says
		// nothing of what is durable in the state the crash cut to.
		t.first, t.recs, t.synced = s.first, s.recs, s.synced
		next = append(next, t)
	}
	return next
}

func okOrOutOfRange(s linState, ok bool, out LinOutput, apply func() linState) (linState, bool) {
	if !ok {
		return s, out.Err == ErrKindOutOfRange
	}
	return apply(), out.Err == ErrNone
}

// appendStep: the records go at LastIndex+1.
func appendStep(s linState, in LinInput, out LinOutput, noSync bool) (linState, bool) {
	if out.Err != ErrNone || out.Index != s.last()+1 {
		return s, false
	}
	s = s.appendIDs(in.IDs)
	if !noSync {
		s.synced = s.last()
	}
	return s, true
}

// nextStep: a Reader returns the durable records in order from where it
// stands, false at the end of those, ErrCompacted once records it has yet to return were
// released, ErrTruncated once the record it returned last was dropped by
// TruncateBack (replaced, past the end, or replaced and then released);
// both are sticky.
func nextStep(s linState, in LinInput, out LinOutput) (linState, bool) {
	c := in.Client
	if in.Index != 0 { // NewReader(in.Index)
		s.readers[c], s.returned[c], s.stopped[c] = in.Index, 0, ErrNone
	}
	stop := func(e ErrKind) (linState, bool) {
		s.stopped[c] = e
		return s, !out.More && out.Err == e
	}
	pos, last := s.readers[c], s.returned[c]
	switch {
	case s.stopped[c] != ErrNone:
		return stop(s.stopped[c])
	case pos < s.first:
		return stop(ErrKindCompacted)
	case last == droppedID || last != 0 && pos-1 >= s.first && (pos-1 > s.last() || s.id(pos-1) != last):
		return stop(ErrKindTruncated)
	case pos > s.last() || (pos > s.synced && !out.More):
		// Readers see durable records only: with NoSync, the log may end
		// for them anywhere from the last Sync on.
		return s, !out.More && out.Err == ErrNone
	}
	// A record a Reader returned is durable (a group commit that
	// fdatasyncs, such as a rotation, may have made it so without a
	// Sync), and so is everything before it: a power loss must keep it.
	s.readers[c], s.returned[c] = pos+1, s.id(pos)
	s.synced = max(s.synced, pos)
	return s, out.More && out.Err == ErrNone && out.Index == pos && out.ID == s.id(pos)
}

// recovered reports whether a power loss in state s may leave log: the
// snapshot and FirstIndex as they are, and the records a prefix of the
// log's that keeps at least every durable record and cuts no call in two.
func recovered(s linState, log LinLog) bool {
	if log.First != s.first || log.Snapshot != s.snap || uint64(len(log.IDs)) > s.n() {
		return false
	}
	last := s.first - 1 + uint64(len(log.IDs))
	if last < s.synced || !s.endsCall(last) {
		return false
	}
	for k, id := range log.IDs {
		if id != s.id(s.first+uint64(k)) || s.isGone(id) {
			return false
		}
	}
	return true
}

func describeOp(input, output any) string {
	in, out := input.(LinInput), output.(LinOutput)
	return DescribeCall(in, out)
}

// DescribeCall is one line saying what a call asked and got.
func DescribeCall(in LinInput, out LinOutput) string {
	var arg string
	switch in.Kind {
	case OpAppend, OpBatch:
		arg = fmt.Sprint(in.IDs)
	case OpRead, OpTruncateFront, OpTruncateBack, OpCheckpoint:
		arg = fmt.Sprint(in.Index)
	case OpNext:
		if in.Index != 0 {
			arg = fmt.Sprintf("new from %d", in.Index)
		}
	}
	res := "nil"
	switch {
	case in.Kind == OpRecover:
		res = fmt.Sprintf("first %d, snapshot %d, ids %v", out.Log.First, out.Log.Snapshot, out.Log.IDs)
	case out.Err != ErrNone:
		res = "error " + out.ErrMsg
		if out.Err == ErrKindUnknown {
			res += " (outcome unknown)"
		}
	case in.Kind == OpAppend || in.Kind == OpBatch:
		res = fmt.Sprintf("index %d", out.Index)
	case in.Kind == OpRead:
		res = fmt.Sprintf("id %d", out.ID)
	case in.Kind == OpNext && out.More:
		res = fmt.Sprintf("true: index %d id %d", out.Index, out.ID)
	case in.Kind == OpNext:
		res = "false"
	}
	return fmt.Sprintf("c%d %s(%s) -> %s", in.Client, in.Kind, arg, res)
}

func describeState(s linState) string {
	ids := make([]string, 0, s.n())
	for i := s.first; i <= s.last(); i++ {
		ids = append(ids, fmt.Sprint(s.id(i)))
	}
	return fmt.Sprintf("[%d, %d] snapshot %d synced %d closed %v failed %v readers %v: %s",
		s.first, s.last(), s.snap, s.synced, s.closed, s.failed, slices.Clone(s.readers[:]), strings.Join(ids, " "))
}
