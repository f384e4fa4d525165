// Package raftstore stores a hashicorp/raft log and its stable state in
// journal logs: Store implements raft.LogStore, raft.StableStore and
// raft.MonotonicLogStore.
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
//	byte 2      flags: bit 0 set when AppendedAt is not the zero time
//	uvarint     Term
//	varint      AppendedAt as Unix nanoseconds (only with flag bit 0)
//	uvarint     length of Extensions, then Extensions
//	rest        Data
//
// A Store is safe for concurrent use, as raft uses it.
package raftstore
