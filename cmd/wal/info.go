package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

func newInfo() *command {
	var asJSON bool
	cmd := &command{
		Use:   "info DIR",
		Short: "Describe the log: segments, index range, records, bytes, compression, snapshot (read-only)",
		Long: `info describes the log in DIR: its segments (count and sizes), the range of
indexes it holds, the number of records, the bytes they take as stored and as
decoded (the compression ratio, measured by reading every record), the
snapshot's index and age, whether the tail is clean, and the positions of
the consumers kept in its cursors subdirectory (package cursor), if any, with
how many records each is behind.

Like verify it reads every segment, never takes the lock and opens files
read-only. It reports how much damage it saw; verify lists it.

Exit codes: 0 described, no damage; 1 described, damage found; 2 usage or I/O
error.`,
		Example: `  wal info /var/lib/myapp/wal
  wal info --json /var/lib/myapp/wal | jq .records`,
		Args: dirArg,
		RunE: report(&asJSON, (*examination).printInfo),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a machine-readable report")
	return cmd
}

func (ex *examination) printInfo(w io.Writer) {
	r := ex.rep
	j := ex.json()
	fmt.Fprintf(w, "log %s\n", ex.dir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "segment\tfirst\tlast\trecords\tbytes\tstate\n")
	for i, s := range j.Segments {
		state := "sealed"
		if !s.Sealed {
			state = "open"
			if i < len(j.Segments)-1 {
				state = "unsealed"
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", s.File, s.First, s.Last, s.Records, s.Size, state)
	}
	tw.Flush()
	fmt.Fprintf(w, "segments:  %d, %s on disk\n", len(r.Segments), bytesIEC(j.Bytes))
	if r.Records() == 0 {
		fmt.Fprintf(w, "records:   none (next index %d)\n", r.NextIndex())
	} else {
		fmt.Fprintf(w, "records:   %d, indexes %d to %d\n", r.Records(), max(r.FirstIndex, 1), ex.lastIndex())
	}
	ratio := 1.0
	if j.Stored > 0 {
		ratio = float64(j.Decoded) / float64(j.Stored)
	}
	fmt.Fprintf(w, "payload:   %d bytes decoded, %d stored (compression ratio %.2f)\n", j.Decoded, j.Stored, ratio)
	if s := r.SnapshotFile; s != nil {
		kind := "uncompressed"
		if s.Compressed {
			kind = fmt.Sprintf("zstd, %s decoded", bytesIEC(s.Size))
		}
		fmt.Fprintf(w, "snapshot:  index %d, %s (%s), written %s ago\n", s.Index, bytesIEC(s.FileSize), kind, age(ex.now, s.ModTime))
	} else if !ex.snapDamaged() {
		fmt.Fprintf(w, "snapshot:  none\n")
	}
	ex.printCursors(w, j)
	ex.printTail(w)
	if n := len(r.Damage); n > 0 {
		fmt.Fprintf(w, "damage:    %s: run `wal verify %s` for the list and what to do\n", plural(int64(n), "place"), ex.dir)
	} else {
		fmt.Fprintf(w, "damage:    none\n")
	}
}

// printCursors lists the consumers of the cursors subdirectory, if any.
func (ex *examination) printCursors(w io.Writer, j *jsonReport) {
	switch {
	case !ex.hasCursors:
		return
	case ex.cursorsErr != nil:
		fmt.Fprintf(w, "cursors:   unreadable: %v\n", ex.cursorsErr)
		return
	case len(j.Cursors) == 0:
		fmt.Fprintf(w, "cursors:   none\n")
		return
	}
	fmt.Fprintf(w, "cursors:   %d\n", len(j.Cursors))
	for _, c := range j.Cursors {
		fmt.Fprintf(w, "  %s at %d, %s behind\n", c.Name, c.Index, plural(int64(c.Behind), "record"))
	}
}
