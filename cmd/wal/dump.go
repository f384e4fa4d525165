package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/segment"
	"github.com/gojournal/journal/vfs"
)

func newDump() *cobra.Command {
	var from, to uint64
	var format string
	cmd := &cobra.Command{
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
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "text", "json", "hex":
			default:
				return fail("--format must be text, json or hex, not %q", format)
			}
			if !cmd.Flags().Changed("to") {
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

func (d *dumper) run() error {
	ls, err := recovery.List(vfs.Default, d.dir)
	if err != nil {
		return fail("%v", err)
	}
	if ls.MetaErr != nil {
		return d.damage(filepath.Join(d.dir, recovery.MetaName), 0, 0, ls.MetaErr.Error())
	}
	d.from = max(d.from, ls.Meta.FirstIndex)
	for i, path := range ls.Live {
		var limit uint64 = math.MaxUint64
		if i == len(ls.Live)-1 && ls.Meta.BackPending {
			limit = ls.Meta.Back
		}
		more, err := d.segment(path, i == len(ls.Live)-1, min(limit, d.to))
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// segment prints the records of one segment up to index last; more is
// false once last is passed.
func (d *dumper) segment(path string, newest bool, last uint64) (more bool, err error) {
	f, err := vfs.Default.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return false, fail("%v", err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return false, fail("%v", err)
	}
	head := make([]byte, segment.HeaderSize)
	if _, err := f.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return false, fail("read %s: %v", path, err)
	}
	h, err := segment.DecodeHeader(head)
	if err != nil {
		return false, d.damage(path, 0, 0, err.Error())
	}
	ft, reason, err := segment.ReadFooter(f, size, h)
	if err != nil {
		return false, fail("read %s: %v", path, err)
	}
	if reason == "" {
		return d.sealed(f, path, h, ft, last)
	}
	if !newest {
		return false, d.damage(path, 0, 0, "segment is not sealed but later segments exist (footer "+reason+")")
	}
	return d.frames(f, path, size, h, last)
}

func (d *dumper) sealed(f vfs.File, path string, h segment.Header, ft segment.Footer, last uint64) (bool, error) {
	for i := max(d.from, h.FirstIndex); i < ft.Next; i++ {
		if i > last {
			return false, nil
		}
		off, size, err := ft.RecordSpan(f, int64(i-h.FirstIndex))
		if err != nil {
			return false, fail("read %s: %v", path, err)
		}
		rec, err := segment.ReadRecord(f, path, h, off, size, i)
		var ce *segment.CorruptionError
		if errors.As(err, &ce) {
			return false, d.damage(path, ce.Offset, i, ce.Reason)
		} else if err != nil {
			return false, fail("%v", err)
		}
		var codec [1]byte
		f.ReadAt(codec[:], off+29)
		d.print(i, segment.Codec(codec[0]), rec)
	}
	return true, nil
}

// frames prints the records of the newest segment that Open keeps: those
// before its cut point, not a torn tail.
func (d *dumper) frames(f vfs.File, path string, size int64, h segment.Header, last uint64) (bool, error) {
	sc := segment.NewScanner(f, size, h)
	expect := h.FirstIndex
	for sc.Next() {
		expect = sc.Frame().Index + 1
	}
	if err := sc.Err(); err != nil {
		return false, fail("read %s: %v", path, err)
	}
	_, keep := sc.Cut()
	if tail, err := segment.ScanTail(f, size, h, sc.Offset()); err != nil {
		return false, fail("read %s: %v", path, err)
	} else if t := tail.Durable; t != nil && keep <= last {
		stop, reason := sc.Offset(), cmpOr(sc.Reason(), "end of file")
		if err := d.framesUpTo(f, path, size, h, min(last, keep-1)); err != nil {
			return false, err
		}
		return false, d.damage(path, stop, expect, fmt.Sprintf("%s, yet data made durable later follows (record %d at offset %d)", reason, t.Index, t.Offset))
	}
	if keep == h.FirstIndex {
		return true, nil
	}
	return keep-1 < last, d.framesUpTo(f, path, size, h, min(last, keep-1))
}

func (d *dumper) framesUpTo(f vfs.File, path string, size int64, h segment.Header, last uint64) error {
	sc := segment.NewScanner(f, size, h)
	for sc.Next() {
		fr := sc.Frame()
		if fr.Index > last {
			break
		}
		if fr.Index < d.from {
			continue
		}
		rec, err := segment.Decompress(fr.Codec, fr.Data)
		if err != nil {
			return d.damage(path, fr.Offset, fr.Index, err.Error())
		}
		d.print(fr.Index, fr.Codec, rec)
	}
	if err := sc.Err(); err != nil {
		return fail("read %s: %v", path, err)
	}
	return nil
}

func (d *dumper) print(index uint64, codec segment.Codec, rec []byte) {
	d.printed++
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
