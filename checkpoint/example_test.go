package checkpoint_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/gojournal/journal/checkpoint"
	"github.com/gojournal/journal/vfs"
)

// Replace a configuration file so that a crash leaves either the old one or
// the new one, never a torn mix.
func ExampleWriteFile() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "config.json")

	cfg := map[string]int{"segment_mib": 64, "retain": 3}
	err = checkpoint.WriteFile(path, 0o666, func(w io.Writer) error {
		return json.NewEncoder(w).Encode(cfg)
	})
	if err != nil {
		log.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	fmt.Print(string(b))
	// Output: {"retain":3,"segment_mib":64}
}

// A key-value store checkpoints its state as of log index 1042, streaming
// it without building it in memory.
func ExampleWrite() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	state := map[string]string{"alice": "1", "bob": "2"}
	err = checkpoint.Write(vfs.Default, dir, 1042, checkpoint.WriteOptions{Compress: true}, func(w io.Writer) error {
		for _, k := range []string{"alice", "bob"} {
			if _, err := fmt.Fprintf(w, "%s=%s\n", k, state[k]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Only now may the log drop the records up to 1042.
	h, err := checkpoint.ReadHeader(vfs.Default, dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(h.Index, h.Compressed, h.Size)
	// Output: 1042 true 14
}

// On start, a store loads its snapshot, reads it to the end (only then is
// its checksum known to be good), and replays the log from the next index.
func ExampleLoad() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	err = checkpoint.Write(vfs.Default, dir, 7, checkpoint.WriteOptions{}, func(w io.Writer) error {
		_, err := io.WriteString(w, "alice=1\nbob=2\n")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	index, r, err := checkpoint.Load(vfs.Default, dir)
	if err != nil {
		// errors.Is(err, checkpoint.ErrNoSnapshot): start empty, replay
		// the whole log. Anything else: the snapshot is unusable.
		log.Fatal(err)
	}
	defer r.Close()
	state := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		state[k] = v
	}
	if err := sc.Err(); err != nil {
		// Damaged (errors.Is(err, ErrCorrupt)) or unreadable:
		// discard state.
		log.Fatal(err)
	}
	fmt.Println(len(state), "keys; replay the log from index", index+1)
	// Output: 2 keys; replay the log from index 8
}
