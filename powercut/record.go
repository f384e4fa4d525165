package powercut

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
)

// A workload record describes itself, so a record read back after a power
// cut can be checked on its own and against its neighbours:
//
//	offset  width  field
//	     0      4  magic "pcut"
//	     4      4  round that appended it
//	     8      4  writer (goroutine) within the round
//	    12      2  position in its batch (0 for a single append)
//	    14      2  batch length (1 for a single append)
//	    16      8  writer's sequence number, from 0 in each round
//	    24      8  index of the writer's previous record (of the record
//	               before the batch, for batch members); 0 for none
//	    32      4  payload length
//	    36      n  payload: bytes derived from round, writer and sequence
//
// Integers are little-endian. The payload is a pure function of the
// header, so a record is either exactly right or garbage.
const (
	recordMagic  = "pcut"
	recordHeader = 36
)

// Ident is what a record says about itself.
type Ident struct {
	Round    uint32
	Writer   uint32
	BatchPos uint16
	BatchLen uint16
	Seq      uint64
	Prev     uint64
	Size     uint32 // payload length
}

func (id Ident) String() string {
	s := fmt.Sprintf("round %d writer %d seq %d", id.Round, id.Writer, id.Seq)
	if id.BatchLen > 1 {
		s += fmt.Sprintf(" (batch %d/%d)", id.BatchPos+1, id.BatchLen)
	}
	return s
}

// payload fills b with the bytes a record of this round, writer and
// sequence number carries.
func payload(b []byte, round, writer uint32, seq uint64) {
	r := rand.NewPCG(uint64(round)<<32|uint64(writer), seq)
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(b[i:], w[:])
	}
}

// Encode returns the record id describes.
func Encode(id Ident) []byte {
	b := make([]byte, recordHeader+int(id.Size))
	copy(b, recordMagic)
	binary.LittleEndian.PutUint32(b[4:], id.Round)
	binary.LittleEndian.PutUint32(b[8:], id.Writer)
	binary.LittleEndian.PutUint16(b[12:], id.BatchPos)
	binary.LittleEndian.PutUint16(b[14:], id.BatchLen)
	binary.LittleEndian.PutUint64(b[16:], id.Seq)
	binary.LittleEndian.PutUint64(b[24:], id.Prev)
	binary.LittleEndian.PutUint32(b[32:], id.Size)
	payload(b[recordHeader:], id.Round, id.Writer, id.Seq)
	return b
}

// errGarbage is wrapped by Decode's errors.
var errGarbage = errors.New("not a workload record")

// Decode checks that b is exactly a workload record and returns what it
// says about itself.
func Decode(b []byte) (Ident, error) {
	if len(b) < recordHeader || string(b[:4]) != recordMagic {
		return Ident{}, fmt.Errorf("%w: %d bytes starting %x", errGarbage, len(b), b[:min(len(b), 16)])
	}
	id := Ident{
		Round:    binary.LittleEndian.Uint32(b[4:]),
		Writer:   binary.LittleEndian.Uint32(b[8:]),
		BatchPos: binary.LittleEndian.Uint16(b[12:]),
		BatchLen: binary.LittleEndian.Uint16(b[14:]),
		Seq:      binary.LittleEndian.Uint64(b[16:]),
		Prev:     binary.LittleEndian.Uint64(b[24:]),
		Size:     binary.LittleEndian.Uint32(b[32:]),
	}
	if int64(len(b)) != recordHeader+int64(id.Size) {
		return id, fmt.Errorf("%w: %s: %d bytes, header says %d", errGarbage, id, len(b), recordHeader+int64(id.Size))
	}
	if id.BatchLen == 0 || id.BatchPos >= id.BatchLen {
		return id, fmt.Errorf("%w: %s: batch position %d of %d", errGarbage, id, id.BatchPos, id.BatchLen)
	}
	if want := Encode(id); !bytes.Equal(b, want) {
		i := 0
		for i < len(b) && b[i] == want[i] {
			i++
		}
		return id, fmt.Errorf("%w: %s: payload differs from byte %d", errGarbage, id, i)
	}
	return id, nil
}
