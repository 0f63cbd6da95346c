package cache

import (
	"bytes"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// FuzzDecodeValue: no bucket value, however damaged, makes the decoder
// panic, and whatever it accepts encodes back to the same bytes.
func FuzzDecodeValue(f *testing.F) {
	info := contracts.ModelInfo{Name: "all-MiniLM-L6-v2", Version: "1", Dimensions: 3}
	good, err := encodeValue(info, []float32{0.5, -1, 3.25})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Add([]byte{formatVersion, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		vec, err := decodeValue(b, info)
		if err != nil {
			return
		}
		again, err := encodeValue(info, vec)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded %v from %x, which encodes to %x (%v)", vec, b, again, err)
		}
	})
}
