package powercut

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// FileSystem says how to make, mount and check one kind of file system on
// the loop device.
type FileSystem struct {
	Name string
	// Tool is the mkfs program; its absence skips the file system.
	Tool string
	// Mkfs makes the file system on dev. Discards are off: the disk would
	// only turn them into writes of zeros.
	Mkfs []string
	// Check examines an unmounted file system without changing it, for
	// information only: a complaint is the file system's, not the log's.
	Check []string
	// MountOpts are passed to mount -o.
	MountOpts string
	// MinSize is the smallest disk mkfs accepts.
	MinSize int64
}

// FileSystems are the file systems the power cuts run on.
var FileSystems = []FileSystem{
	{
		Name: "ext4",
		Tool: "mkfs.ext4",
		// lazy init off: no kernel thread zeroing inode tables in the
		// background while the power is being cut.
		Mkfs:    []string{"mkfs.ext4", "-F", "-q", "-b", "4096", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0"},
		Check:   []string{"e2fsck", "-f", "-n"},
		MinSize: 64 << 20,
	},
	{
		Name:  "xfs",
		Tool:  "mkfs.xfs",
		Mkfs:  []string{"mkfs.xfs", "-f", "-q", "-K"},
		Check: []string{"xfs_repair", "-n"},
		// The same file system is mounted again while a lazily
		// unmounted instance may still linger.
		MountOpts: "nouuid",
		MinSize:   300 << 20, // xfsprogs 5.19 and later refuse smaller
	},
}

// run runs a command with a timeout and returns its combined output.
func run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// AttachLoop attaches image to a free loop device with SectorSize logical
// sectors and returns the device's path.
func AttachLoop(image string) (string, error) {
	out, err := run(30*time.Second, "losetup", "--find", "--show", "--sector-size", fmt.Sprint(SectorSize), image)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// DetachLoop detaches a loop device, retrying while it is still busy (a
// lazily unmounted file system lets go of it a little later).
func DetachLoop(dev string) error {
	var err error
	for range 100 {
		if _, err = run(30*time.Second, "losetup", "--detach", dev); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// Mount mounts dev, which holds file system f, at dir.
func Mount(f FileSystem, dev, dir string) error {
	args := []string{"-t", f.Name}
	if f.MountOpts != "" {
		args = append(args, "-o", f.MountOpts)
	}
	_, err := run(60*time.Second, "mount", append(args, dev, dir)...)
	return err
}

// Unmount unmounts dir: a plain unmount first (the dead disk accepts and
// discards writes, so it completes), then a lazy one if that fails or
// hangs.
func Unmount(dir string) error {
	_, err := run(30*time.Second, "umount", dir)
	if err == nil {
		return nil
	}
	if _, lerr := run(30*time.Second, "umount", "-l", dir); lerr != nil {
		return errors.Join(err, lerr)
	}
	return nil
}

// Preflight says why power cuts cannot run here, or "" if they can.
func Preflight() string {
	if os.Geteuid() != 0 {
		return "power cuts need root (mount, losetup, FUSE)"
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "power cuts need /dev/fuse: " + err.Error()
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return "power cuts need loop devices (/dev/loop-control): " + err.Error()
	}
	for _, tool := range []string{"losetup", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "power cuts need " + tool + ": " + err.Error()
		}
	}
	return ""
}

// fsSupported reports whether the kernel knows the file system type.
func fsSupported(name string) bool {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == name {
			return true
		}
	}
	return false
}

// Missing says why fs cannot be tested here, or "" if it can.
func (f FileSystem) Missing() string {
	if !fsSupported(f.Name) {
		return f.Name + " is not in /proc/filesystems"
	}
	if _, err := exec.LookPath(f.Tool); err != nil {
		hint := ""
		if f.Name == "xfs" {
			hint = " (apt-get install xfsprogs; run.sh does)"
		}
		return f.Tool + " is not installed" + hint
	}
	return ""
}

// syncFile fdatasyncs a file: used to check that a flush inside the
// mounted file system reaches the disk.
func syncFile(f *os.File) error {
	return unix.Fdatasync(int(f.Fd()))
}
