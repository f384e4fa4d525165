// Package etcd is a raft.Storage for go.etcd.io/raft/v3 kept in a journal
// directory: the log, HardState and snapshot a raft node must not lose,
// durable when each call returns, and found again after a crash.
//
// It is a module of its own (github.com/gojournal/journal/raftstore/etcd),
// so that journal itself does not depend on raft.
//
// # The directory
//
//	dir/log/    a journal log holding the entries: journal index i is raft
//	            entry i, protobuf-encoded. Append is an AppendBatch (one
//	            fdatasync), a conflicting tail is dropped with TruncateBack,
//	            Compact is TruncateFront, and ApplySnapshot empties the log
//	            so that it continues at the snapshot's index + 1.
//	dir/state/  a small journal log of state records: the HardState and the
//	            compaction point (the index and term of the entry before
//	            FirstIndex, which Term must still answer for). Each record
//	            holds the whole state; the last one counts, and older ones
//	            are released every 4096 records.
//	dir/snap/   the snapshot (metadata and data) in one checksummed file,
//	            replaced atomically (temporary file, fdatasync, rename,
//	            directory sync).
//
// Each call that changes more than one of them writes them in an order that
// Open can finish after a crash: Compact records the compaction point
// before it releases entries; ApplySnapshot writes the snapshot file, marked
// as installed, before it empties the log and records the new compaction
// point. A crash leaves the state before the call or, once Open has finished
// the call, the state after it. Save is the exception, by design: a crash
// inside it may leave its entries without its HardState, or a conflicting
// tail dropped before what replaces it was appended. Raft is fine with both,
// since nothing of the Ready was sent before Save returned, and entries that
// conflict with the leader's log were never committed.
//
// # What a Ready costs
//
// Save persists a Ready's entries and HardState. The entries are appended
// and fdatasync'd first, then the HardState is appended to the state log:
// fdatasync'd when its Term or Vote changed (raft's rule, see raft.MustSync:
// a vote must not be forgotten), only written when Commit alone moved. A
// steady stream of Readys therefore costs one fdatasync each, the entries'.
// After a power loss Commit may be found smaller than it was, never below
// the compaction point nor past the entries on disk; raft learns it again
// from the leader. Options.SyncCommit syncs every HardState instead.
//
// Term reads no disk: the Storage keeps the log's terms in memory as runs
// of equal terms (one per election the log spans), rebuilt on Open by
// bisection. Entries reads the journal.
//
// # The Ready loop
//
// With a raft.RawNode (or raft.Node) and this Storage as Config.Storage,
// handle each Ready in this order:
//
//  1. If rd.Snapshot is not empty, ApplySnapshot it (and load its data into
//     the state machine).
//  2. Save(rd.HardState, rd.Entries): durable before anything is sent, so a
//     node never acknowledges an entry or a vote it could forget.
//  3. Send rd.Messages.
//  4. Apply rd.CommittedEntries to the state machine (ApplyConfChange for
//     configuration changes).
//  5. Advance(rd).
//
// From time to time, CreateSnapshot(applied, confState, data) and
// Compact(an index at or below applied) keep the log short; a follower
// that falls behind the compaction point is sent the snapshot.
//
// To restart, Open the directory, restore the state machine from
// Snapshot(), and start the node with Config.Applied set to the snapshot's
// index: raft hands back the committed entries after it. Bootstrap a new
// member with ApplySnapshot of a snapshot whose index is 0 and whose
// ConfState names the voters, as etcd does.
//
// The Example shows the loop on a single node.
package etcd
