package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{FirstIndex: 1, Salt: 0},
		{FirstIndex: 1, Salt: 0x0123456789abcdef},
		{FirstIndex: 1 << 40, Salt: 42},
		{FirstIndex: ^uint64(0), Salt: ^uint64(0)},
	} {
		b := AppendHeader([]byte("prefix"), h)
		if len(b) != len("prefix")+HeaderSize {
			t.Fatalf("AppendHeader wrote %d bytes, want %d", len(b)-len("prefix"), HeaderSize)
		}
		got, err := DecodeHeader(b[len("prefix"):])
		if err != nil || got != h {
			t.Errorf("DecodeHeader(AppendHeader(%+v)) = %+v, %v", h, got, err)
		}
	}
}

func TestHeaderRejection(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		want   error // ErrFormat or ErrCorrupt
	}{
		{"ShorterThanHeaderIsCorrupt", func(b []byte) []byte { return b[:HeaderSize-1] }, ErrCorrupt},
		{"EmptyFileIsCorrupt", func(b []byte) []byte { return nil }, ErrCorrupt},
		{"BadMagicIsFormat", func(b []byte) []byte { b[1] = 'X'; return b }, ErrFormat},
		{"ForeignFileIsFormat", func(b []byte) []byte { return []byte(strings.Repeat("#!/bin/sh\n", 8)) }, ErrFormat},
		{"NewerVersionIsFormat", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[8:], Version+1)
			resealHeader(b)
			return b
		}, ErrFormat},
		{"UnknownFlagsAreFormat", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[12:], 1)
			resealHeader(b)
			return b
		}, ErrFormat},
		{"FirstIndexZeroIsCorrupt", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[16:], 0)
			resealHeader(b)
			return b
		}, ErrCorrupt},
		// The checksum is checked before the version: a damaged version
		// field is damage, not a newer format.
		{"VersionChangedWithoutChecksumIsCorrupt", func(b []byte) []byte { b[8]++; return b }, ErrCorrupt},
		{"FlippedBitInFirstIndexIsCorrupt", func(b []byte) []byte { b[16] ^= 0x10; return b }, ErrCorrupt},
		{"FlippedBitInSaltIsCorrupt", func(b []byte) []byte { b[27] ^= 0x01; return b }, ErrCorrupt},
		{"FlippedBitInChecksumIsCorrupt", func(b []byte) []byte { b[39] ^= 0x80; return b }, ErrCorrupt},
	}
	h := Header{FirstIndex: 7, Salt: testSalt}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeHeader(tt.mutate(AppendHeader(nil, h)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeHeader error = %v, want %v", err, tt.want)
			}
			other := ErrFormat
			if tt.want == ErrFormat {
				other = ErrCorrupt
			}
			if errors.Is(err, other) {
				t.Fatalf("DecodeHeader error %v is also %v", err, other)
			}
		})
	}
}

func TestHeaderEveryFlippedBitIsDetected(t *testing.T) {
	good := AppendHeader(nil, Header{FirstIndex: 7, Salt: testSalt})
	for bit := range HeaderSize * 8 {
		b := bytes.Clone(good)
		b[bit/8] ^= 1 << (bit % 8)
		want := ErrCorrupt
		if bit < 8*len(Magic) {
			want = ErrFormat
		}
		if _, err := DecodeHeader(b); !errors.Is(err, want) {
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
	rnd := newTestRand(t)
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
					f, reason, incomplete := ParseFrame(b, testSalt, off)
					if reason != "" || incomplete {
						t.Fatalf("ParseFrame: %q (incomplete %v)", reason, incomplete)
					}
					want := Frame{Offset: off, Index: index, Synced: synced, Type: typ, Codec: c}
					if f.Offset != want.Offset || f.Index != want.Index || f.Synced != want.Synced || f.Type != want.Type || f.Codec != want.Codec {
						t.Fatalf("ParseFrame = %+v, want %+v", f, want)
					}
					if !bytes.Equal(f.Data, stored) || f.Size() != int64(len(b)) {
						t.Fatalf("ParseFrame data differs or size %d != %d", f.Size(), len(b))
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
		wantReason     string
		wantIncomplete bool
	}{
		{name: "TypeZero", mutate: setByte(28, 0), wantReason: "bad frame type 0"},
		{name: "TypeAfterFooter", mutate: setByte(28, 4), wantReason: "bad frame type 4"},
		{name: "UnknownCodec", mutate: setByte(29, 3), wantReason: "bad codec 3"},
		{name: "CompressedFooter", mutate: func(b []byte) []byte { b[28], b[29] = byte(TypeFooter), byte(S2); return b }, wantReason: "bad codec 1"},
		{name: "FirstReservedByteNonzero", mutate: setByte(30, 1), wantReason: "reserved bytes are not zero"},
		{name: "SecondReservedByteNonzero", mutate: setByte(31, 0x80), wantReason: "reserved bytes are not zero"},
		{name: "LengthOverMax", mutate: setUint32(24, maxPayload+1), wantReason: "exceeds the maximum"},
		{name: "LengthAllOnes", mutate: setUint32(24, ^uint32(0)), wantReason: "exceeds the maximum"},
		{name: "SyncedInsideHeader", mutate: setUint64(16, HeaderSize-1), wantReason: "synced offset 39 out of range"},
		{name: "SyncedPastOwnOffset", mutate: setUint64(16, off+8), wantReason: "out of range"},
		{name: "SyncedNegative", mutate: setUint64(16, ^uint64(0)), wantReason: "out of range"},
		{name: "PayloadBitFlipped", mutate: flipBit(FrameHeader + 2), wantReason: "checksum mismatch"},
		{name: "ChecksumBitFlipped", mutate: flipBit(3), wantReason: "checksum mismatch"},
		{name: "IndexChanged", mutate: flipBit(8), wantReason: "checksum mismatch"},
		{name: "WrongSalt", mutate: func(b []byte) []byte { return b }, salt: testSalt + 1, wantReason: "checksum mismatch"},
		{name: "TruncatedHeader", mutate: func(b []byte) []byte { return b[:FrameHeader-1] }, wantReason: "truncated frame header", wantIncomplete: true},
		{name: "Empty", mutate: func(b []byte) []byte { return nil }, wantReason: "truncated frame header", wantIncomplete: true},
		{name: "TruncatedPayload", mutate: func(b []byte) []byte { return b[:FrameHeader+4] }, wantReason: "truncated frame payload", wantIncomplete: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			salt := tt.salt
			if salt == 0 {
				salt = testSalt
			}
			b := tt.mutate(AppendFrame(nil, testSalt, TypeRecord, None, 9, 2048, []byte("a record")))
			_, reason, incomplete := ParseFrame(b, salt, off)
			if !strings.Contains(reason, tt.wantReason) || incomplete != tt.wantIncomplete {
				t.Fatalf("ParseFrame = %q (incomplete %v), want %q (incomplete %v)", reason, incomplete, tt.wantReason, tt.wantIncomplete)
			}
		})
	}
	t.Run("NonzeroPaddingIsNotChecked", func(t *testing.T) {
		b := AppendFrame(nil, testSalt, TypeRecord, None, 9, 2048, []byte("hello"))
		b[len(b)-1] = 0xff
		if _, reason, _ := ParseFrame(b, testSalt, off); reason != "" {
			t.Fatalf("ParseFrame = %q, want a valid frame", reason)
		}
	})
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
