package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one command of wal: its help, its flags and what it runs.
// Flags are the standard library's, which take --name as well as -name;
// they may come before or after the arguments (wal dump DIR --format
// json), and "--" ends them.
type command struct {
	Use     string // the name, then the arguments: "verify DIR"
	Short   string // one line, for the list of commands
	Long    string
	Example string
	Hidden  bool // run by wal itself (demo's child), not listed
	Args    func(cmd *command, args []string) error
	RunE    func(cmd *command, args []string) error

	flags *flag.FlagSet
	out   io.Writer
}

// Name is the command's name, the first word of Use.
func (c *command) Name() string {
	name, _, _ := strings.Cut(c.Use, " ")
	return name
}

// Flags is the command's flag set, made on first use.
func (c *command) Flags() *flag.FlagSet {
	if c.flags == nil {
		c.flags = flag.NewFlagSet(c.Name(), flag.ContinueOnError)
		c.flags.SetOutput(io.Discard) // errors are reported by run
	}
	return c.flags
}

// OutOrStdout is where the command prints its report.
func (c *command) OutOrStdout() io.Writer { return c.out }

// changed reports whether the flag was given on the command line.
func (c *command) changed(name string) bool {
	set := false
	c.Flags().Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// noArgs is the Args check of the commands that take no argument.
func noArgs(cmd *command, args []string) error {
	if len(args) != 0 {
		return fmt.Errorf("%s takes no arguments (got %q)", cmd.Name(), args)
	}
	return nil
}

// parse parses the flags among args and returns the other arguments.
func (c *command) parse(args []string) ([]string, error) {
	var rest []string
	fs := c.Flags()
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		left := fs.Args()
		if len(left) == 0 {
			return rest, nil
		}
		if n := len(args) - len(left); n > 0 && args[n-1] == "--" {
			return append(rest, left...), nil
		}
		rest, args = append(rest, left[0]), left[1:]
	}
}

// execute runs args[0] of cmds with the rest of args, or prints help.
func execute(root *command, cmds []*command, args []string, out io.Writer) error {
	if len(args) == 0 {
		printRootHelp(root, cmds, out)
		return &exit{code: exitError}
	}
	name := args[0]
	if name == "help" && len(args) > 1 {
		name, args = args[1], []string{args[1], "--help"}
	}
	switch name {
	case "-h", "-help", "--help", "help":
		printRootHelp(root, cmds, out)
		return nil
	}
	for _, c := range cmds {
		if c.Name() != name {
			continue
		}
		c.out = out
		rest, err := c.parse(args[1:])
		if errors.Is(err, flag.ErrHelp) {
			printHelp(c, out)
			return nil
		}
		if err != nil {
			return err
		}
		if err := c.Args(c, rest); err != nil {
			return err
		}
		err = c.RunE(c, rest)
		c.jsonError(err)
		return err
	}
	return fmt.Errorf("unknown command %q", name)
}

// jsonError prints a command's error (exit code 2) as a JSON object on
// stdout when --json was given, so that a script reading the report
// always gets one document: {"status": "error", "error": "..."}. The
// message goes to stderr as well, as for every error.
func (c *command) jsonError(err error) {
	var e *exit
	if !errors.As(err, &e) || e.code != exitError || e.err == nil {
		return
	}
	if f := c.Flags().Lookup("json"); f == nil || f.Value.String() != "true" {
		return
	}
	writeJSON(c.out, struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}{"error", e.err.Error()})
}

func printRootHelp(root *command, cmds []*command, out io.Writer) {
	fmt.Fprintf(out, "%s\n\nUsage:\n  wal COMMAND [flags] [DIR]\n\nCommands:\n", root.Long)
	for _, c := range cmds {
		if !c.Hidden {
			fmt.Fprintf(out, "  %-11s %s\n", c.Name(), c.Short)
		}
	}
	fmt.Fprintf(out, "\nExamples:\n%s\n\nRun 'wal COMMAND --help' for a command's flags.\n", root.Example)
}

func printHelp(c *command, out io.Writer) {
	fmt.Fprintf(out, "%s\n\nUsage:\n  wal %s [flags]\n", c.Long, c.Use)
	if c.Example != "" {
		fmt.Fprintf(out, "\nExamples:\n%s\n", c.Example)
	}
	fmt.Fprintf(out, "\nFlags:\n")
	c.Flags().VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(out, "  --%s %s\n        %s", f.Name, kind, usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(out, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(out)
	})
	fmt.Fprintf(out, "  --help\n        this help\n")
}
