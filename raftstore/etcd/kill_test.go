package etcd

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/gojournal/journal/internal/seedtest"
	"github.com/gojournal/journal/internal/testproc"
)

// childEnv names the directory a child process runs its cluster in.
const childEnv = "JOURNAL_ETCD_CLUSTER_CHILD"

// TestClusterSIGKILL runs a three-node cluster on real directories in a
// child process, which reports each entry as it is committed, and kills it
// with SIGKILL at a random moment. Restarted from the three directories in
// this process, the cluster must hold every entry reported, at its index,
// on every node, and go on committing.
func TestClusterSIGKILL(t *testing.T) {
	s := seedtest.Seed(t)
	root := t.TempDir()
	// The child builds its cluster from the same seed.
	child := testproc.Start(t, "TestClusterChildProcess", []string{childEnv + "=" + root, fmt.Sprintf("%s=%d", seedtest.Env, s)})
	killAt := 50 + int(s%250)
	reported := map[uint64]string{}
	var last uint64
	var other []string
	for line := range child.Lines {
		var index uint64
		var data string
		if _, err := fmt.Sscanf(line, "committed %d %s", &index, &data); err != nil {
			other = append(other, line)
			continue
		}
		reported[index], last = data, max(last, index)
		if len(reported) == killAt {
			child.Kill()
		}
	}
	err := child.Wait()
	if len(reported) < killAt {
		t.Fatalf("the child exited (%v) after %d entries:\n%s", err, len(reported), strings.Join(other, "\n"))
	}
	t.Logf("killed the child after %d entries were reported committed (the last at %d)", len(reported), last)

	c := newClusterAt(t, root, nil, false)
	c.compactEvery, c.compactKeep = childCompactEvery, childCompactKeep
	for i, data := range reported {
		c.chosen[i] = data // a node that replays index i must apply exactly this
	}
	c.settle()
	c.proposeN("after", 30)
	c.check(len(reported) + 20)
	for _, n := range c.nodes {
		if n.index < last {
			t.Fatalf("node %d applied up to %d, before the last reported entry %d", n.id, n.index, last)
		}
		// Entries up to a node's snapshot are not replayed but restored
		// with the state machine: look for them there.
		has := map[string]bool{}
		for _, d := range n.applied {
			has[d] = true
		}
		for i, d := range reported {
			if !has[d] {
				t.Fatalf("node %d lost entry %d (%s), reported committed before the kill", n.id, i, d)
			}
		}
	}
}

// The child snapshots and compacts as it goes, so the restart also starts
// from snapshots.
const childCompactEvery, childCompactKeep = 40, 5

// TestClusterChildProcess is the child of TestClusterSIGKILL: it does
// nothing unless started by it.
func TestClusterChildProcess(t *testing.T) {
	root := os.Getenv(childEnv)
	if root == "" {
		return
	}
	c := newClusterAt(t, root, nil, true)
	c.compactEvery, c.compactKeep = childCompactEvery, childCompactKeep
	c.onChosen = func(index uint64, data string) { fmt.Printf("committed %d %s\n", index, data) }
	for i := 0; ; i++ {
		c.propose(fmt.Sprintf("p%d", i))
	}
}
