// Package testproc runs a test of the current test binary as a child
// process, for tests that SIGKILL a writer and check what another process
// (or a restart) finds. The child is the test binary re-executing itself
// with -test.run selecting one test, which does nothing unless the
// environment variable its parent sets is present.
//
// It is a test helper shared by the root module and the nested raftstore
// modules (an internal package under the module root, so they may import
// it); nothing else should.
package testproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is a running child. Its stdout arrives line by line on Lines,
// which is closed when the child's stdout ends; its stderr is kept and
// logged if the test fails.
type Process struct {
	Lines <-chan string

	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *strings.Builder
	waited bool
	err    error // the exit status, once waited
}

// Start runs the test named test (matched exactly) of this test binary in
// a child process, with env ("NAME=value" items) added to this process's
// environment and args added to its command line (test flags). It skips t where the binary cannot start a copy of itself:
// under qemu-user without binfmt_misc (CI's linux/arm and linux/s390x
// runs) exec fails with ENOEXEC, and the native run covers the test. The
// child is killed and reaped when t ends.
func Start(t testing.TB, test string, env []string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^" + test + "$", "-test.count=1"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	lines := make(chan string)
	p := &Process{Lines: lines, t: t, cmd: cmd, stderr: new(strings.Builder)}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); errors.Is(err, syscall.ENOEXEC) {
		t.Skipf("the test binary cannot start a copy of itself here: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		p.Wait()
		if t.Failed() {
			t.Logf("child stderr:\n%s", p.stderr.String())
		}
	})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return p
}

// Expect waits (2 minutes at most) for the child's line starting with
// prefix, skipping others, and returns it. A line starting with "error"
// fails the test.
func (p *Process) Expect(prefix string) string {
	p.t.Helper()
	for {
		select {
		case l, ok := <-p.Lines:
			if !ok {
				p.t.Fatalf("the child exited before %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
			if strings.HasPrefix(l, "error") {
				p.t.Fatalf("child: %s", l)
			}
		case <-time.After(2 * time.Minute):
			p.t.Fatalf("no %q from the child in 2 minutes", prefix)
		}
	}
}

// Proceed writes a line to the child's stdin: the go-ahead a child waiting
// on its parent reads.
func (p *Process) Proceed() { fmt.Fprintln(p.stdin) }

// Kill sends SIGKILL (if the child still runs) and returns at once: the
// lines it wrote before dying still arrive on Lines.
func (p *Process) Kill() { p.cmd.Process.Kill() }

// Wait discards the lines not yet read, until the child's stdout ends,
// reaps it and returns its exit status (exec.Cmd.Wait's error). Call it
// once whatever reads Lines has finished.
func (p *Process) Wait() error {
	for range p.Lines {
	}
	if !p.waited {
		p.waited = true
		p.err = p.cmd.Wait()
	}
	return p.err
}
