package crashtest

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// call is one call of a hand-written history: client, interval, input and
// output.
func call(client int, from, to int64, in LinInput, out LinOutput) porcupine.Operation {
	in.Client = client
	return porcupine.Operation{ClientId: client, Call: from, Return: to, Input: in, Output: out}
}

func appendCall(client int, from, to int64, id, index uint64) porcupine.Operation {
	return call(client, from, to, LinInput{Kind: OpAppend, IDs: []uint64{id}}, LinOutput{Index: index})
}

func recoverCall(at int64, first uint64, ids ...uint64) porcupine.Operation {
	return call(9, at, at+1, LinInput{Kind: OpRecover}, LinOutput{Log: LinLog{First: first, IDs: ids}})
}

// The model accepts what a linearizable log may do and refuses the rest.
func TestLinModel(t *testing.T) {
	cases := []struct {
		name   string
		noSync bool
		ops    []porcupine.Operation
		ok     bool
	}{
		{"ConcurrentAppendsInEitherOrder", false, []porcupine.Operation{
			appendCall(0, 0, 10, 1, 2), appendCall(1, 1, 9, 2, 1), recoverCall(20, 1, 2, 1),
		}, true},
		{"TwoAppendsOneIndex", false, []porcupine.Operation{
			appendCall(0, 0, 10, 1, 1), appendCall(1, 1, 9, 2, 1), recoverCall(20, 1, 1),
		}, false},
		{"StaleRead", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1),
			call(1, 2, 3, LinInput{Kind: OpRead, Index: 1}, LinOutput{Err: ErrKindNotFound}),
			recoverCall(20, 1, 1),
		}, false},
		{"AcknowledgedRecordLost", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1), appendCall(0, 2, 3, 2, 2), recoverCall(20, 1, 1),
		}, false},
		{"NoSyncMayLoseTheUnsyncedTail", true, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1), call(0, 2, 3, LinInput{Kind: OpSync}, LinOutput{}),
			appendCall(0, 4, 5, 2, 2), recoverCall(20, 1, 1),
		}, true},
		{"NoSyncMustKeepWhatSyncCovered", true, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1), call(0, 2, 3, LinInput{Kind: OpSync}, LinOutput{}),
			recoverCall(20, 1),
		}, false},
		{"NoSyncMayNotCutABatch", true, []porcupine.Operation{
			call(0, 0, 1, LinInput{Kind: OpBatch, IDs: []uint64{1, 2}}, LinOutput{Index: 1}),
			recoverCall(20, 1, 1),
		}, false},
		{"TruncateBackThenTheIndexIsReused", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1),
			call(0, 2, 3, LinInput{Kind: OpTruncateBack, Index: 0}, LinOutput{}),
			appendCall(0, 4, 5, 2, 1), recoverCall(20, 1, 2),
		}, true},
		// wal.Append documents ErrTruncated for a record a racing
		// TruncateBack dropped: the append took index 2, the truncation
		// dropped it. (The model had been written for an unclassified
		// error there and refused ErrTruncated: most violations the long
		// run reported were this.)
		{"AppendDroppedByARacingTruncateBackGetsErrTruncated", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1),
			call(1, 2, 10, LinInput{Kind: OpAppend, IDs: []uint64{2}}, LinOutput{Err: ErrKindTruncated}),
			call(0, 3, 4, LinInput{Kind: OpTruncateBack, Index: 1}, LinOutput{}),
			appendCall(0, 5, 6, 3, 2),
			recoverCall(20, 1, 1, 3),
		}, true},
		{"AppendRefusedByARacingTruncateBackMustNotSurvive", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1),
			call(1, 2, 10, LinInput{Kind: OpAppend, IDs: []uint64{2}}, LinOutput{Err: ErrKindTruncated}),
			call(0, 3, 4, LinInput{Kind: OpTruncateBack, Index: 1}, LinOutput{}),
			recoverCall(20, 1, 1, 2),
		}, false},
		{"AppendErrTruncatedWithoutATruncateBack", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1),
			call(1, 2, 10, LinInput{Kind: OpAppend, IDs: []uint64{2}}, LinOutput{Err: ErrKindTruncated}),
			recoverCall(20, 1, 1, 2),
		}, false},
		// An append gets ErrClosed only once Close has begun, and Close
		// flushes the appends already given an index: an append refused
		// with ErrClosed while no Close ran is a violation, and so is any
		// other error.
		{"AppendErrClosedWithoutClose", false, []porcupine.Operation{
			call(0, 0, 1, LinInput{Kind: OpAppend, IDs: []uint64{1}}, LinOutput{Err: ErrKindClosed}),
			recoverCall(20, 1),
		}, false},
		{"AppendUnexplainedError", false, []porcupine.Operation{
			call(0, 0, 1, LinInput{Kind: OpAppend, IDs: []uint64{1}}, LinOutput{Err: ErrKindOther}),
			recoverCall(20, 1),
		}, false},
		// wal.AppendBatch: a TruncateBack into the batch keeps its prefix
		// (here record 1 at index 1) and the batch returns ErrTruncated.
		{"BatchCutByARacingTruncateBackKeepsItsPrefix", false, []porcupine.Operation{
			call(0, 0, 10, LinInput{Kind: OpBatch, IDs: []uint64{1, 2, 3}}, LinOutput{Err: ErrKindTruncated}),
			call(1, 2, 3, LinInput{Kind: OpTruncateBack, Index: 1}, LinOutput{}),
			call(1, 4, 5, LinInput{Kind: OpRead, Index: 1}, LinOutput{ID: 1}),
			recoverCall(20, 1, 1),
		}, true},
		{"BatchThatGotErrTruncatedSurvivesWhole", false, []porcupine.Operation{
			call(0, 0, 10, LinInput{Kind: OpBatch, IDs: []uint64{1, 2, 3}}, LinOutput{Err: ErrKindTruncated}),
			call(1, 2, 3, LinInput{Kind: OpTruncateBack, Index: 1}, LinOutput{}),
			recoverCall(20, 1, 1, 2, 3),
		}, false},
		// A call the crash cut has an unknown outcome: the failed log's
		// reads still show the log as it was before it (wal.ErrFailed),
		// and recovery may find it done. An append whose fdatasync the
		// crash failed was written, never published: Read finds no
		// record, a Reader ends, yet the power loss may keep it.
		{"AppendCutByTheCrashUnseenByTheFailedLogYetKept", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1),
			call(0, 2, 3, LinInput{Kind: OpAppend, IDs: []uint64{2}}, LinOutput{Err: ErrKindUnknown}),
			call(1, 4, 5, LinInput{Kind: OpRead, Index: 2}, LinOutput{Err: ErrKindNotFound}),
			call(1, 6, 7, LinInput{Kind: OpNext, Index: 2}, LinOutput{}),
			recoverCall(20, 1, 1, 2),
		}, true},
		// A TruncateBack whose commit the crash cut: the failed log
		// still reads the records it meant to drop, recovery finds them
		// dropped.
		{"TruncateBackCutByTheCrashSeenUndoneByTheFailedLogYetDone", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1), appendCall(0, 2, 3, 2, 2),
			call(0, 4, 5, LinInput{Kind: OpTruncateBack, Index: 1}, LinOutput{Err: ErrKindUnknown}),
			call(1, 6, 7, LinInput{Kind: OpRead, Index: 2}, LinOutput{ID: 2}),
			call(1, 8, 9, LinInput{Kind: OpNext, Index: 2}, LinOutput{More: true, Index: 2, ID: 2}),
			recoverCall(20, 1, 1),
		}, true},
		// A Reader that returned a record before a TruncateBack the
		// crash cut goes on in the failed log's view, which still holds
		// what the truncation meant to drop; recovery finds it dropped.
		// (The model once stopped that Reader with ErrTruncated: the
		// long model check, seed 10165887119533219942, history
		// 11538708695158420052.)
		{"ReaderGoesOnInTheFailedLogsViewAfterACutTruncateBack", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1), appendCall(0, 2, 3, 2, 2), appendCall(0, 4, 5, 3, 3),
			call(1, 6, 7, LinInput{Kind: OpNext, Index: 2}, LinOutput{More: true, Index: 2, ID: 2}),
			call(0, 8, 9, LinInput{Kind: OpTruncateBack, Index: 1}, LinOutput{Err: ErrKindUnknown}),
			call(1, 10, 11, LinInput{Kind: OpNext}, LinOutput{More: true, Index: 3, ID: 3}),
			recoverCall(20, 1, 1),
		}, true},
		{"FailedLogReadsWhatNoStateHeld", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1), appendCall(0, 2, 3, 2, 2),
			call(0, 4, 5, LinInput{Kind: OpTruncateBack, Index: 1}, LinOutput{Err: ErrKindUnknown}),
			call(1, 6, 7, LinInput{Kind: OpRead, Index: 2}, LinOutput{ID: 1}),
			recoverCall(20, 1, 1),
		}, false},
		{"FailedLogHidesAPublishedRecord", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1),
			call(0, 2, 3, LinInput{Kind: OpAppend, IDs: []uint64{2}}, LinOutput{Err: ErrKindUnknown}),
			call(1, 4, 5, LinInput{Kind: OpNext, Index: 1}, LinOutput{}),
			recoverCall(20, 1, 1, 2),
		}, false},
		// A Checkpoint that returned ErrClosed (Close began while it
		// ran) must have left the previous snapshot: the library once
		// committed the snapshot and then refused the release.
		{"CheckpointThatGotErrClosedLeftItsSnapshot", true, []porcupine.Operation{
			call(0, 0, 1, LinInput{Kind: OpBatch, IDs: []uint64{1, 2, 3}}, LinOutput{Index: 1}),
			call(0, 2, 10, LinInput{Kind: OpCheckpoint, Index: 3}, LinOutput{Err: ErrKindClosed}),
			call(1, 3, 20, LinInput{Kind: OpClose}, LinOutput{}),
			call(9, 30, 31, LinInput{Kind: OpRecover}, LinOutput{Log: LinLog{First: 1, IDs: []uint64{1, 2, 3}, Snapshot: 3}}),
		}, false},
		{"TruncateFrontPastTheSnapshot", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1), appendCall(0, 2, 3, 2, 2),
			call(0, 4, 5, LinInput{Kind: OpCheckpoint, Index: 1}, LinOutput{}),
			call(0, 6, 7, LinInput{Kind: OpTruncateFront, Index: 3}, LinOutput{}),
			recoverCall(20, 3),
		}, false},
		{"CheckpointOfIndexZero", false, []porcupine.Operation{
			call(0, 0, 1, LinInput{Kind: OpCheckpoint, Index: 0}, LinOutput{Err: ErrKindOutOfRange}),
			recoverCall(20, 1),
		}, true},
		{"ReaderBelowFirstIndexGetsErrCompacted", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1), appendCall(0, 2, 3, 2, 2),
			call(0, 4, 5, LinInput{Kind: OpTruncateFront, Index: 2}, LinOutput{}),
			call(1, 6, 7, LinInput{Kind: OpNext, Index: 1}, LinOutput{Err: ErrKindCompacted}),
			call(1, 8, 9, LinInput{Kind: OpNext}, LinOutput{Err: ErrKindCompacted}), // sticky
			recoverCall(20, 2, 2),
		}, true},
		{"ReaderSkippingReleasedRecordsSilently", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1), appendCall(0, 2, 3, 2, 2),
			call(0, 4, 5, LinInput{Kind: OpTruncateFront, Index: 2}, LinOutput{}),
			call(1, 6, 7, LinInput{Kind: OpNext, Index: 1}, LinOutput{More: true, Index: 2, ID: 2}),
			recoverCall(20, 2, 2),
		}, false},
		{"ReaderWhoseRecordTruncateBackDroppedGetsErrTruncated", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1), appendCall(0, 2, 3, 2, 2),
			call(1, 4, 5, LinInput{Kind: OpNext, Index: 1}, LinOutput{More: true, Index: 1, ID: 1}),
			call(1, 6, 7, LinInput{Kind: OpNext}, LinOutput{More: true, Index: 2, ID: 2}),
			call(0, 8, 9, LinInput{Kind: OpTruncateBack, Index: 1}, LinOutput{}),
			appendCall(0, 10, 11, 3, 2),
			call(1, 12, 13, LinInput{Kind: OpNext}, LinOutput{Err: ErrKindTruncated}),
			recoverCall(20, 1, 1, 3),
		}, true},
		{"ReaderGoesOnWhenTruncateBackDropsOnlyWhatItHadNotReached", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1), appendCall(0, 2, 3, 2, 2),
			call(1, 4, 5, LinInput{Kind: OpNext, Index: 1}, LinOutput{More: true, Index: 1, ID: 1}),
			call(0, 6, 7, LinInput{Kind: OpTruncateBack, Index: 1}, LinOutput{}),
			appendCall(0, 8, 9, 3, 2),
			call(1, 10, 11, LinInput{Kind: OpNext}, LinOutput{More: true, Index: 2, ID: 3}),
			recoverCall(20, 1, 1, 3),
		}, true},
		{"ReaderReturnsAReleasedRecord", false, []porcupine.Operation{
			appendCall(0, 0, 1, 1, 1), appendCall(0, 2, 3, 2, 2),
			call(0, 4, 5, LinInput{Kind: OpTruncateFront, Index: 2}, LinOutput{}),
			call(1, 6, 7, LinInput{Kind: OpNext, Index: 1}, LinOutput{More: true, Index: 1, ID: 1}),
			recoverCall(20, 2, 2),
		}, false},
		{"CallCutByTheCrashMayHaveTakenEffect", false, []porcupine.Operation{
			call(0, 0, 1, LinInput{Kind: OpAppend, IDs: []uint64{1}}, LinOutput{Err: ErrKindUnknown}),
			recoverCall(20, 1, 1),
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(LinModel(tc.noSync), tc.ops); got != tc.ok {
				t.Fatalf("linearizable = %v, want %v", got, tc.ok)
			}
		})
	}
}
