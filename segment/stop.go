package segment

import "fmt"

// Stop says why a frame is not valid, or why a scan ended. It is a typed
// value so that what recovery does never depends on the wording of a
// message.
type Stop uint8

const (
	// StopNone: the frame is valid, or the scan has not stopped.
	StopNone Stop = iota
	// StopEOF: the end of the file (or of the range scanned) was reached
	// at a frame boundary.
	StopEOF
	// StopZeros: zeros where the next frame would be: the end of the
	// log, not damage.
	StopZeros
	// StopFooter: a valid footer ended the scan.
	StopFooter
	// StopShortHeader: fewer than FrameHeader bytes remain.
	StopShortHeader
	// StopShortPayload: the file ends inside the frame's payload.
	StopShortPayload
	// StopType: the type byte is not a known frame type.
	StopType
	// StopCodec: the codec byte is unknown (or not 0 in a footer).
	StopCodec
	// StopReserved: the reserved bytes are not zero.
	StopReserved
	// StopLength: the payload length exceeds the largest possible.
	StopLength
	// StopSynced: the synced offset is out of range.
	StopSynced
	// StopChecksum: the checksum does not match.
	StopChecksum
	// StopIndex: a valid frame carries an unexpected index.
	StopIndex
)

var stopText = [...]string{
	StopNone:         "valid",
	StopEOF:          "end of file",
	StopZeros:        "zeroed space",
	StopFooter:       "footer",
	StopShortHeader:  "truncated frame header",
	StopShortPayload: "truncated frame payload",
	StopType:         "bad frame type",
	StopCodec:        "bad codec",
	StopReserved:     "reserved bytes are not zero",
	StopLength:       "payload length exceeds the maximum",
	StopSynced:       "synced offset out of range",
	StopChecksum:     "checksum mismatch",
	StopIndex:        "unexpected index",
}

// String describes the stop in words, for messages only.
func (s Stop) String() string {
	if int(s) < len(stopText) {
		return stopText[s]
	}
	return fmt.Sprintf("stop(%d)", uint8(s))
}

// Incomplete reports whether more bytes might have made the frame valid:
// the file ends inside it.
func (s Stop) Incomplete() bool { return s == StopShortHeader || s == StopShortPayload }

// End reports whether the scan reached the end of the data without finding
// anything invalid: the end of the file, zeros, or a footer.
func (s Stop) End() bool { return s == StopEOF || s == StopZeros || s == StopFooter }
