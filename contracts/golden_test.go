package contracts_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the Go values in golden_test.go")

func intPtr(v int) *int             { return &v }
func float64Ptr(v float64) *float64 { return &v }

const (
	descHammer = "Heavy-duty claw hammer with a non-slip grip handle."
	descSaw    = "High-performance circular saw with laser guide."
	descDrill  = "Cordless drill with two batteries."
	queryWood  = "What can I use to cut wood?"
	queryNails = "Something to drive nails"
)

// originalRequest is the body the original Python service accepted.
var originalRequest = &contracts.Request{
	Query:               contracts.Queries{queryWood},
	ProductDescriptions: []string{descHammer, descSaw},
}

// fullRequest uses every v1 request field, with the single-string query form.
var fullRequest = &contracts.Request{
	Query:               contracts.Queries{queryWood},
	ProductDescriptions: []string{descHammer, descSaw, descDrill},
	TopK:                intPtr(2),
	Threshold:           float64Ptr(0.25),
	RequestID:           "req-0001",
	Model:               "all-MiniLM-L6-v2@fp32",
}

var sampleResponse = &contracts.Response{
	Results: []contracts.Result{
		{Query: queryWood, Matches: []contracts.Match{
			{Index: 1, Description: descSaw, Score: 0.6125},
			{Index: 0, Description: descHammer, Score: 0.1875},
		}},
		{Query: queryNails, Matches: []contracts.Match{
			{Index: 0, Description: descHammer, Score: 0.5},
			{Index: 1, Description: descSaw, Score: -0.0625},
		}},
	},
	Model: contracts.ModelInfo{
		Name:       "sentence-transformers/all-MiniLM-L6-v2",
		Version:    "759c3cd2",
		Dimensions: 384,
	},
	RequestID: "req-0001",
}

var sampleInvalidRequest = contracts.FieldError("product_descriptions[1]", 8192, "has 9000 characters; the limit is %d", 8192)

var sampleNoProcessor = &contracts.Error{
	Code:      contracts.CodeNoProcessor,
	Message:   "no processor is serving similarity.request; start one or retry later",
	RequestID: "req-0001",
}

func init() { sampleInvalidRequest.RequestID = "req-0001" }

// normalizeJSON re-indents data so that only whitespace-insensitive
// differences are ignored: key order, number formatting and escaping count.
func normalizeJSON(t *testing.T, data []byte) []byte {
	t.Helper()
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, data)
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// TestGoldenWire checks that the Go values encode exactly as the samples in
// testdata/ (run with -update to rewrite them after an intended change).
func TestGoldenWire(t *testing.T) {
	tests := []struct {
		name string
		file string
		// encode is the real encoding path for the value.
		encode func() ([]byte, error)
	}{
		{"original request", "request_original.json", func() ([]byte, error) { return json.Marshal(originalRequest) }},
		{"response", "response.json", func() ([]byte, error) { return json.Marshal(sampleResponse) }},
		{"invalid request error", "error_invalid_request.json", func() ([]byte, error) { return sampleInvalidRequest.Marshal(), nil }},
		{"no processor error", "error_no_processor.json", func() ([]byte, error) { return sampleNoProcessor.Marshal(), nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := tc.encode()
			if err != nil {
				t.Fatal(err)
			}
			got := normalizeJSON(t, data)
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			file, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := normalizeJSON(t, file); !bytes.Equal(got, want) {
				t.Errorf("encoding differs from %s (rerun with -update if intended)\ngot:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}

// TestGoldenDecode checks that every sample decodes to the Go value clients get.
func TestGoldenDecode(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		decode func([]byte) (any, error)
		want   any
	}{
		{"original request", "request_original.json", decodeReq, originalRequest},
		{"full request", "request_full.json", decodeReq, fullRequest},
		{"response", "response.json", func(b []byte) (any, error) {
			var r contracts.Response
			err := json.Unmarshal(b, &r)
			return &r, err
		}, sampleResponse},
		{"invalid request error", "error_invalid_request.json", decodeErrorBody, sampleInvalidRequest},
		{"no processor error", "error_no_processor.json", decodeErrorBody, sampleNoProcessor},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.decode(data)
			if err != nil {
				t.Fatalf("decode %s: %v", tc.file, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decode %s:\n got %+v\nwant %+v", tc.file, got, tc.want)
			}
		})
	}
}

func decodeReq(b []byte) (any, error) { return contracts.DecodeRequest(b, contracts.DefaultLimits) }

func decodeErrorBody(b []byte) (any, error) {
	var body contracts.ErrorBody
	err := json.Unmarshal(b, &body)
	return body.Error, err
}

// TestGoldenFieldNames pins the JSON field names clients rely on: renaming or
// adding a field must be a deliberate, visible change to this list.
func TestGoldenFieldNames(t *testing.T) {
	tests := []struct {
		name string
		file string
		path []any // object keys and array indexes from the root
		want []string
	}{
		{"original request", "request_original.json", nil, []string{"product_descriptions", "query"}},
		{"full request", "request_full.json", nil, []string{"model", "product_descriptions", "query", "request_id", "threshold", "top_k"}},
		{"response", "response.json", nil, []string{"model", "request_id", "results"}},
		{"result", "response.json", []any{"results", 0}, []string{"matches", "query"}},
		{"match", "response.json", []any{"results", 1, "matches", 0}, []string{"description", "index", "score"}},
		{"model", "response.json", []any{"model"}, []string{"dimensions", "name", "version"}},
		{"error body", "error_invalid_request.json", nil, []string{"error"}},
		{"invalid request error", "error_invalid_request.json", []any{"error"}, []string{"code", "field", "limit", "message", "request_id"}},
		{"no processor error", "error_no_processor.json", []any{"error"}, []string{"code", "message", "request_id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.path {
				switch p := p.(type) {
				case string:
					v = v.(map[string]any)[p]
				case int:
					v = v.([]any)[p]
				}
			}
			obj, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%s at %v: want an object, got %T", tc.file, tc.path, v)
			}
			keys := make([]string, 0, len(obj))
			for k := range obj {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tc.want) {
				t.Errorf("%s at %v: keys %q, want %q", tc.file, tc.path, keys, tc.want)
			}
		})
	}
}
