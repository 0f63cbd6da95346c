package contracts_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// FuzzDecodeRequest checks that DecodeRequest never panics, fails only with
// a decoding *Error, and that every request it accepts is valid and survives
// an encode/decode round trip unchanged.
func FuzzDecodeRequest(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.body))
	}
	// Inputs whose re-encoding differs from the input: case-insensitive and
	// repeated keys, characters json.Marshal escapes, U+FFFD from escapes.
	f.Add([]byte(`{"QUERY":"<a & b>","Product_Descriptions":["\u2028x"],"query":"c"}`))
	f.Add([]byte(`{"query":"\ud83d\ude00\udc00","product_descriptions":["x"],"threshold":-0}`))
	samples, err := filepath.Glob(filepath.Join("testdata", "request_*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range samples {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := contracts.DecodeRequest(data, testLimits)
		if err != nil {
			if req != nil {
				t.Fatalf("DecodeRequest returned both a request and %v", err)
			}
			var e *contracts.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not a *contracts.Error", err, err)
			}
			switch e.Code {
			case contracts.CodeMalformedJSON, contracts.CodeInvalidRequest, contracts.CodePayloadTooLarge:
			default:
				t.Fatalf("unexpected code %q: %v", e.Code, err)
			}
			if e.Message == "" {
				t.Fatalf("empty message for code %q", e.Code)
			}
			return
		}
		if err := req.Validate(testLimits); err != nil {
			t.Fatalf("accepted request does not validate: %v\n%+v", err, req)
		}
		enc, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("encode accepted request: %v", err)
		}
		// The encoding may be longer than the input (a string query becomes a
		// list, json.Marshal escapes <, > and &), so the body limit is lifted.
		lim := testLimits
		lim.MaxBodyBytes = 0
		again, err := contracts.DecodeRequest(enc, lim)
		if err != nil {
			t.Fatalf("decode re-encoded request %s: %v", enc, err)
		}
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("round trip changed the request:\n got %+v\nwant %+v", again, req)
		}
	})
}
