package wal

import "sync"

// AppendApply appends data like Append and, once the record is durable,
// calls apply(index) so that a state machine can change in log order
// without holding its own lock across the fdatasync (which would make
// every append wait for the previous one's fdatasync and defeat group
// commit). The contract:
//
//   - Order: applies run one at a time, in index order, across all
//     AppendApply and AppendBatchApply calls on the Log; an apply starts
//     only after the apply of every earlier record given one has returned
//     (or been skipped, below). Records appended by Append and AppendBatch
//     have no apply and hold up no apply.
//   - When: apply(index) runs after the record is durable (with
//     Options.NoSync: written, as when Append returns), on the goroutine
//     that called AppendApply, before AppendApply returns index and nil.
//     The Log's locks are not held: apply may read the log, append with
//     Append, even truncate or close it, but must not call AppendApply or
//     AppendBatchApply on the same Log, nor wait for such a call made by
//     another goroutine: that call would wait for this apply's turn to end.
//   - Exactly when acknowledged: apply runs if and only if AppendApply
//     returns nil. It is skipped, and AppendApply returns the error, when
//     the append fails (the log failed or was closed before the record was
//     durable), when a TruncateBack, a TruncateFront or a Checkpoint's
//     release drops the record before its apply starts (ErrTruncated; a
//     prefix is dropped because a snapshot holds the state up to it, and
//     applying the record on that state would apply it twice), or when
//     such a truncation that may have dropped it fails (ErrFailed).
//     Retention releasing it does not skip its apply. A skipped apply
//     never holds up later ones: they run as soon as the applies before
//     them have. A record dropped
//     by a TruncateBack after its apply started stays applied, as a record
//     Append acknowledged stays acknowledged; undoing it is the caller's.
//     Records appended after a TruncateBack reuse the indexes it dropped,
//     so index order is the order of the log as it stands when each apply
//     runs.
//   - Blocking: an apply that blocks holds up every later apply, and so
//     every later AppendApply call, but not appends: records keep being
//     written and group-committed meanwhile.
//   - Panics: if apply panics, the next record's apply may run, and the
//     panic then continues up from AppendApply. The record stays durable.
//   - Close does not wait for applies: records durable before the log
//     closed are acknowledged and their applies still run, in order, on
//     their callers' goroutines, possibly after Close has returned.
//
// A nil apply makes AppendApply an Append.
func (l *Log) AppendApply(data []byte, apply func(index uint64)) (uint64, error) {
	return l.appendOne(data, apply)
}

// AppendBatchApply appends records atomically like AppendBatch and, once
// all are durable, calls apply(first) with the index of the first record,
// under the contract of AppendApply: the batch takes one turn in index
// order and its apply runs if and only if AppendBatchApply returns nil.
// An empty batch appends nothing and apply is not called. If a
// truncation drops some of the batch's records before apply starts, apply
// is skipped (ErrTruncated), though the records it kept stay in the log:
// after a TruncateBack, like every TruncateBack of records a state machine
// may have seen, the caller rebuilds its state from the log; after a
// TruncateFront or a checkpoint, from the snapshot that covers the cut and
// the log after it.
func (l *Log) AppendBatchApply(records [][]byte, apply func(first uint64)) (uint64, error) {
	return l.appendBatch(records, apply)
}

// turn is an AppendApply call's place in the queue of applies. Turns are
// queued in index order: a call takes its turn under mu right after its
// records get their indexes, and indexes grow under mu (a TruncateBack
// lowers them only after cutting, with ErrTruncated, every turn it drops).
// They are recycled, so AppendApply does not allocate.
type turn struct {
	first, last uint64
	err         error     // set by a TruncateBack that dropped some of the records
	ready       sync.Cond // signalled when the turn reaches the head, or err is set
	prev, next  *turn
}

// settle waits until records [first, last] are durable and, if ordered,
// until every apply before theirs has run. It returns the turn to apply
// in, or nil if not ordered. Called with mu held, right after enqueue.
func (l *Log) settle(first, last uint64, ordered bool) (*turn, error) {
	if !ordered {
		return nil, l.waitDurable(first, last)
	}
	t := l.takeTurn(first, last)
	err := l.waitDurable(first, last)
	for err == nil && l.turns != t {
		t.ready.Wait()
		err = t.err
	}
	if err == nil {
		// At the head, a TruncateBack may have cut the turn since the
		// records became durable.
		err = t.err
	}
	if err != nil {
		l.endTurn(t)
		return nil, err
	}
	return t, nil
}

// takeTurn queues a turn for [first, last]. Called with mu held.
func (l *Log) takeTurn(first, last uint64) *turn {
	t := l.idleTurns
	if t != nil {
		l.idleTurns = t.next
	} else {
		t = new(turn)
		t.ready.L = &l.mu
	}
	t.first, t.last, t.err = first, last, nil
	t.prev, t.next = l.lastTurn, nil
	if t.prev != nil {
		t.prev.next = t
	} else {
		l.turns = t
	}
	l.lastTurn = t
	return t
}

// endTurn removes t from the queue, wakes the next turn if t was at the
// head, and keeps t for reuse. Called with mu held.
func (l *Log) endTurn(t *turn) {
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		l.lastTurn = t.prev
	}
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		l.turns = t.next
		if t.next != nil {
			t.next.ready.Signal()
		}
	}
	t.prev, t.next, t.err = nil, l.idleTurns, nil
	l.idleTurns = t
}

// applyInTurn runs apply for the turn at the head of the queue, without
// mu, then passes the turn on, even if apply panics.
func (l *Log) applyInTurn(t *turn, apply func(uint64), index uint64) {
	defer func() {
		l.mu.Lock()
		l.endTurn(t)
		l.mu.Unlock()
	}()
	apply(index)
}
