// Package raftstore stores hashicorp/raft logs and their stable state in
// journal logs. Store implements raft.LogStore, raft.StableStore and
// raft.MonotonicLogStore for one raft group in a directory of its own;
// Shared keeps many raft groups in one directory (multi-raft), and its
// Group method returns a GroupStore implementing the same three
// interfaces for one group.
//
// # Store
//
// A Store owns one directory holding two journal logs:
//
//	DIR/log     the raft entries, raft index i at journal index i
//	DIR/stable  the StableStore: one record per Set or SetUint64
//	            (key and value), compacted by a journal checkpoint
//	            holding every key's latest value
//
// Mapping raft indexes to journal indexes one to one keeps GetLog a plain
// journal Read. The log has no gaps (IsMonotonic reports true): after a
// snapshot is installed raft deletes every entry, and the next StoreLogs
// may begin at any index, which the journal supports through TruncateFront
// on an empty log (see wal.Log.TruncateFront).
//
// Durability: StoreLogs, StoreLog, DeleteRange, Set and SetUint64 are
// durable when they return nil (the entry log is synced even when its
// Options set NoSync; the stable log never uses NoSync). StoreLogs is
// atomic: after a crash either all of its entries are in the log or none.
//
// Each entry is encoded compactly (the index is the journal's, so it is
// not stored):
//
//	byte 0      version (1)
//	byte 1      raft.LogType
//	byte 2      flags: 0 when AppendedAt is the zero time, 1 when its
//	            Unix nanoseconds fit in an int64 (1678 to 2262), else 2
//	uvarint     Term
//	varint      AppendedAt as Unix nanoseconds (only with flags 1), or
//	varint      AppendedAt as Unix seconds, then a uvarint of its
//	            nanoseconds, 0 to 999,999,999 (only with flags 2)
//	uvarint     length of Extensions, then Extensions
//	rest        Data
//
// A Store is safe for concurrent use, as raft uses it.
//
// # Shared
//
// One fdatasync per StoreLogs is the floor of a durable raft log, and a
// Store per group pays it once per group. A Shared store keeps every
// group's entries in one journal log, so that StoreLogs calls of
// different groups arriving together share one write and one fdatasync
// (the journal's group commit), as multi-raft systems do:
//
//	DIR/shared  the entries of every group, each record tagged with its
//	            group; and a record per DeleteRange (Open refuses such a
//	            directory, and OpenShared a Store's, with ErrOtherKind)
//	DIR/stable  the StableStore of every group: as a Store's, each key
//	            prefixed with the uvarint of the group id (uvarints are
//	            prefix-free, so no two groups share a key)
//
// A group is any uint64; one that never stored anything is empty. Its
// StoreLogs is one AppendBatch of the shared log (atomic and durable, as
// Store's), its DeleteRange one Append of a delete record (durable before
// the group forgets the entries). Raft indexes are no longer journal
// indexes: each group keeps in memory its first raft index and the
// journal index of each of its live entries (8 bytes an entry), which
// OpenShared rebuilds by replaying the log in journal order. GetLog reads
// the record there and checks that it is the group's entry.
//
// The shared log is never cut at the back (journal indexes are never
// reused). Its front is released after a group deletes a prefix of its
// log: TruncateFront up to the first record any group still needs, the
// one holding its first live entry (an empty group needs none; an append
// in flight keeps what it may get). Replaying what is left gives every
// group the same state: the dead entries of a group that are left are
// deleted again by the delete records that follow them, and a delete
// record matters only while the entries it deleted are in the log, all of
// which precede it (see Shared.release for the argument).
//
// Records of the shared log, every integer a uvarint:
//
//	entry:   byte 1, group, raft index, then the entry as a Store encodes
//	         it (above)
//	delete:  byte 2, group, first and last raft index deleted, within
//	         the group's log when it was written: a prefix, a suffix or
//	         all of it (the group is then empty, and may restart at any
//	         index)
//
// The first byte is the record's kind and the format's version: a changed
// layout takes a new kind, and 0 is none. For example group 7's entry 300,
// term 5, a raft.LogCommand with data "hi" and no AppendedAt:
//
//	01 07 ac02 | 01 00 00 05 00 6869
//
// and its DeleteRange(1, 300): 02 07 01 ac02.
//
// A release runs in the DeleteRange call that asked for it (raft's
// snapshot goroutine), after the group's own appends are free to go on;
// one asked for while another runs joins it and returns at once.
//
// Concurrency: different groups run fully concurrently; within a group,
// GetLog, FirstIndex and LastIndex run beside StoreLogs and DeleteRange,
// and StoreLogs and DeleteRange (which raft calls from its main and its
// snapshot goroutines) take turns. Set and SetUint64 of all groups take
// turns in the one stable log (raft calls them on elections, not per
// entry).
package raftstore
