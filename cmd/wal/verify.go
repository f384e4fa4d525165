package main

import (
	"fmt"
	"io"
)

func newVerify() *command {
	var asJSON bool
	cmd := &command{
		Use:   "verify DIR",
		Short: "Check every checksum of the log and its snapshot; report all damage (read-only)",
		Long: `verify reads every segment of the log in DIR to the last byte: headers, footers,
every record's checksum, index and compressed payload, and the snapshot's
contents. It reports every damaged place it finds, with file, offset and record
index, not only the first, and says what to do about it.

A torn tail (a write cut short by a crash, never acknowledged) is not damage:
the next Open cuts it. verify says so and exits 0.

verify never takes the directory lock and opens files read-only: it works while
the log is open in another process, and on a read-only file system.

Exit codes: 0 no damage, 1 damage found, 2 usage or I/O error.`,
		Example: `  wal verify /var/lib/myapp/wal
  wal verify --json /var/lib/myapp/wal | jq .damage`,
		Args: dirArg,
		RunE: report(&asJSON, (*examination).printVerify),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a machine-readable report")
	return cmd
}

func (ex *examination) printVerify(w io.Writer) {
	r := ex.rep
	fmt.Fprintf(w, "verify %s\n", ex.dir)
	sealed := 0
	var size int64
	for _, s := range r.Segments {
		size += s.Size
		if s.Sealed {
			sealed++
		}
	}
	fmt.Fprintf(w, "segments:  %d (%d sealed), %s\n", len(r.Segments), sealed, bytesIEC(size))
	if r.Records() == 0 {
		fmt.Fprintf(w, "records:   none (next index %d)\n", r.NextIndex())
	} else {
		fmt.Fprintf(w, "records:   %d to %d (%d)\n", max(r.FirstIndex, 1), ex.lastIndex(), r.Records())
	}
	switch s := r.SnapshotFile; {
	case s == nil && !ex.snapDamaged():
		fmt.Fprintf(w, "snapshot:  none\n")
	case s == nil:
		fmt.Fprintf(w, "snapshot:  unreadable\n")
	case !ex.snapDamaged():
		fmt.Fprintf(w, "snapshot:  index %d, %s, contents verified\n", s.Index, bytesIEC(s.FileSize))
	default:
		fmt.Fprintf(w, "snapshot:  index %d, %s\n", s.Index, bytesIEC(s.FileSize))
	}
	ex.printTail(w)
	if ex.damaged() {
		ex.printDamage(w)
		fmt.Fprintf(w, "result:    DAMAGED\n")
		return
	}
	fmt.Fprintf(w, "result:    OK, every checksum verified\n")
}

// report runs the examination behind verify and info and prints it as
// text or JSON; damage makes the exit code 1.
func report(asJSON *bool, print func(*examination, io.Writer)) func(*command, []string) error {
	return func(cmd *command, args []string) error {
		ex, err := examine(args[0])
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if *asJSON {
			if err := writeJSON(w, ex.json()); err != nil {
				return fail("%v", err)
			}
		} else {
			print(ex, w)
		}
		if ex.damaged() {
			return damaged()
		}
		return nil
	}
}
