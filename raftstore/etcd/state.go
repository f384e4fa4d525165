package etcd

import (
	"encoding/binary"
	"errors"
	"fmt"

	pb "go.etcd.io/raft/v3/raftpb"
)

// state is what the state log records: the HardState and the compaction
// point (the index and term of the entry just before the first one the
// entries log holds: raft's "dummy" entry, whose term Term must still
// report). Every record holds the whole state, so the last valid record is
// the state; older records only wait to be released.
type state struct {
	term, vote, commit uint64
	compactIndex       uint64
	compactTerm        uint64
}

// On-disk layout of a state record (little-endian):
//
//	offset size field
//	0      1    version = 1
//	1      8    HardState.Term
//	9      8    HardState.Vote
//	17     8    HardState.Commit
//	25     8    compaction index (FirstIndex-1)
//	33     8    term of the entry at the compaction index
//
// The journal frames and checksums each record; this layout only has to be
// unambiguous.
const (
	stateVersion    = 1
	stateRecordSize = 1 + 5*8 // version + five uint64
)

var errStateFormat = errors.New("etcd: state record of unknown format")

func (s state) encode() []byte {
	b := make([]byte, stateRecordSize)
	b[0] = stateVersion
	for i, v := range []uint64{s.term, s.vote, s.commit, s.compactIndex, s.compactTerm} {
		binary.LittleEndian.PutUint64(b[1+8*i:], v)
	}
	return b
}

func decodeState(b []byte) (state, error) {
	if len(b) != stateRecordSize || b[0] != stateVersion {
		return state{}, fmt.Errorf("%w (%d bytes, version %d)", errStateFormat, len(b), firstByte(b))
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(b[1+8*i:]) }
	return state{term: u(0), vote: u(1), commit: u(2), compactIndex: u(3), compactTerm: u(4)}, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

func (s state) hardState() *pb.HardState {
	return &pb.HardState{Term: &s.term, Vote: &s.vote, Commit: &s.commit}
}

// withHardState returns s with hs's fields.
func (s state) withHardState(hs *pb.HardState) state {
	s.term, s.vote, s.commit = hs.GetTerm(), hs.GetVote(), hs.GetCommit()
	return s
}
