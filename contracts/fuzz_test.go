package contracts_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

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
		decodeOutcome(t, req != nil, err)
		if err != nil {
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

// FuzzDecodeReply checks that a processor's reply, whatever its headers and
// body, decodes to exactly one of a Response or an *Error, without panicking,
// and that progress messages are told apart from final replies.
func FuzzDecodeReply(f *testing.F) {
	f.Add("", "", "", []byte(`{"results":[{"query":"q","matches":[{"description":"d","score":0.5,"index":0}]}]}`))
	f.Add("invalid_request", "query: too many", "", []byte(`{"error":{"code":"invalid_request","message":"m","field":"query","limit":1}}`))
	f.Add("overloaded", "", "", []byte(`{"error":null}`))
	f.Add("timeout", "late", "", []byte(`not json`))
	f.Add("", "", contracts.StatusAccepted, []byte{})
	f.Add("", "", contracts.StatusWorking, []byte(`x`))
	f.Add("", "", "", []byte(`{"results":"wrong type"}`))
	f.Fuzz(func(t *testing.T, code, desc, status string, data []byte) {
		m := nats.NewMsg("inbox")
		m.Data = data
		if code != "" {
			m.Header.Set(contracts.HeaderErrorCode, code)
			m.Header.Set(contracts.HeaderError, desc)
		}
		if status != "" {
			m.Header.Set(contracts.HeaderStatus, status)
		}
		if s, ok := contracts.IsProgress(m); ok != (status != "") || s != status {
			t.Fatalf("IsProgress = %q, %v with status header %q", s, ok, status)
		}
		resp, err := contracts.DecodeReply(m)
		if (resp == nil) == (err == nil) {
			t.Fatalf("DecodeReply = %v, %v: want exactly one", resp, err)
		}
		if err != nil {
			var e *contracts.Error
			if !errors.As(err, &e) || e.Code == "" {
				t.Fatalf("error %v is not a coded *Error", err)
			}
			if code != "" && e.Code != contracts.Code(code) && e.Code == contracts.CodeInternal {
				t.Fatalf("error header %q became %v", code, e)
			}
		}
	})
}

// FuzzAckInterval checks that any HeaderAck value yields an interval within
// [MinHeartbeat, MaxHeartbeat] or an error naming the header, never a panic.
func FuzzAckInterval(f *testing.F) {
	for _, s := range []string{"", "250", "1", "0", "-1", "99999999999999999999", "1e3", " 5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := nats.Header{}
		h.Set(contracts.HeaderAck, v)
		d, ok, err := contracts.AckInterval(h)
		switch {
		case err != nil:
			if ok || !strings.Contains(err.Error(), contracts.HeaderAck) {
				t.Fatalf("AckInterval(%q): ok %v, error %v", v, ok, err)
			}
		case ok:
			if d < contracts.MinHeartbeat || d > contracts.MaxHeartbeat {
				t.Fatalf("AckInterval(%q) = %v, outside the bounds", v, d)
			}
		case v != "":
			t.Fatalf("AckInterval(%q): neither ok nor an error", v)
		}
	})
}

// FuzzTimeout checks that any Simmatch-Timeout-Ms value yields a positive
// budget or an error naming the header, never a panic or a negative budget.
func FuzzTimeout(f *testing.F) {
	for _, s := range []string{"", "1", "10000", "0", "-1", "9223372036854775807", "9223372036854", "1.5", "+5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := nats.Header{}
		h.Set(contracts.HeaderTimeout, v)
		d, ok, err := contracts.Timeout(h)
		switch {
		case err != nil:
			if ok || !strings.Contains(err.Error(), contracts.HeaderTimeout) {
				t.Fatalf("Timeout(%q): ok %v, error %v", v, ok, err)
			}
		case ok:
			if d <= 0 {
				t.Fatalf("Timeout(%q) = %v, want a positive budget", v, d)
			}
		case v != "":
			t.Fatalf("Timeout(%q): neither ok nor an error", v)
		}
	})
}
