// Command wal is the operator's tool for journal logs: it verifies, describes,
// dumps, recovers and salvages a log directory, truncates it, shows its
// snapshot, and benchmarks and demonstrates the log.
//
//	go install github.com/gojournal/journal/cmd/wal@latest
//
// Commands:
//
//	wal verify DIR      check every checksum; report all damage (read-only)
//	wal info DIR        segments, index range, bytes, compression, snapshot (read-only)
//	wal dump DIR        print records, as text, JSON lines or hex (read-only)
//	wal recover DIR     do what Open would repair, explicitly; --salvage cuts damage
//	wal truncate DIR    drop records before (--front) or after (--back) an index
//	wal checkpoint DIR  show the snapshot's header
//	wal bench           durable-append throughput and latency
//	wal demo            append, checkpoint, SIGKILL a writer, recover, verify
//
// Exit codes, the same for every command:
//
//	0  ok (verify: no damage; a torn tail alone is not damage, Open cuts it)
//	1  damage found (verify, info, dump, checkpoint), or records given up
//	   or left damaged (recover), or a record lost (demo)
//	2  usage error, I/O error, or the directory is locked by another process
//
// With --json (verify, info, recover), stdout always holds one JSON
// document: the report, or, for an error ending in exit code 2,
// {"status": "error", "error": "..."} (the message goes to stderr too).
//
// The read-only commands (verify, info, dump, checkpoint) never take the
// directory lock and open every file read-only, so they work on a log that a
// running process has open and on a read-only file system. They read the
// directory through packages recovery, segment and checkpoint, never through
// wal.Open, which would lock it and repair it. recover takes the lock; truncate
// opens the log.
//
// The command line uses only the standard library (flag), so that the
// module that applications import requires no CLI framework: its go.sum
// stays small. Progress bars are drawn on stderr, and only when stderr is
// a terminal, so scripts and pipes see clean output.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Exit codes.
const (
	exitOK     = 0
	exitDamage = 1
	exitError  = 2
)

// exit carries an exit code out of a command. A nil err means the command
// has already said everything.
type exit struct {
	code int
	err  error
}

func (e *exit) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exit) Unwrap() error { return e.err }

// damaged ends a command with exit code 1 after it reported the damage.
func damaged() error { return &exit{code: exitDamage} }

// fail ends a command with exit code 2 and a message.
func fail(format string, args ...any) error {
	return &exit{code: exitError, err: fmt.Errorf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	err := execute(root, commands(), args, stdout)
	if err == nil {
		return exitOK
	}
	var e *exit
	if errors.As(err, &e) {
		if e.err != nil {
			fmt.Fprintf(stderr, "wal: %v\n", e.err)
		}
		return e.code
	}
	// Anything else is a usage error: a bad flag, argument or command.
	fmt.Fprintf(stderr, "wal: %v\nRun 'wal --help' (or 'wal COMMAND --help') for usage.\n", err)
	return exitError
}

// root holds wal's own help.
var root = &command{
	Use:   "wal",
	Short: "Inspect, verify, recover and exercise journal write-ahead logs",
	Long: `wal is the operator's tool for journal write-ahead logs.

verify, info, dump and checkpoint only read: they never lock the directory and
work on a log another process has open, or on a read-only file system.
recover and truncate change the log and need it to themselves.

Exit codes: 0 ok, 1 damage found (or records given up by recover),
2 usage or I/O error, or the directory is locked. With --json, an error
(exit 2) is printed on stdout too, as {"status": "error", "error": "..."}.`,
	Example: `  wal verify /var/lib/myapp/wal
  wal recover --dry-run /var/lib/myapp/wal`,
}

// commands are wal's commands, made afresh for each run.
func commands() []*command {
	return []*command{
		newVerify(), newInfo(), newDump(), newRecover(), newTruncate(),
		newCheckpoint(), newBench(), newDemo(), newDemoChild(),
	}
}

// dirArg is the Args check of the commands that take one log directory.
func dirArg(cmd *command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one argument, the log directory (got %d)", cmd.Name(), len(args))
	}
	return nil
}

// checkDir fails with exit code 2 unless dir is an existing directory.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fail("%v", err)
	}
	if !fi.IsDir() {
		return fail("%s is not a directory", dir)
	}
	return nil
}
