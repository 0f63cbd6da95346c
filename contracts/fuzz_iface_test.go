package contracts_test

import (
	"errors"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// decodeOutcome checks what every decoder promises: never a panic, either a
// value or an *Error with a decoding code and a message.
func decodeOutcome(t *testing.T, accepted bool, err error) {
	t.Helper()
	if err == nil {
		if !accepted {
			t.Fatal("neither a value nor an error")
		}
		return
	}
	if accepted {
		t.Fatalf("both a value and %v", err)
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
}

// FuzzDecodeEmbedRequest: DecodeEmbedRequest never panics, and what it
// accepts validates.
func FuzzDecodeEmbedRequest(f *testing.F) {
	for _, s := range []string{`{"input":"x"}`, `{"input":["a","b"],"request_id":"r"}`, `{"input":[]}`, `{"input":[1]}`,
		`{"input":"\u0000"}`, `{"input":" "}`, `{"inputs":"x"}`, `{"input":"x"} {}`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := contracts.DecodeEmbedRequest(data, testLimits)
		decodeOutcome(t, req != nil, err)
		if req != nil {
			if err := req.Validate(testLimits); err != nil {
				t.Fatalf("accepted request does not validate: %v", err)
			}
		}
	})
}

// FuzzDecodeJobRequest: DecodeJobRequest never panics, and what it accepts
// validates.
func FuzzDecodeJobRequest(f *testing.F) {
	for _, s := range []string{`{"query":["a"],"product_descriptions":["b"]}`, `{"query":"a","product_descriptions":["b"],"top_k":1,"notify":true}`,
		`{"query":[],"product_descriptions":["b"]}`, `{"query":["a"]}`, `{"query":["a"],"product_descriptions":["b"],"threshold":2}`, `{"nope":1}`} {
		f.Add([]byte(s))
	}
	lim := contracts.JobLimits{Limits: testLimits, MaxQueries: 100, MaxBodyBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := contracts.DecodeJobRequest(data, lim)
		decodeOutcome(t, req != nil, err)
		if req != nil {
			if err := req.Validate(lim); err != nil {
				t.Fatalf("accepted job does not validate: %v", err)
			}
		}
	})
}
