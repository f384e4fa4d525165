package fuzz

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gojournal/journal/internal/crashtest"
	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/vfs"
	"github.com/gojournal/journal/vfs/crashfs"
	"github.com/gojournal/journal/wal"
)

// TestAgreementCLI runs the real `wal` binary on a few of the agreement
// test's states, written to disk: `wal verify` against Open with Verify,
// and `wal recover --salvage --dry-run` against the real run on a copy.
// JOURNAL_AGREE_CLI=N checks N states (default 20).
func TestAgreementCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the wal binary")
	}
	bin := filepath.Join(t.TempDir(), "wal")
	if out, err := crashtest.GoBuild(bin, "github.com/gojournal/journal/cmd/wal").CombinedOutput(); err != nil {
		t.Fatalf("build wal: %v\n%s", err, out)
	}
	n := 20
	if s := os.Getenv("JOURNAL_AGREE_CLI"); s != "" {
		fmt.Sscan(s, &n)
	}
	s := seedtest.Seed(t)
	t.Log("JOURNAL_AGREE_CLI=N checks N states")
	var fig agreeFigures
	for i := 0; i < n; i++ {
		// Cases apart from TestAgreement's, half of them damaged for sure.
		rng := rand.New(rand.NewPCG(s, 1<<32+uint64(i)))
		b := buildLog(rng, &fig)
		if _, err := b.fs.Stat(crashtest.Dir); err != nil {
			continue
		}
		muts := damage(b.fs, rng, &fig)
		if i%2 == 0 {
			if m := mutate(b.fs, rng); m != "" {
				muts = append(muts, m)
				fig.mutations++
			}
		}
		fig.states++
		if err := agreeCLI(t, bin, b, &fig); err != nil {
			fig.disagreements++
			t.Errorf("seed %d CLI case %d: %v\nbuilt: %v\ndamaged: %v", s, i, err, b.ops, muts)
		}
	}
	t.Logf("CLI %s", fig.String())
}

// cliReport is what the tests read of verify's and recover's JSON.
type cliReport struct {
	Status  string `json:"status"`
	First   uint64 `json:"first_index"`
	Last    uint64 `json:"last_index"`
	GivenUp uint64 `json:"records_given_up"`
	Torn    *struct {
		File    string `json:"file"`
		Offset  int64  `json:"offset"`
		Bytes   int64  `json:"bytes"`
		Records int    `json:"records"`
	} `json:"torn"`
	Damage []struct {
		Kind   string `json:"kind"`
		File   string `json:"file"`
		Offset int64  `json:"offset"`
	} `json:"damage"`
	Salvage *struct {
		Refused string `json:"refused"`
	} `json:"salvage"`
}

func runWal(bin string, args ...string) (cliReport, int, error) {
	var r cliReport
	out, err := exec.Command(bin, args...).Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return r, 0, err
	}
	if code > 1 {
		return r, code, fmt.Errorf("wal %v: exit %d: %s", args, code, ee.Stderr)
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, code, fmt.Errorf("wal %v: %v: %s", args, err, out)
	}
	return r, code, nil
}

// toDisk writes the log directory of a crashfs state into a new directory.
func toDisk(t *testing.T, fsys *crashfs.FS) string {
	dir := filepath.Join(t.TempDir(), "log")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names, _ := fsys.ReadDir(crashtest.Dir)
	for _, name := range names {
		if name == wal.LockName {
			continue
		}
		f, err := fsys.OpenFile(filepath.Join(crashtest.Dir, name), os.O_RDONLY, 0)
		if err != nil {
			continue // a directory
		}
		size, _ := f.Size()
		buf := make([]byte, size)
		f.ReadAt(buf, 0)
		f.Close()
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func agreeCLI(t *testing.T, bin string, b *built, fig *agreeFigures) error {
	v, code, err := runWal(bin, "verify", "--json", toDisk(t, b.fs))
	if err != nil {
		return err
	}
	dir := toDisk(t, b.fs)
	opts := b.opts
	opts.FS, opts.Verify = vfs.Default, true
	l, oerr := wal.Open(dir, &opts)
	if code == 0 {
		if v.Torn != nil {
			fig.torn++
		} else {
			fig.clean++
		}
		if oerr != nil {
			return fmt.Errorf("verify exit 0 (%s), Open: %w", v.Status, oerr)
		}
		defer l.Close()
		if l.FirstIndex() != v.First || l.LastIndex() != v.Last {
			return fmt.Errorf("verify lists [%d, %d], Open holds [%d, %d]", v.First, v.Last, l.FirstIndex(), l.LastIndex())
		}
		got, want := l.Recovered().Torn, v.Torn
		if (got == nil) != (want == nil) || got != nil && (got.Path != filepath.Join(dir, want.File) ||
			got.Offset != want.Offset || got.Bytes != want.Bytes || got.Records != want.Records) {
			return fmt.Errorf("verify says torn %+v, Open cut %+v", want, deref(got))
		}
		return nil
	}
	fig.damaged++
	if oerr == nil {
		l.Close()
		return fmt.Errorf("verify exit 1 (%+v), Open succeeded", v.Damage)
	}
	if len(v.Damage) == 0 {
		return fmt.Errorf("verify exit 1 lists no damage")
	}
	var ce *wal.CorruptionError
	d := v.Damage[0]
	if errors.As(oerr, &ce) && (ce.Path != filepath.Join(dir, d.File) || ce.Offset != d.Offset) {
		return fmt.Errorf("verify's first damage is %s at %d, Open's: %v", d.File, d.Offset, oerr)
	}
	if !errors.Is(oerr, wal.ErrCorrupt) && !errors.Is(oerr, wal.ErrFormat) {
		return fmt.Errorf("Open: %v, want ErrCorrupt or ErrFormat", oerr)
	}
	return agreeCLISalvage(bin, b, toDisk(t, b.fs), toDisk(t, b.fs), fig)
}

// agreeCLISalvage: the dry run must predict the real run.
func agreeCLISalvage(bin string, b *built, dry, real string, fig *agreeFigures) error {
	p, pcode, err := runWal(bin, "recover", "--salvage", "--dry-run", "--json", dry)
	if err != nil {
		return err
	}
	r, rcode, err := runWal(bin, "recover", "--salvage", "--json", real)
	if err != nil {
		return err
	}
	refused := p.Salvage != nil && p.Salvage.Refused != ""
	if refused != (r.Salvage != nil && r.Salvage.Refused != "") {
		return fmt.Errorf("the dry run refused %v, the real run %v", refused, !refused)
	}
	if refused {
		fig.refused++
		return nil
	}
	fig.salvaged++
	if p.GivenUp != r.GivenUp || pcode != rcode || r.Status == "damaged" {
		return fmt.Errorf("dry run: exit %d, %d records given up; real run: exit %d, status %s, %d given up",
			pcode, p.GivenUp, rcode, r.Status, r.GivenUp)
	}
	opts := b.opts
	opts.FS, opts.Verify = vfs.Default, true
	l, err := wal.Open(real, &opts)
	if err != nil {
		return fmt.Errorf("after the real salvage, Open: %w", err)
	}
	defer l.Close()
	if l.FirstIndex() != r.First || l.LastIndex() != r.Last {
		return fmt.Errorf("salvage reported [%d, %d], Open holds [%d, %d]", r.First, r.Last, l.FirstIndex(), l.LastIndex())
	}
	if _, err := readAll(l, b.hist); err != nil {
		return fmt.Errorf("after the real salvage: %w", err)
	}
	return nil
}
