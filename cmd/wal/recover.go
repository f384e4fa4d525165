package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/gojournal/journal/recovery"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/wal"
)

func newRecover() *command {
	var o recoverOptions
	cmd := &command{
		Use:   "recover DIR",
		Short: "Repair what Open would repair, explicitly; --salvage cuts the log at damage",
		Long: `recover does, and reports, what Open does to a log in DIR after a crash: it cuts
a torn tail, removes leftover temporary files and obsolete segments, and
finishes a committed TruncateBack. --dry-run only says what it would do.

Damage inside data the log had made durable makes Open fail; recover reports it
and changes nothing, unless --salvage is given. A damaged record inside a
sealed segment does not stop Open (a default Open reads sealed segments'
footers, not their records), but Read fails there: recover checks every record,
as verify does, reports such damage (exit 1) and leaves it to --salvage.

Salvage cuts the log at the first damage, so the application can start: the
log then ends at the last complete write before the damage, the damaged
segment becomes the newest and later segments go. Nothing is deleted for good: every file that changes or
goes is first copied whole into DIR/quarantine-<time>/ (with a README saying
what was cut where), and the report says how many records were given up. A
sealed segment whose records are all intact but whose footer is missing or
damaged is resealed instead: nothing is given up.

recover takes the directory lock: stop the application first.

Exit codes: 0 the log is clean and nothing was given up (a torn tail is not
acknowledged data); 1 damage found and left (no --salvage), or records given
up by --salvage (or that --dry-run would give up); 2 usage or I/O error, or the
directory is locked.`,
		Example: `  wal recover --dry-run /var/lib/myapp/wal
  wal recover /var/lib/myapp/wal
  wal recover --salvage --dry-run /var/lib/myapp/wal
  wal recover --salvage /var/lib/myapp/wal`,
		Args: dirArg,
		RunE: func(cmd *command, args []string) error {
			o.dir = args[0]
			return recoverDir(cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "only report what would be done")
	cmd.Flags().BoolVar(&o.salvage, "salvage", false, "cut the log at the first damage, keeping the cut bytes in a quarantine directory")
	cmd.Flags().BoolVar(&o.json, "json", false, "print a machine-readable report")
	return cmd
}

type recoverOptions struct {
	dir                   string
	dryRun, salvage, json bool
}

type recoverReport struct {
	Dir      string       `json:"dir"`
	DryRun   bool         `json:"dry_run"`
	Status   string       `json:"status"` // clean, repaired, salvaged, damaged
	Salvage  *jsonSalvage `json:"salvage,omitempty"`
	Damage   []jsonDamage `json:"damage"`
	Torn     *jsonTorn    `json:"torn"`
	Removed  []string     `json:"removed"`
	Back     uint64       `json:"finished_truncate_back,omitempty"`
	GivenUp  uint64       `json:"records_given_up"`
	First    uint64       `json:"first_index"`
	Last     uint64       `json:"last_index"`
	Warnings []string     `json:"warnings,omitempty"`

	lines []string
}

func (r *recoverReport) say(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func recoverDir(w io.Writer, o recoverOptions) error {
	if err := checkDir(o.dir); err != nil {
		return err
	}
	fsys := vfs.Default
	r := &recoverReport{Dir: o.dir, DryRun: o.dryRun, Damage: []jsonDamage{}, Removed: []string{}}
	unlock, err := r.lock(fsys)
	if err != nil {
		return err
	}
	defer unlock()

	var plan *recovery.SalvagePlan
	if o.salvage {
		var code int
		if plan, code, err = r.salvage(fsys); err != nil {
			return err
		}
		if code >= 0 {
			return r.finish(w, o, code)
		}
	}

	st, err := recovery.Scan(fsys, o.dir, recovery.Options{})
	if st != nil && st.Damaged() {
		r.refuseDamaged(st.Damage[0])
		return r.finish(w, o, exitDamage)
	}
	if err != nil {
		return fail("%v", err)
	}
	r.describeRepairs(st)
	if !st.Clean() && !o.dryRun {
		if err := st.Repair(fsys); err != nil {
			return fail("repair stopped: %v; run `wal recover %s` again once the cause is fixed", err, o.dir)
		}
	}
	r.First, r.Last = max(st.FirstIndex, 1), st.NextIndex()-1
	code := r.settle(st, plan)
	// Prove it: the log must now pass the full check (a dry run checks
	// the log as it is, which the repair changes only at its tail).
	damaged, err := r.prove(fsys)
	if err != nil {
		return err
	}
	if damaged {
		return r.finish(w, o, exitDamage)
	}
	r.sayResult()
	return r.finish(w, o, code)
}

// would is done in a real run and would in a dry run.
func (r *recoverReport) would(done, would string) string {
	if r.DryRun {
		return would
	}
	return done
}

// lock takes the directory lock, which a real run needs and a dry run
// goes on without (with a warning), returning its release.
func (r *recoverReport) lock(fsys vfs.FS) (unlock func(), err error) {
	lock, err := fsys.Lock(filepath.Join(r.Dir, wal.LockName))
	switch {
	case errors.Is(err, vfs.ErrLocked):
		return nil, fail("%s is locked: a process (the application, or another wal command) has the log open. "+
			"Stop it first: recover needs the log to itself", r.Dir)
	case err != nil && !r.DryRun:
		return nil, fail("cannot lock %s: %v", r.Dir, err)
	case err != nil:
		r.Warnings = append(r.Warnings, fmt.Sprintf("could not take the lock (%v); a dry run goes on without it", err))
		return func() {}, nil
	}
	return func() { lock.Close() }, nil
}

// salvage checks every segment and cuts the log at the first damage (a
// dry run only plans it). code is the exit code when recover stops here
// (refused, or a dry run whose ordinary repair depends on the salvage),
// and -1 when the ordinary repair is to follow.
func (r *recoverReport) salvage(fsys vfs.FS) (plan *recovery.SalvagePlan, code int, err error) {
	live, err := recovery.Live(fsys, r.Dir)
	if err != nil {
		return nil, 0, fail("%v", err)
	}
	add, done := progress(dirSize(live), "checking segments")
	st, err := recovery.Check(fsys, r.Dir, recovery.CheckOptions{Progress: add})
	done()
	if err == nil {
		plan, err = recovery.PlanSalvageFor(fsys, st, st.Snapshot)
	}
	if errors.Is(err, recovery.ErrNoSalvage) {
		r.Status = "damaged"
		r.Salvage = salvageJSON(r.Dir, nil, err)
		r.say("salvage:    refused: %v", err)
		return nil, exitDamage, nil
	}
	if err != nil {
		return nil, 0, fail("%v", err)
	}
	if !plan.Empty() && !r.DryRun {
		if err := plan.Apply(fsys, time.Now()); err != nil {
			return nil, 0, fail("salvage stopped: %v. Nothing was deleted that is not in the quarantine directory; "+
				"fix the cause and run `wal recover --salvage %s` again", err, r.Dir)
		}
	}
	r.Salvage = salvageJSON(r.Dir, plan, nil)
	r.describeSalvage(plan)
	if plan.Empty() || !r.DryRun {
		return plan, -1, nil
	}
	// What the ordinary repair would do depends on the salvage: stop
	// here.
	code = exitOK
	if c := plan.Cut; c != nil && c.Records > 0 {
		r.GivenUp, code = c.Records, exitDamage
	}
	r.Status = "damaged"
	r.say("then:       the ordinary repair (torn tail, leftovers) runs on what remains")
	first, next := plan.Result()
	r.First, r.Last = first, next-1
	r.sayResult()
	return plan, code, nil
}

// refuseDamaged reports damage that Open refuses and recover leaves
// alone (no --salvage).
func (r *recoverReport) refuseDamaged(d recovery.Damage) {
	r.Status = "damaged"
	r.Damage = append(r.Damage, damageJSON(r.Dir, d))
	r.say("damage:     %s", describeDamage(r.Dir, d))
	r.say("what now:   Open refuses this log, and recover changed nothing. `wal verify %s` lists all the damage;", r.Dir)
	r.say("            `wal recover --salvage --dry-run %s` shows what salvage would cut and give up,", r.Dir)
	r.say("            `wal recover --salvage %s` cuts it, keeping the cut bytes in %s.", r.Dir,
		filepath.Join(r.Dir, recovery.QuarantinePrefix+"<time>"))
}

// describeRepairs says what the ordinary repair does (or would do).
func (r *recoverReport) describeRepairs(st *recovery.State) {
	if t := st.Torn; t != nil {
		r.Torn = &jsonTorn{File: rel(r.Dir, t.Path), Offset: t.Offset, Bytes: t.Bytes, Records: t.Records, Reason: t.Reason}
		extra := ""
		if t.Records > 0 {
			extra = fmt.Sprintf(" and %s of an unfinished batch", plural(int64(t.Records), "record"))
		}
		r.say("torn tail:  %s from offset %d: %s%s (%s): %s", rel(r.Dir, t.Path), t.Offset, plural(t.Bytes, "byte"), extra,
			cmpOr(t.Reason, "end of file"), r.would("cut", "would be cut"))
	}
	for _, p := range st.Temps {
		r.Removed = append(r.Removed, rel(r.Dir, p))
		r.say("leftover:   %s: %s", rel(r.Dir, p), r.would("removed", "would be removed"))
	}
	for _, p := range st.Obsolete {
		r.Removed = append(r.Removed, rel(r.Dir, p))
		r.say("obsolete:   %s: %s", rel(r.Dir, p), r.would("removed", "would be removed"))
	}
	if st.Meta.BackPending {
		r.Back = st.Meta.Back
		r.say("truncate:   the committed TruncateBack to %d %s", st.Meta.Back, r.would("was finished", "would be finished"))
	}
	if st.Meta.EmptyPending {
		r.say("truncate:   the committed TruncateFront past the end, to an empty log at %d, %s", st.Meta.FirstIndex,
			r.would("was finished", "would be finished"))
	}
	if st.Clean() {
		r.say("repair:     nothing to repair")
	}
}

// settle sets the report's status and returns the exit code.
func (r *recoverReport) settle(st *recovery.State, plan *recovery.SalvagePlan) (code int) {
	switch {
	case plan != nil && plan.Cut != nil:
		r.GivenUp, r.Status = plan.Cut.Records, "salvaged"
		if r.GivenUp > 0 {
			return exitDamage
		}
	case st.Clean():
		r.Status = "clean"
	default:
		r.Status = "repaired"
	}
	return exitOK
}

// prove checks every record of the log, as wal verify does: after a real
// run the log opens, and any damage left inside it (a record of a sealed
// segment, which a default Open does not read: Read fails there) is
// reported, by a dry run too.
func (r *recoverReport) prove(fsys vfs.FS) (damaged bool, err error) {
	rep, err := recovery.Check(fsys, r.Dir, recovery.CheckOptions{})
	if err != nil {
		return false, fail("%v", err)
	}
	if len(rep.Damage) == 0 {
		return false, nil
	}
	r.Status = "damaged"
	for _, d := range rep.Damage {
		r.Damage = append(r.Damage, damageJSON(r.Dir, d))
	}
	r.say("damage:     %s, but %s inside it are damaged (%s);", r.would("the log opens", "after this the log opens"),
		plural(int64(len(rep.Damage)), "place"), describeDamage(r.Dir, rep.Damage[0]))
	r.say("            Read fails there. `wal verify %s` lists them; `wal recover --salvage %s` cuts the log at the first.", r.Dir, r.Dir)
	return true, nil
}

// sayResult says what the log holds once recover is done (or would hold:
// a dry run's range is the one the real run reaches).
func (r *recoverReport) sayResult() {
	opens := r.would("the log opens cleanly", "after this the log opens cleanly")
	if r.Last+1 <= r.First {
		r.say("result:     %s: the log is empty (next index %d)", opens, r.First)
	} else {
		r.say("result:     %s: records %d to %d", opens, r.First, r.Last)
	}
}

func (r *recoverReport) describeSalvage(p *recovery.SalvagePlan) {
	if p.Empty() {
		r.say("salvage:    no damage: nothing to cut")
		return
	}
	for _, s := range p.Reseal {
		r.say("salvage:    %s: footer missing or damaged, every record intact: %s, nothing given up", rel(r.Dir, s), r.would("resealed", "would be resealed"))
	}
	if rs := p.Restart; rs != nil {
		r.say("damage:     %s", describeDamage(r.Dir, rs.Damage))
		what := fmt.Sprintf("the log %s at %d", r.would("now starts", "would start"), rs.First)
		if rs.Fresh {
			what += fmt.Sprintf(", in an empty segment (%s)", r.would("created", "to be created"))
		}
		r.say("salvage:    %s; %s already missing", what, plural(int64(rs.Missing), "record"))
	}
	c := p.Cut
	if c == nil {
		r.describeQuarantine(p)
		return
	}
	r.say("damage:     %s", describeDamage(r.Dir, c.Damage))
	what := fmt.Sprintf("%s at offset %d", r.would("cut", "would be cut"), c.Offset)
	if c.Offset == 0 {
		what = r.would("removed", "would be removed")
		if c.Fresh != 0 && c.Snapshot == 0 {
			what += fmt.Sprintf(" (an empty segment starting at %d %s)", c.Fresh, r.would("takes its place", "would take its place"))
		}
	}
	later := ""
	if len(c.Later) > 0 {
		var names []string
		for _, l := range c.Later {
			names = append(names, rel(r.Dir, l))
		}
		later = fmt.Sprintf("; later segments %s: %s", r.would("removed", "would go"), strings.Join(names, ", "))
	}
	r.say("salvage:    %s: %s%s", rel(r.Dir, c.Path), what, later)
	if c.Snapshot != 0 {
		r.say("salvage:    the snapshot covers the log up to %d: the log continues after it, in an empty segment from %d;",
			c.Snapshot, c.Fresh)
		r.say("            %s cut from the log are covered by the snapshot", plural(int64(c.Covered), "record"))
	}
	r.say("salvage:    records given up: %d (indexes %d on; the log ends at %d), %s leave the log",
		c.Records, c.Index, c.Index-1, bytesIEC(c.Bytes))
	r.describeQuarantine(p)
}

func (r *recoverReport) describeQuarantine(p *recovery.SalvagePlan) {
	n := len(p.Copies)
	if p.Quarantine == "" {
		r.say("quarantine: whole copies of %s would be kept in %s", plural(int64(n), "file"),
			filepath.Join(r.Dir, recovery.QuarantinePrefix+"<time>"))
		return
	}
	r.say("quarantine: %s (whole copies of %s, and a README; never deleted by journal)", p.Quarantine, plural(int64(n), "file"))
}

func (r *recoverReport) finish(w io.Writer, o recoverOptions, code int) error {
	if o.json {
		if err := writeJSON(w, r); err != nil {
			return fail("%v", err)
		}
	} else {
		title := "recover"
		if o.dryRun {
			title += " (dry run: nothing is changed)"
		}
		fmt.Fprintf(w, "%s %s\n", title, o.dir)
		for _, l := range r.lines {
			fmt.Fprintln(w, l)
		}
		for _, warn := range r.Warnings {
			fmt.Fprintf(w, "warning:    %s\n", warn)
		}
	}
	if code != exitOK {
		return &exit{code: code}
	}
	return nil
}
