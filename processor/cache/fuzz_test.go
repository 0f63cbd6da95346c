package cache

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// FuzzDecodeValue: no bucket value, however damaged, makes the decoder
// panic, and whatever it accepts encodes back to the same bytes.
func FuzzDecodeValue(f *testing.F) {
	info := contracts.ModelInfo{Name: "all-MiniLM-L6-v2", Version: "1", Dimensions: 3}
	good, err := encodeValue(info, []float32{0.5, -1, 3.25}, 7)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Add([]byte{formatVersion, 255})
	f.Add(valueV1(info, []float32{0.5, -1, 3.25}))
	f.Fuzz(func(t *testing.T, b []byte) {
		vec, tokens, err := decodeValue(b, info)
		if err != nil {
			return
		}
		again, err := encodeValue(info, vec, tokens)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded %v (%d tokens) from %x, which encodes to %x (%v)", vec, tokens, b, again, err)
		}
	})
}

// A value of format 1, written before values carried the token count, is a
// miss (the embedding computed then overwrites it); one of format 2 gives
// the vector and the token count back.
func TestDecodeValueFormats(t *testing.T) {
	info := contracts.ModelInfo{Name: "all-MiniLM-L6-v2", Version: "1", Dimensions: 3}
	vec := []float32{0.5, -1, 3.25}
	if _, _, err := decodeValue(valueV1(info, vec), info); err == nil {
		t.Fatal("a format 1 value (no token count) decoded; want a miss")
	}
	b, err := encodeValue(info, vec, 7)
	if err != nil {
		t.Fatal(err)
	}
	got, tokens, err := decodeValue(b, info)
	if err != nil || tokens != 7 || len(got) != 3 || got[2] != 3.25 {
		t.Fatalf("decoded %v, %d tokens, %v; want %v, 7 tokens", got, tokens, err, vec)
	}
}

// valueV1 is a bucket value in format 1: version, name, version, dimensions, floats.
func valueV1(info contracts.ModelInfo, vec []float32) []byte {
	b := []byte{1, byte(len(info.Name))}
	b = append(b, info.Name...)
	b = append(b, byte(len(info.Version)))
	b = append(b, info.Version...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(vec)))
	for _, f := range vec {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}
