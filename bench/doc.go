// Package bench compares journal with other Go write-ahead logs, and with
// two hand-written baselines, on durable appends: every append returns
// only once its record is on stable storage (fdatasync or fsync).
//
// Each peer is used as its own documentation says to use it, in a fresh
// directory, and each counts its fdatasyncs by the most honest means it
// offers (see Appender.Syncs). The cmd/peerbench program runs them all in
// one process and prints a Markdown table.
//
// This is a separate module so that the core library does not depend on
// the peers.
package bench
