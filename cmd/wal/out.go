package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// stderrIsTerminal reports whether progress may be drawn: only for a person
// watching, never into a pipe or a log file.
// stderrIsTerminal reports whether stderr is a terminal (a character
// device), where a progress bar can redraw itself.
func stderrIsTerminal() bool {
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress returns a function that advances a bar over total bytes on
// stderr, and one that removes the bar. Both do nothing when stderr is not
// a terminal.
func progress(total int64, what string) (add func(int64), done func()) {
	if total <= 0 || !stderrIsTerminal() {
		return nil, func() {}
	}
	b := &bar{total: total, what: what}
	return b.add, b.clear
}

// bar is a progress bar on one terminal line, redrawn at most every
// 100 ms.
type bar struct {
	total, n int64
	what     string
	drawn    time.Time
}

func (b *bar) add(n int64) {
	b.n += n
	if now := time.Now(); now.Sub(b.drawn) >= 100*time.Millisecond || b.n >= b.total {
		b.drawn = now
		const width = 30
		fill := int(min(b.n, b.total) * width / b.total)
		fmt.Fprintf(os.Stderr, "\r%s %3d%% [%s%s] %s/%s ", b.what, min(b.n, b.total)*100/b.total,
			strings.Repeat("=", fill), strings.Repeat(" ", width-fill), bytesIEC(b.n), bytesIEC(b.total))
	}
}

// clear erases the bar's line.
func (b *bar) clear() { fmt.Fprint(os.Stderr, "\r\x1b[2K") }

// dirSize is the total size of the segment files named, for a progress bar.
func dirSize(paths []string) int64 {
	var n int64
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// rel names path relative to dir when it is inside it, so reports read
// "00000000000000000001.wal", not a long absolute path.
func rel(dir, path string) string {
	if r, err := filepath.Rel(dir, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// bytesIEC formats n as a human size: 512 B, 64.0 KiB, 1.5 MiB.
func bytesIEC(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, unit := float64(n), "B"
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if f < 1024 {
			break
		}
		f, unit = f/1024, u
	}
	return fmt.Sprintf("%.1f %s", f, unit)
}

// age formats how long ago t was, to the second.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String()
}

// plural returns "1 record" or "3 records".
func plural(n int64, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
