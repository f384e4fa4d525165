package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/cursor"
	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/vfs"
)

// examination is what verify and info learn about a directory, reading
// only: the one walk of recovery.Check, the snapshot included.
type examination struct {
	dir     string
	now     time.Time
	rep     *recovery.State
	plan    *recovery.SalvagePlan // what salvage would do, when there is damage
	planErr error
	// cursors are the consumer positions of the store in the log's
	// cursors subdirectory (package cursor), when there is one.
	cursors    []cursor.Cursor
	cursorsErr error
	hasCursors bool
}

// examine reads dir.
func examine(dir string) (*examination, error) {
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	fsys := vfs.Default
	live, err := recovery.Live(fsys, dir)
	if err != nil {
		return nil, fail("%v", err)
	}
	add, done := progress(dirSize(live), "reading segments")
	rep, err := recovery.Check(fsys, dir, recovery.CheckOptions{Progress: add})
	done()
	if err != nil {
		return nil, fail("%v (check that the directory and its files are readable)", err)
	}
	ex := &examination{dir: dir, now: time.Now(), rep: rep}
	ex.readCursors()
	if rep.Damaged() {
		var snap uint64
		if !ex.snapDamaged() {
			snap = rep.Snapshot
		}
		ex.plan, ex.planErr = recovery.PlanSalvageFor(fsys, rep, snap)
	}
	return ex, nil
}

// readCursors reads the consumer positions kept in the log's cursors
// subdirectory, if it has one, without opening (or locking) the store.
func (ex *examination) readCursors() {
	for _, name := range ex.rep.Other {
		if name == cursor.DirName {
			ex.hasCursors = true
			ex.cursors, ex.cursorsErr = cursor.Inspect(vfs.Default, cursor.Dir(ex.dir))
		}
	}
}

// snapDamage lists the damage of the snapshot, or between it and the log.
func (ex *examination) snapDamage() []recovery.Damage {
	var out []recovery.Damage
	for _, d := range ex.rep.Damage {
		if d.Kind == recovery.KindSnapshot {
			out = append(out, d)
		}
	}
	return out
}

func (ex *examination) snapDamaged() bool { return len(ex.snapDamage()) > 0 }

// logDamage lists the damage of the log itself.
func (ex *examination) logDamage() []recovery.Damage {
	var out []recovery.Damage
	for _, d := range ex.rep.Damage {
		if d.Kind != recovery.KindSnapshot {
			out = append(out, d)
		}
	}
	return out
}

func (ex *examination) damaged() bool { return ex.rep.Damaged() }

func (ex *examination) lastIndex() uint64 { return ex.rep.NextIndex() - 1 }

// JSON shapes shared by verify, info and recover.

type jsonDamage struct {
	Kind   string `json:"kind"`
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Index  uint64 `json:"index,omitempty"`
	Reason string `json:"reason"`
}

type jsonTorn struct {
	File    string `json:"file"`
	Offset  int64  `json:"offset"`
	Bytes   int64  `json:"bytes"`
	Records int    `json:"records"`
	Reason  string `json:"reason"`
}

type jsonSegment struct {
	File    string `json:"file"`
	First   uint64 `json:"first"`
	Last    uint64 `json:"last"`
	Records int64  `json:"records"`
	Size    int64  `json:"size"`
	Sealed  bool   `json:"sealed"`
	Stored  int64  `json:"stored_bytes"`
	Decoded int64  `json:"decoded_bytes"`
}

type jsonSnapshot struct {
	Index      uint64    `json:"index"`
	Size       int64     `json:"size"`
	StoredSize int64     `json:"stored_size"`
	Compressed bool      `json:"compressed"`
	ModTime    time.Time `json:"mod_time"`
	AgeSeconds float64   `json:"age_seconds"`
	Verified   bool      `json:"verified"`
}

type jsonCut struct {
	File      string   `json:"file"`
	Offset    int64    `json:"offset"`
	FromIndex uint64   `json:"from_index"`
	Records   uint64   `json:"records_given_up"`
	Bytes     int64    `json:"bytes"`
	Removed   []string `json:"removed,omitempty"`
	Damage    string   `json:"damage"`
}

type jsonRestart struct {
	First   uint64 `json:"first_index"`
	Fresh   bool   `json:"empty_segment"`
	Missing uint64 `json:"records_missing"`
	Damage  string `json:"damage"`
}

type jsonSalvage struct {
	Reseal     []string     `json:"reseal,omitempty"`
	Restart    *jsonRestart `json:"restart,omitempty"`
	Cut        *jsonCut     `json:"cut,omitempty"`
	Refused    string       `json:"refused,omitempty"`
	Quarantine string       `json:"quarantine,omitempty"`
}

type jsonReport struct {
	Dir        string         `json:"dir"`
	Status     string         `json:"status"` // ok, torn or damaged
	FirstIndex uint64         `json:"first_index"`
	LastIndex  uint64         `json:"last_index"`
	Records    uint64         `json:"records"`
	Bytes      int64          `json:"bytes"`
	Stored     int64          `json:"stored_bytes"`
	Decoded    int64          `json:"decoded_bytes"`
	Segments   []jsonSegment  `json:"segments"`
	Torn       *jsonTorn      `json:"torn"`
	Damage     []jsonDamage   `json:"damage"`
	Released   []jsonDamage   `json:"released_damage,omitempty"`
	Snapshot   *jsonSnapshot  `json:"snapshot"`
	Temps      []string       `json:"temporary_files"`
	Obsolete   []string       `json:"obsolete_segments"`
	Other      []string       `json:"other_files"`
	Salvage    *jsonSalvage   `json:"salvage,omitempty"`
	Meta       map[string]any `json:"meta,omitempty"`
	// Cursors are the consumer positions in the cursors subdirectory;
	// absent when there is none.
	Cursors      []jsonCursor `json:"cursors,omitempty"`
	CursorsError string       `json:"cursors_error,omitempty"`
}

type jsonCursor struct {
	Name  string `json:"name"`
	Index uint64 `json:"index"`
	// Behind counts the records after the position, up to the last.
	Behind uint64 `json:"behind"`
}

func (ex *examination) status() string {
	switch {
	case ex.damaged():
		return "damaged"
	case ex.rep.Torn != nil:
		return "torn"
	}
	return "ok"
}

func (ex *examination) json() *jsonReport {
	r := ex.rep
	j := &jsonReport{
		Dir: ex.dir, Status: ex.status(), FirstIndex: max(r.FirstIndex, 1), LastIndex: ex.lastIndex(), Records: r.Records(),
		Segments: []jsonSegment{}, Damage: []jsonDamage{},
		Temps: ex.rels(r.Temps), Obsolete: ex.rels(r.Obsolete), Other: nonNil(r.Other),
	}
	for _, s := range r.Segments {
		j.Segments = append(j.Segments, jsonSegment{File: rel(ex.dir, s.Path), First: s.First, Last: max(s.Next, 1) - 1,
			Records: int64(s.Records()), Size: s.Size, Sealed: s.Sealed, Stored: s.Stored, Decoded: s.Decoded})
		j.Bytes += s.Size
		j.Stored += s.Stored
		j.Decoded += s.Decoded
	}
	if t := r.Torn; t != nil {
		j.Torn = &jsonTorn{File: rel(ex.dir, t.Path), Offset: t.Offset, Bytes: t.Bytes, Records: t.Records, Reason: t.Reason}
	}
	for _, d := range r.Damage {
		j.Damage = append(j.Damage, damageJSON(ex.dir, d))
	}
	for _, d := range r.Released {
		j.Released = append(j.Released, damageJSON(ex.dir, d))
	}
	if s := r.SnapshotFile; s != nil {
		j.Snapshot = &jsonSnapshot{Index: s.Index, Size: s.Size, StoredSize: s.StoredSize, Compressed: s.Compressed,
			ModTime: s.ModTime, AgeSeconds: ex.now.Sub(s.ModTime).Seconds(), Verified: !ex.snapDamaged()}
	}
	if ex.plan != nil || ex.planErr != nil {
		j.Salvage = salvageJSON(ex.dir, ex.plan, ex.planErr)
	}
	for _, c := range ex.cursors {
		j.Cursors = append(j.Cursors, jsonCursor{Name: c.Name, Index: c.Index, Behind: ex.lastIndex() - min(c.Index, ex.lastIndex())})
	}
	if ex.cursorsErr != nil {
		j.CursorsError = ex.cursorsErr.Error()
	}
	return j
}

// damageJSON is d as the --json reports list it.
func damageJSON(dir string, d recovery.Damage) jsonDamage {
	return jsonDamage{Kind: d.Kind.String(), File: rel(dir, d.Path), Offset: d.Offset, Index: d.Index, Reason: d.Reason}
}

func salvageJSON(dir string, p *recovery.SalvagePlan, err error) *jsonSalvage {
	if err != nil {
		return &jsonSalvage{Refused: err.Error()}
	}
	j := &jsonSalvage{Quarantine: p.Quarantine}
	for _, r := range p.Reseal {
		j.Reseal = append(j.Reseal, rel(dir, r))
	}
	if rs := p.Restart; rs != nil {
		j.Restart = &jsonRestart{First: rs.First, Fresh: rs.Fresh, Missing: rs.Missing, Damage: describeDamage(dir, rs.Damage)}
	}
	if c := p.Cut; c != nil {
		j.Cut = &jsonCut{File: rel(dir, c.Path), Offset: c.Offset, FromIndex: c.Index, Records: c.Records, Bytes: c.Bytes,
			Damage: describeDamage(dir, c.Damage)}
		for _, l := range c.Later {
			j.Cut.Removed = append(j.Cut.Removed, rel(dir, l))
		}
	}
	return j
}

func (ex *examination) rels(paths []string) []string {
	out := []string{}
	for _, p := range paths {
		out = append(out, rel(ex.dir, p))
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// describeDamage is one line: file, offset, record, reason.
func describeDamage(dir string, d recovery.Damage) string {
	s := fmt.Sprintf("%s offset %d", rel(dir, d.Path), d.Offset)
	if d.Index != 0 {
		s += fmt.Sprintf(" (record %d)", d.Index)
	}
	return s + ": " + d.Reason
}

// printCommon prints the lines verify and info share: range, tail,
// leftovers, other files, damage.
func (ex *examination) printTail(w io.Writer) {
	r := ex.rep
	if t := r.Torn; t != nil {
		fmt.Fprintf(w, "tail:      torn: %s from offset %d, %s", rel(ex.dir, t.Path), t.Offset, plural(t.Bytes, "byte"))
		if t.Records > 0 {
			fmt.Fprintf(w, " and %s of an unfinished batch", plural(int64(t.Records), "record"))
		}
		fmt.Fprintf(w, " (%s)\n", cmpOr(t.Reason, "end of file"))
		fmt.Fprintf(w, "           expected after a crash, not damage: the next Open, or `wal recover %s`, cuts it\n", ex.dir)
	} else {
		fmt.Fprintf(w, "tail:      clean\n")
	}
	if n := len(r.Released); n > 0 {
		fmt.Fprintf(w, "released:  %s damaged (not part of the log; Open steps over it): %s\n",
			plural(int64(n), "place"), describeDamage(ex.dir, r.Released[0]))
	}
	if n := len(r.Temps) + len(r.Obsolete); n > 0 {
		var names []string
		for _, p := range append(append([]string(nil), r.Temps...), r.Obsolete...) {
			names = append(names, rel(ex.dir, p))
		}
		fmt.Fprintf(w, "leftovers: %s (the next Open, or `wal recover %s`, removes them)\n", strings.Join(names, ", "), ex.dir)
	}
	var other []string
	for _, name := range r.Other {
		if !known(name) {
			other = append(other, name)
		}
	}
	if len(other) > 0 {
		fmt.Fprintf(w, "other:     %s (not part of the log; left alone)\n", strings.Join(other, ", "))
	}
}

// known reports whether a name in a log directory that is neither a
// segment nor a temporary file belongs there anyway: the snapshot, the
// lock, salvage's quarantines and the consumers' cursors (listed on their
// own line, so not "not part of the log").
func known(name string) bool {
	return name == checkpoint.FileName || name == "LOCK" || name == cursor.DirName ||
		strings.HasPrefix(name, recovery.QuarantinePrefix)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// printDamage lists all damage and says what to do next.
func (ex *examination) printDamage(w io.Writer) {
	all := ex.rep.Damage
	if len(all) == 0 {
		return
	}
	fmt.Fprintf(w, "damage:    %s\n", plural(int64(len(all)), "place"))
	for _, d := range all {
		fmt.Fprintf(w, "  %s: %s\n", d.Kind, describeDamage(ex.dir, d))
	}
	if logDamage := ex.logDamage(); len(logDamage) > 0 {
		first := logDamage[0]
		fmt.Fprintf(w, "what now:  %s is damaged at offset %d", rel(ex.dir, first.Path), first.Offset)
		if first.Index != 0 {
			fmt.Fprintf(w, " (record %d)", first.Index)
		}
		fmt.Fprintln(w, ".")
		switch p := ex.plan; {
		case ex.planErr != nil:
			fmt.Fprintf(w, "           `wal recover --salvage` cannot fix this: %v\n", ex.planErr)
		case p != nil && p.Cut != nil:
			c := p.Cut
			where := "there"
			if c.Path != first.Path || c.Offset != first.Offset || len(p.Reseal) > 0 {
				where = fmt.Sprintf("at %s offset %d", rel(ex.dir, c.Path), c.Offset)
			}
			fmt.Fprintf(w, "           Run `wal recover --salvage %s` to cut the log %s, giving up %s\n",
				ex.dir, where, plural(int64(c.Records), "record"))
			fmt.Fprintf(w, "           (indexes %d on); the cut bytes are kept in %s.\n",
				c.Index, filepath.Join(ex.dir, recovery.QuarantinePrefix+"<time>"))
			if len(p.Reseal) > 0 {
				fmt.Fprintf(w, "           It first reseals %s, whose records are intact.\n", strings.Join(ex.rels(p.Reseal), ", "))
			}
			if c.Snapshot != 0 {
				fmt.Fprintf(w, "           The log continues after the snapshot (index %d), which covers %s cut from the log.\n",
					c.Snapshot, plural(int64(c.Covered), "record"))
			}
			fmt.Fprintf(w, "           Preview it first with `wal recover --salvage --dry-run %s`.\n", ex.dir)
		case p != nil && len(p.Reseal) > 0:
			fmt.Fprintf(w, "           Its records are intact: `wal recover --salvage %s` rewrites the footer, giving up nothing.\n", ex.dir)
		}
	}
	if ex.snapDamaged() {
		fmt.Fprintf(w, "           The snapshot is damaged or does not meet the log: restore it from a backup, or have the\n")
		fmt.Fprintf(w, "           application write a new one; the log's records are not affected by this.\n")
	}
}
