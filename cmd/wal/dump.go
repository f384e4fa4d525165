package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"unicode"
	"unicode/utf8"

	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

func newDump() *command {
	var from, to uint64
	var format string
	cmd := &command{
		Use:   "dump DIR",
		Short: "Print the log's records with index, size and payload (read-only)",
		Long: `dump prints the records of the log in DIR from --from to --to (default: all
of them), each with its index, its size and its payload, exactly as Read would
return it (decompressed).

Formats:
  text  one line per record: index, size and payload, tab-separated; a payload
        that is not printable UTF-8 is shown as hex, prefixed "hex:"
  json  one JSON object per line (JSON lines): index, size, codec, data (base64)
        and, when the payload is printable UTF-8, text
  hex   a header line per record, then a hex dump of its payload

dump reads the segment files directly, never through Open: it takes no lock,
opens files read-only, and shows the records Open would keep (not the torn
tail). It stops at the first damaged record, after printing those before it.

Exit codes: 0 ok, 1 damage reached before --to, 2 usage or I/O error.`,
		Example: `  wal dump /var/lib/myapp/wal --from 100 --to 120
  wal dump /var/lib/myapp/wal --format json | jq -r .text
  wal dump /var/lib/myapp/wal --from 7 --to 7 --format hex`,
		Args: dirArg,
		RunE: func(cmd *command, args []string) error {
			switch format {
			case "text", "json", "hex":
			default:
				return fail("--format must be text, json or hex, not %q", format)
			}
			if !cmd.changed("to") {
				to = math.MaxUint64
			}
			if from > to {
				return fail("--from %d is after --to %d", from, to)
			}
			if err := checkDir(args[0]); err != nil {
				return err
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			d := &dumper{dir: args[0], from: from, to: to, format: format, w: w}
			err := d.run()
			if ferr := w.Flush(); err == nil && ferr != nil {
				err = fail("%v", ferr)
			}
			return err
		},
	}
	cmd.Flags().Uint64Var(&from, "from", 0, "first index to print (default: the log's first)")
	cmd.Flags().Uint64Var(&to, "to", 0, "last index to print (default: the log's last)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, json or hex")
	return cmd
}

type dumper struct {
	dir      string
	from, to uint64
	format   string
	w        *bufio.Writer
	printed  int
}

// damage reports damage reached while dumping and ends with exit code 1.
func (d *dumper) damage(path string, off int64, index uint64, reason string) error {
	d.w.Flush()
	fmt.Fprintf(os.Stderr, "wal: %s is damaged at offset %d", rel(d.dir, path), off)
	if index != 0 {
		fmt.Fprintf(os.Stderr, " (record %d)", index)
	}
	fmt.Fprintf(os.Stderr, ": %s\nwal: %d records printed before it; run `wal verify %s` for the whole picture\n", reason, d.printed, d.dir)
	return damaged()
}

// errVanished is returned by segment when a segment file the walk found is
// gone: released meanwhile by the process that has the log open.
var errVanished = errors.New("segment removed while dump read the log")

// misread is damage dump met reading records the walk had passed: a
// process that has the log open may have changed the file meanwhile
// (TruncateBack seals a segment anew after the records it keeps), so dump
// walks again before it calls it damage.
type misread struct {
	path   string
	off    int64
	index  uint64
	reason string
}

func (m *misread) Error() string { return m.reason }

func (d *dumper) run() error {
	// A segment released (and removed) by a running process between the
	// walk and the dump's reading it sends the dump back to a fresh walk,
	// from the record after the last one printed; so does damage met
	// while reading records, reported only if the next pass meets it at
	// the same place.
	var prev *misread
	for try := 0; ; try++ {
		err := d.pass(try > 0)
		var m *misread
		switch {
		case errors.As(err, &m):
			if (prev != nil && *m == *prev) || try == 16 {
				return d.damage(m.path, m.off, m.index, m.reason)
			}
			prev = m
		case errors.Is(err, errVanished):
			if try == 16 {
				return fail("%v", err)
			}
		default:
			return err
		}
	}
}

// pass walks the log and prints its records from d.from on. again is set
// when an earlier pass stopped at a segment that went: the records from
// d.from to the new first index were released meanwhile, and dump says so.
func (d *dumper) pass(again bool) error {
	st, err := recovery.Scan(vfs.Default, d.dir, recovery.Options{})
	var first *recovery.Damage
	if st != nil && st.Damaged() {
		first = &st.Damage[0]
	} else if err != nil {
		return fail("%v", err)
	}
	if again && st.FirstIndex > d.from && d.from <= d.to {
		fmt.Fprintf(os.Stderr, "wal: records %d to %d were released (TruncateFront or Checkpoint) while dump read them\n",
			d.from, min(st.FirstIndex-1, d.to))
	}
	d.from = max(d.from, st.FirstIndex)
	for _, seg := range st.Segments {
		damagedHere := first != nil && first.Path == seg.Path
		if damagedHere && first.Index == 0 {
			break
		}
		end := seg.Next // records before end are the log's
		if damagedHere {
			end = first.Index
		}
		more, err := d.segment(seg, min(end, d.to+min(1, math.MaxUint64-d.to)))
		if err != nil {
			return err
		}
		// The damage ends the log Open would keep: the records after it
		// are not the log's, whether or not --to lies beyond them.
		if damagedHere {
			break
		}
		if !more {
			return nil
		}
	}
	// Damage at or before --to is reached (an index 0 names no record:
	// the loop stopped at its segment, before --to was passed).
	if first != nil && (first.Index == 0 || first.Index <= d.to) {
		return d.damage(first.Path, first.Offset, first.Index, first.Reason)
	}
	return nil
}

// segment prints the records of one segment before index end; more is
// false once --to is passed.
func (d *dumper) segment(seg recovery.Segment, end uint64) (more bool, err error) {
	h, err := segment.OpenHandle(vfs.Default, seg.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("%w: %v", errVanished, err)
	} else if err != nil {
		return false, fail("%v", err)
	}
	defer h.Close()
	if seg.Sealed {
		for i := max(d.from, seg.First); i < end; i++ {
			f, rec, err := h.Record(seg.Footer, int64(i-seg.First))
			var ce *errs.CorruptionError
			if errors.As(err, &ce) {
				return false, &misread{seg.Path, ce.Offset, i, ce.Reason}
			} else if err != nil {
				return false, fail("%v", err)
			}
			d.print(i, f.Codec, rec)
		}
		return end <= d.to && end == seg.Next, nil
	}
	sc := h.Scan()
	for sc.Next() {
		fr := sc.Frame()
		if fr.Index >= end {
			break
		}
		if fr.Index < d.from {
			continue
		}
		rec, err := segment.Decompress(fr.Codec, fr.Data)
		if err != nil {
			return false, &misread{seg.Path, fr.Offset, fr.Index, err.Error()}
		}
		d.print(fr.Index, fr.Codec, rec)
	}
	if err := sc.Err(); err != nil {
		return false, fail("read %s: %v", seg.Path, err)
	}
	return end <= d.to && end == seg.Next, nil
}

func (d *dumper) print(index uint64, codec segment.Codec, rec []byte) {
	d.printed++
	d.from = index + 1 // a later pass goes on from here
	switch d.format {
	case "json":
		j := struct {
			Index uint64 `json:"index"`
			Size  int    `json:"size"`
			Codec string `json:"codec"`
			Text  string `json:"text,omitempty"`
			Data  []byte `json:"data"`
		}{Index: index, Size: len(rec), Codec: codec.String(), Data: rec}
		if printable(rec) {
			j.Text = string(rec)
		}
		b, _ := json.Marshal(j)
		d.w.Write(b)
		d.w.WriteByte('\n')
	case "hex":
		fmt.Fprintf(d.w, "record %d (%s, %s)\n", index, plural(int64(len(rec)), "byte"), codec)
		d.w.WriteString(hex.Dump(rec))
	default:
		if printable(rec) {
			fmt.Fprintf(d.w, "%d\t%d\t%s\n", index, len(rec), rec)
		} else {
			fmt.Fprintf(d.w, "%d\t%d\thex:%x\n", index, len(rec), rec)
		}
	}
}

// printable reports whether b is UTF-8 text without control characters,
// safe to print on one line.
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
