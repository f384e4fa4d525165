package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gojournal/journal/internal/errs"
	"github.com/gojournal/journal/internal/seedtest"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{FirstIndex: 1, Salt: 0, Version: Version},
		{FirstIndex: 1, Salt: 0x0123456789abcdef, Version: 2},
		{FirstIndex: 1 << 40, Salt: 42, Version: 1},
		{FirstIndex: ^uint64(0), Salt: ^uint64(0), Version: Version},
	} {
		b := appendHeader([]byte("prefix"), h)
		if len(b) != len("prefix")+HeaderSize {
			t.Fatalf("appendHeader wrote %d bytes, want %d", len(b)-len("prefix"), HeaderSize)
		}
		got, err := decodeHeader(b[len("prefix"):])
		if err != nil || got != h {
			t.Errorf("decodeHeader(appendHeader(%+v)) = %+v, %v", h, got, err)
		}
	}
}

func TestHeaderRejection(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		want   error // errs.ErrFormat or errs.ErrCorrupt
	}{
		// Fewer than 40 bytes are a header whose write was torn, whatever
		// they hold: even junk is not called a foreign file.
		{"ShorterThanHeaderIsCorrupt", func(b []byte) []byte { return b[:HeaderSize-1] }, errs.ErrCorrupt},
		{"EmptyFileIsCorrupt", func(b []byte) []byte { return nil }, errs.ErrCorrupt},
		{"OneByteIsCorrupt", func(b []byte) []byte { return b[:1] }, errs.ErrCorrupt},
		{"MagicOnlyIsCorrupt", func(b []byte) []byte { return b[:len(Magic)] }, errs.ErrCorrupt},
		{"NewlineOnlyIsCorrupt", func(b []byte) []byte { return []byte("\n") }, errs.ErrCorrupt},
		{"ShortJunkIsCorrupt", func(b []byte) []byte { return []byte("#!/bin/sh\necho hello\n") }, errs.ErrCorrupt},
		{"BadMagicIsFormat", func(b []byte) []byte { b[1] = 'X'; return b }, errs.ErrFormat},
		{"ForeignFileIsFormat", func(b []byte) []byte { return []byte(strings.Repeat("#!/bin/sh\n", 8)) }, errs.ErrFormat},
		{"NewerVersionIsFormat", setVersion(Version + 1), errs.ErrFormat},
		{"VersionZeroIsFormat", setVersion(0), errs.ErrFormat},
		{"UnknownFlagsAreFormat", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[12:], 1)
			resealHeader(b)
			return b
		}, errs.ErrFormat},
		{"FirstIndexZeroIsCorrupt", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[16:], 0)
			resealHeader(b)
			return b
		}, errs.ErrCorrupt},
		// The checksum is checked before the version: a damaged version
		// field is damage, not a newer format.
		{"VersionChangedWithoutChecksumIsCorrupt", func(b []byte) []byte { b[8]++; return b }, errs.ErrCorrupt},
		{"FlippedBitInFirstIndexIsCorrupt", func(b []byte) []byte { b[16] ^= 0x10; return b }, errs.ErrCorrupt},
		{"FlippedBitInSaltIsCorrupt", func(b []byte) []byte { b[27] ^= 0x01; return b }, errs.ErrCorrupt},
		{"FlippedBitInChecksumIsCorrupt", func(b []byte) []byte { b[39] ^= 0x80; return b }, errs.ErrCorrupt},
	}
	h := Header{FirstIndex: 7, Salt: testSalt}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeHeader(tt.mutate(appendHeader(nil, h)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("decodeHeader error = %v, want %v", err, tt.want)
			}
			other := errs.ErrFormat
			if tt.want == errs.ErrFormat {
				other = errs.ErrCorrupt
			}
			if errors.Is(err, other) {
				t.Fatalf("decodeHeader error %v is also %v", err, other)
			}
		})
	}
}

func setVersion(v uint32) func([]byte) []byte {
	return func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[8:], v)
		resealHeader(b)
		return b
	}
}

// Every version from 1 to Version reads; the message for another
// names the versions this build reads.
func TestHeaderVersions(t *testing.T) {
	h := Header{FirstIndex: 7, Salt: testSalt}
	for v := uint32(1); v <= Version; v++ {
		want := Header{FirstIndex: 7, Salt: testSalt, Version: v}
		if got, err := decodeHeader(setVersion(v)(appendHeader(nil, h))); err != nil || got != want {
			t.Errorf("version %d: decodeHeader = %+v, %v; want %+v", v, got, err, want)
		}
	}
	if v := binary.LittleEndian.Uint32(appendHeader(nil, h)[8:]); v != Version {
		t.Errorf("appendHeader writes version %d, want %d", v, Version)
	}
	_, err := decodeHeader(setVersion(Version + 1)(appendHeader(nil, h)))
	want := fmt.Sprintf("segment format version %d; this build reads versions 1, 2 and 3", Version+1)
	if !errors.Is(err, errs.ErrFormat) || !strings.Contains(err.Error(), want) {
		t.Errorf("decodeHeader of version %d: %v; want errs.ErrFormat saying %q", Version+1, err, want)
	}
}

func TestHeaderEveryFlippedBitIsDetected(t *testing.T) {
	good := appendHeader(nil, Header{FirstIndex: 7, Salt: testSalt})
	for bit := range HeaderSize * 8 {
		b := bytes.Clone(good)
		b[bit/8] ^= 1 << (bit % 8)
		want := errs.ErrCorrupt
		if bit < 8*len(Magic) {
			want = errs.ErrFormat
		}
		if _, err := decodeHeader(b); !errors.Is(err, want) {
			t.Errorf("bit %d flipped: error %v, want %v", bit, err, want)
		}
	}
}

func TestFrameSize(t *testing.T) {
	for n, want := range map[int]int64{0: 32, 1: 40, 5: 40, 8: 40, 9: 48, 4096: 4128} {
		if got := FrameSize(n); got != want {
			t.Errorf("FrameSize(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	rnd := seedtest.Rand(t)
	payloads := []struct {
		name string
		rec  []byte
	}{
		{"Empty", nil},
		{"Small", []byte("hello")},
		{"OneByteShortOfAlignment", []byte("1234567")},
		{"Aligned", []byte("12345678")},
		{"LargeCompressible", compressible(3 << 20)},
		{"LargeRandom", randomBytes(rnd, 1<<20+3)},
	}
	const off, synced, index = 4096, 1000, 12345
	for _, p := range payloads {
		for _, c := range []Codec{None, S2, Zstd} {
			t.Run(p.name+"/"+c.String(), func(t *testing.T) {
				stored := Compress(c, nil, p.rec)
				for _, typ := range []Type{TypeRecord, TypeBatch} {
					b := AppendFrame([]byte("prefix"), testSalt, typ, c, index, synced, stored)[len("prefix"):]
					if int64(len(b)) != FrameSize(len(stored)) || len(b)%FrameAlign != 0 {
						t.Fatalf("frame of a %d-byte payload is %d bytes, want %d", len(stored), len(b), FrameSize(len(stored)))
					}
					if pad := b[FrameHeader+len(stored):]; !isZero(pad) {
						t.Fatalf("padding %x is not zero", pad)
					}
					f, stop := parseFrame(b, testSalt, off)
					if stop != StopNone {
						t.Fatalf("parseFrame: %v", stop)
					}
					want := Frame{Offset: off, Index: index, Synced: synced, Type: typ, Codec: c}
					if f.Offset != want.Offset || f.Index != want.Index || f.Synced != want.Synced || f.Type != want.Type || f.Codec != want.Codec {
						t.Fatalf("parseFrame = %+v, want %+v", f, want)
					}
					if !bytes.Equal(f.Data, stored) || f.Size() != int64(len(b)) {
						t.Fatalf("parseFrame data differs or size %d != %d", f.Size(), len(b))
					}
					rec, err := Decompress(f.Codec, f.Data)
					if err != nil || !bytes.Equal(rec, p.rec) {
						t.Fatalf("Decompress: %v (got %d bytes, want %d)", err, len(rec), len(p.rec))
					}
				}
			})
		}
	}
}

func TestParseFrameRejects(t *testing.T) {
	const off = 4096
	tests := []struct {
		name           string
		mutate         func(b []byte) []byte
		salt           uint64
		wantStop       Stop
		wantIncomplete bool
	}{
		{name: "TypeZero", mutate: setByte(28, 0), wantStop: StopType},
		// Type 4 is TypeSync since format version 2; 5 is the first
		// type not defined.
		{name: "TypeAfterSync", mutate: setByte(28, 5), wantStop: StopType},
		{name: "TypeAllOnes", mutate: setByte(28, 0xff), wantStop: StopType},
		{name: "UnknownCodec", mutate: setByte(29, 3), wantStop: StopCodec},
		{name: "CompressedFooter", mutate: func(b []byte) []byte { b[28], b[29] = byte(TypeFooter), byte(S2); return b }, wantStop: StopCodec},
		{name: "FirstReservedByteNonzero", mutate: setByte(30, 1), wantStop: StopReserved},
		{name: "SecondReservedByteNonzero", mutate: setByte(31, 0x80), wantStop: StopReserved},
		{name: "LengthOverMax", mutate: setUint32(24, maxPayload+1), wantStop: StopLength},
		{name: "LengthAllOnes", mutate: setUint32(24, ^uint32(0)), wantStop: StopLength},
		{name: "SyncedInsideHeader", mutate: setUint64(16, HeaderSize-1), wantStop: StopSynced},
		{name: "SyncedPastOwnOffset", mutate: setUint64(16, off+8), wantStop: StopSynced},
		{name: "SyncedNegative", mutate: setUint64(16, ^uint64(0)), wantStop: StopSynced},
		{name: "PayloadBitFlipped", mutate: flipBit(FrameHeader + 2), wantStop: StopChecksum},
		{name: "ChecksumBitFlipped", mutate: flipBit(3), wantStop: StopChecksum},
		{name: "IndexChanged", mutate: flipBit(8), wantStop: StopChecksum},
		{name: "WrongSalt", mutate: func(b []byte) []byte { return b }, salt: testSalt + 1, wantStop: StopChecksum},
		{name: "TruncatedHeader", mutate: func(b []byte) []byte { return b[:FrameHeader-1] }, wantStop: StopShortHeader, wantIncomplete: true},
		{name: "Empty", mutate: func(b []byte) []byte { return nil }, wantStop: StopShortHeader, wantIncomplete: true},
		{name: "TruncatedPayload", mutate: func(b []byte) []byte { return b[:FrameHeader+4] }, wantStop: StopShortPayload, wantIncomplete: true},
		// A TypeSync frame has no payload and codec 0. The mutations
		// turn the 8-byte record frame into one.
		{name: "SyncWithAPayload", mutate: setByte(28, byte(TypeSync)), wantStop: StopLength},
		{name: "SyncCompressed", mutate: func(b []byte) []byte {
			b[28], b[29] = byte(TypeSync), byte(Zstd)
			return setUint32(24, 0)(b)
		}, wantStop: StopCodec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			salt := tt.salt
			if salt == 0 {
				salt = testSalt
			}
			b := tt.mutate(AppendFrame(nil, testSalt, TypeRecord, None, 9, 2048, []byte("a record")))
			_, stop := parseFrame(b, salt, off)
			if stop != tt.wantStop || stop.Incomplete() != tt.wantIncomplete {
				t.Fatalf("parseFrame = %v (incomplete %v), want %v (incomplete %v)", stop, stop.Incomplete(), tt.wantStop, tt.wantIncomplete)
			}
		})
	}
	t.Run("NonzeroPaddingIsNotChecked", func(t *testing.T) {
		b := AppendFrame(nil, testSalt, TypeRecord, None, 9, 2048, []byte("hello"))
		b[len(b)-1] = 0xff
		if _, stop := parseFrame(b, testSalt, off); stop != StopNone {
			t.Fatalf("parseFrame = %v, want a valid frame", stop)
		}
	})
}

func TestSyncFrameRoundTrip(t *testing.T) {
	const off, index = 4096, 77
	b := AppendFrame(nil, testSalt, TypeSync, None, index, off, nil)
	if len(b) != FrameHeader {
		t.Fatalf("sync frame is %d bytes, want %d", len(b), FrameHeader)
	}
	f, stop := parseFrame(b, testSalt, off)
	if stop != StopNone || f.Type != TypeSync || f.Index != index || f.Synced != off || len(f.Data) != 0 || f.Size() != FrameHeader {
		t.Fatalf("parseFrame = %+v, %v; want a sync frame of index %d synced at %d", f, stop, index, off)
	}
}

// Every Stop has words of its own, so messages never confuse two of them,
// and only a frame cut off by the end of the file is incomplete.
func TestStopText(t *testing.T) {
	seen := map[string]Stop{}
	for s := StopNone; s <= StopIndex; s++ {
		text := s.String()
		if prev, ok := seen[text]; ok || strings.HasPrefix(text, "stop(") {
			t.Errorf("Stop %d says %q (as does %d: %v)", s, text, prev, ok)
		}
		seen[text] = s
		if want := s == StopShortHeader || s == StopShortPayload; s.Incomplete() != want {
			t.Errorf("%v.Incomplete() = %v", s, s.Incomplete())
		}
		if want := s == StopEOF || s == StopZeros || s == StopFooter; s.End() != want {
			t.Errorf("%v.End() = %v", s, s.End())
		}
	}
	if got := (StopIndex + 1).String(); got != fmt.Sprintf("stop(%d)", StopIndex+1) {
		t.Errorf("unknown Stop says %q", got)
	}
}

// The field mutations reseal the frame, so the field check itself must
// reject it, not the checksum.
func setByte(i int, v byte) func([]byte) []byte {
	return func(b []byte) []byte { b[i] = v; resealFrame(b, testSalt); return b }
}

func setUint32(i int, v uint32) func([]byte) []byte {
	return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[i:], v); resealFrame(b, testSalt); return b }
}

func setUint64(i int, v uint64) func([]byte) []byte {
	return func(b []byte) []byte { binary.LittleEndian.PutUint64(b[i:], v); resealFrame(b, testSalt); return b }
}

func flipBit(i int) func([]byte) []byte {
	return func(b []byte) []byte { b[i] ^= 0x04; return b }
}
