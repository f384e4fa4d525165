package crashtest

import (
	"os/exec"
	"runtime/debug"
)

// GoBuild is the command that builds pkg into out with the build tags of
// the running test binary, so a test that runs a built command (cmd/wal)
// alongside its own process uses the same vfs code path in both: under
// journal_portable they take the fcntl lock, which on Linux does not
// exclude a flock, so mixed builds would not see each other's lock.
func GoBuild(out, pkg string) *exec.Cmd {
	args := []string{"build"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-tags" && s.Value != "" {
				args = append(args, "-tags="+s.Value)
			}
		}
	}
	return exec.Command("go", append(args, "-o", out, pkg)...)
}
