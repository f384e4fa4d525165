package segment

import (
	"fmt"
	"slices"
	"strings"
)

// readVersions are the segment format versions this build reads. Version,
// the one it writes, is always among them; reading another one is adding
// it here (and its decoder). Version 2 only adds TypeSync frames, which a
// version 1 file never holds, so one decoder reads both.
var readVersions = []uint32{1, Version}

// CheckVersion returns nil when found is among the versions this build
// reads of a kind of file ("segment", "snapshot", ...), and otherwise an
// ErrFormat that names both, such as "segment format version 7; this build
// reads version 1". Each file kind keeps one list of the versions it reads
// and passes it here, so that the list and the message cannot disagree.
func CheckVersion(kind string, found uint32, reads []uint32) error {
	if slices.Contains(reads, found) {
		return nil
	}
	return fmt.Errorf("%w: %s format version %d; this build reads %s", ErrFormat, kind, found, versionList(reads))
}

// versionList spells a list of versions: "version 1", "versions 1 and 2",
// "versions 1, 2 and 3".
func versionList(vs []uint32) string {
	if len(vs) == 1 {
		return fmt.Sprintf("version %d", vs[0])
	}
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprint(v)
	}
	return "versions " + strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
