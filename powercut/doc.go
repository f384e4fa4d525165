// Package powercut cuts the power under journal's write-ahead log on real
// file systems (ext4 and xfs) and checks what survives.
//
// The disk is simulated, the rest is real: a FUSE file system in the test
// process serves one file, disk.img, backed by a Disk with a volatile
// write cache; a loop device is attached to it; ext4 or xfs is made and
// mounted on the loop device; a workload process appends to the log with
// fdatasync. Only a flush (FUSE FSYNC, sent by the loop driver for every
// REQ_OP_FLUSH) makes the cache durable. A power cut drops the cache, whole
// or in part, and kills the workload; the machine boots again from what
// the disk kept, the file system replays its journal on mount, wal.Open
// recovers, and Check compares the log with what the workload
// acknowledged. README.md describes the model and how to run it; run.sh
// is what CI calls.
//
// It is a module of its own so that go-fuse stays out of the library's
// dependencies.
package powercut
