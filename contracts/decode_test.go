package contracts_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// testLimits are small so that every limit is cheap to reach.
var testLimits = contracts.Limits{MaxQueries: 2, MaxDescriptions: 3, MaxTextChars: 5, MaxBodyBytes: 512}

type decodeCase struct {
	name string
	body string
	want *contracts.Request // for valid bodies

	// For invalid bodies: the sentinel, and the Field and Limit of the *Error.
	wantErr   error
	wantField string
	wantLimit int
}

// body builds {"query": q, "product_descriptions": d, <extra>} from raw JSON pieces.
func body(q, d string, extra ...string) string {
	s := `{"query":` + q + `,"product_descriptions":` + d
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

// padBody pads the JSON object s with spaces to exactly n bytes.
func padBody(s string, n int) string {
	return s[:len(s)-1] + strings.Repeat(" ", n-len(s)) + "}"
}

var decodeCases = []decodeCase{
	// Valid requests.
	{name: "string query", body: body(`"cut"`, `["saw"]`),
		want: &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{"saw"}}},
	{name: "list query", body: body(`["cut","nail"]`, `["saw","drill"]`),
		want: &contracts.Request{Query: contracts.Queries{"cut", "nail"}, ProductDescriptions: []string{"saw", "drill"}}},
	{name: "top_k", body: body(`"cut"`, `["saw"]`, `"top_k":3`),
		want: &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{"saw"}, TopK: intPtr(3)}},
	{name: "threshold", body: body(`"cut"`, `["saw"]`, `"threshold":0.5`),
		want: &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{"saw"}, Threshold: float64Ptr(0.5)}},
	{name: "threshold at -1", body: body(`"cut"`, `["saw"]`, `"threshold":-1`),
		want: &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{"saw"}, Threshold: float64Ptr(-1)}},
	{name: "threshold at 1", body: body(`"cut"`, `["saw"]`, `"threshold":1e0`),
		want: &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{"saw"}, Threshold: float64Ptr(1)}},
	{name: "every field", body: body(`["cut"]`, `["saw"]`, `"top_k":1`, `"threshold":0`, `"request_id":"r-1"`),
		want: &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{"saw"}, TopK: intPtr(1), Threshold: float64Ptr(0), RequestID: "r-1"}},
	{name: "model name", body: body(`"cut"`, `["saw"]`, `"model":"all-MiniLM-L6-v2"`),
		want: &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{"saw"}, Model: "all-MiniLM-L6-v2"}},
	{name: "model name@version", body: body(`"cut"`, `["saw"]`, `"model":"all-MiniLM-L6-v2@int8"`),
		want: &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{"saw"}, Model: "all-MiniLM-L6-v2@int8"}},
	{name: "null optional fields", body: body(`"cut"`, `["saw"]`, `"top_k":null`, `"threshold":null`, `"request_id":null`),
		want: &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{"saw"}}},
	{name: "whitespace around the body", body: " \n\t" + body(`"cut"`, `["saw"]`) + "\r\n ",
		want: &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{"saw"}}},
	{name: "multibyte text at the limit", body: body(`"héllo"`, `["日本語です","👍👍👍👍👍"]`),
		want: &contracts.Request{Query: contracts.Queries{"héllo"}, ProductDescriptions: []string{"日本語です", "👍👍👍👍👍"}}},
	{name: "escaped text at the limit", body: body(`"\u00e9\t\"\\a"`, `["saw"]`),
		want: &contracts.Request{Query: contracts.Queries{"é\t\"\\a"}, ProductDescriptions: []string{"saw"}}},
	{name: "padded text is kept as is", body: body(`" cut "`, `["saw"]`),
		want: &contracts.Request{Query: contracts.Queries{" cut "}, ProductDescriptions: []string{"saw"}}},
	{name: "escaped lone surrogate becomes U+FFFD", body: body(`"\ud800"`, `["saw"]`),
		want: &contracts.Request{Query: contracts.Queries{"\uFFFD"}, ProductDescriptions: []string{"saw"}}},
	{name: "queries and descriptions at their limits", body: body(`["a","b"]`, `["c","d","e"]`),
		want: &contracts.Request{Query: contracts.Queries{"a", "b"}, ProductDescriptions: []string{"c", "d", "e"}}},
	{name: "request_id at 128 bytes", body: body(`"cut"`, `["saw"]`, `"request_id":"`+strings.Repeat("r", 128)+`"`),
		want: &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{"saw"}, RequestID: strings.Repeat("r", 128)}},
	{name: "body at MaxBodyBytes", body: padBody(body(`"cut"`, `["saw"]`), 512),
		want: &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{"saw"}}},

	// Not JSON.
	{name: "empty body", body: "", wantErr: contracts.ErrMalformedJSON},
	{name: "whitespace body", body: " \n ", wantErr: contracts.ErrMalformedJSON},
	{name: "truncated", body: `{"query":"cut"`, wantErr: contracts.ErrMalformedJSON},
	{name: "syntax error", body: `{"query" "cut"}`, wantErr: contracts.ErrMalformedJSON},
	{name: "single quotes", body: `{'query':'cut'}`, wantErr: contracts.ErrMalformedJSON},
	{name: "NaN literal", body: body(`"cut"`, `["saw"]`, `"threshold":NaN`), wantErr: contracts.ErrMalformedJSON},
	{name: "trailing garbage", body: body(`"cut"`, `["saw"]`) + " x", wantErr: contracts.ErrMalformedJSON},
	{name: "second object", body: body(`"cut"`, `["saw"]`) + "{}", wantErr: contracts.ErrMalformedJSON},
	{name: "trailing bracket", body: body(`"cut"`, `["saw"]`) + "]", wantErr: contracts.ErrMalformedJSON},
	{name: "invalid UTF-8 in query", body: body("\"caf\xe9\"", `["saw"]`), wantErr: contracts.ErrMalformedJSON},
	{name: "invalid UTF-8 in description", body: body(`"cut"`, "[\"saw\",\"\xff\xfe\"]"), wantErr: contracts.ErrMalformedJSON},
	{name: "truncated multibyte rune", body: body("\"\xe6\x97\"", `["saw"]`), wantErr: contracts.ErrMalformedJSON},

	// Too large: checked before parsing.
	{name: "body one byte over MaxBodyBytes", body: padBody(body(`"cut"`, `["saw"]`), 513), wantErr: contracts.ErrPayloadTooLarge, wantLimit: 512},
	{name: "invalid body over MaxBodyBytes", body: strings.Repeat("x", 513), wantErr: contracts.ErrPayloadTooLarge, wantLimit: 512},

	// Not an object.
	{name: "array body", body: `[]`, wantErr: contracts.ErrInvalidRequest},
	{name: "string body", body: `"cut"`, wantErr: contracts.ErrInvalidRequest},
	{name: "number body", body: `1`, wantErr: contracts.ErrInvalidRequest},
	{name: "boolean body", body: `true`, wantErr: contracts.ErrInvalidRequest},
	// null decodes to the zero Request, so the first missing field is reported.
	{name: "null body", body: `null`, wantErr: contracts.ErrInvalidRequest, wantField: "query"},

	// Wrong types.
	{name: "query number", body: body(`1`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query"},
	{name: "query object", body: body(`{}`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query"},
	{name: "query bool", body: body(`true`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query"},
	{name: "query list of numbers", body: body(`["cut",1]`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query"},
	{name: "query list of lists", body: body(`[["cut"]]`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query"},
	{name: "descriptions string", body: body(`"cut"`, `"saw"`), wantErr: contracts.ErrInvalidRequest, wantField: "product_descriptions"},
	{name: "descriptions object", body: body(`"cut"`, `{"a":"saw"}`), wantErr: contracts.ErrInvalidRequest, wantField: "product_descriptions"},
	{name: "descriptions list of numbers", body: body(`"cut"`, `["saw",2]`), wantErr: contracts.ErrInvalidRequest, wantField: "product_descriptions"},
	{name: "top_k string", body: body(`"cut"`, `["saw"]`, `"top_k":"3"`), wantErr: contracts.ErrInvalidRequest, wantField: "top_k"},
	{name: "top_k fraction", body: body(`"cut"`, `["saw"]`, `"top_k":1.5`), wantErr: contracts.ErrInvalidRequest, wantField: "top_k"},
	{name: "top_k overflow", body: body(`"cut"`, `["saw"]`, `"top_k":99999999999999999999`), wantErr: contracts.ErrInvalidRequest, wantField: "top_k"},
	{name: "threshold string", body: body(`"cut"`, `["saw"]`, `"threshold":"0.5"`), wantErr: contracts.ErrInvalidRequest, wantField: "threshold"},
	{name: "threshold bool", body: body(`"cut"`, `["saw"]`, `"threshold":true`), wantErr: contracts.ErrInvalidRequest, wantField: "threshold"},
	{name: "threshold overflow", body: body(`"cut"`, `["saw"]`, `"threshold":1e400`), wantErr: contracts.ErrInvalidRequest, wantField: "threshold"},
	{name: "request_id number", body: body(`"cut"`, `["saw"]`, `"request_id":7`), wantErr: contracts.ErrInvalidRequest, wantField: "request_id"},
	{name: "request_id list", body: body(`"cut"`, `["saw"]`, `"request_id":["r"]`), wantErr: contracts.ErrInvalidRequest, wantField: "request_id"},
	{name: "unknown field", body: body(`"cut"`, `["saw"]`, `"top_n":3`), wantErr: contracts.ErrInvalidRequest, wantField: "top_n"},
	{name: "misspelled field", body: `{"queries":["cut"],"product_descriptions":["saw"]}`, wantErr: contracts.ErrInvalidRequest, wantField: "queries"},

	// Missing or empty.
	{name: "empty object", body: `{}`, wantErr: contracts.ErrInvalidRequest, wantField: "query"},
	{name: "missing query", body: `{"product_descriptions":["saw"]}`, wantErr: contracts.ErrInvalidRequest, wantField: "query"},
	{name: "null query", body: body(`null`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query"},
	{name: "empty query list", body: body(`[]`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query"},
	{name: "empty query string", body: body(`""`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query[0]"},
	{name: "whitespace query", body: body(`" \t\n"`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query[0]"},
	{name: "empty second query", body: body(`["cut",""]`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query[1]"},
	{name: "null in query list", body: body(`["cut",null]`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query[1]"},
	{name: "missing descriptions", body: `{"query":"cut"}`, wantErr: contracts.ErrInvalidRequest, wantField: "product_descriptions"},
	{name: "null descriptions", body: body(`"cut"`, `null`), wantErr: contracts.ErrInvalidRequest, wantField: "product_descriptions"},
	{name: "empty descriptions", body: body(`"cut"`, `[]`), wantErr: contracts.ErrInvalidRequest, wantField: "product_descriptions"},
	{name: "empty description", body: body(`"cut"`, `["saw",""]`), wantErr: contracts.ErrInvalidRequest, wantField: "product_descriptions[1]"},
	{name: "whitespace description", body: body(`"cut"`, `["saw","drill","\u00a0 \u3000"]`), wantErr: contracts.ErrInvalidRequest, wantField: "product_descriptions[2]"},

	// Limits.
	{name: "too many queries", body: body(`["a","b","c"]`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query", wantLimit: 2},
	{name: "too many descriptions", body: body(`"cut"`, `["a","b","c","d"]`), wantErr: contracts.ErrInvalidRequest, wantField: "product_descriptions", wantLimit: 3},
	{name: "query too long", body: body(`"abcdef"`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query[0]", wantLimit: 5},
	{name: "multibyte query too long", body: body(`["cut","héllo!"]`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query[1]", wantLimit: 5},
	{name: "description too long", body: body(`"cut"`, `["saw","drill","👍👍👍👍👍👍"]`), wantErr: contracts.ErrInvalidRequest, wantField: "product_descriptions[2]", wantLimit: 5},
	{name: "top_k 0", body: body(`"cut"`, `["saw"]`, `"top_k":0`), wantErr: contracts.ErrInvalidRequest, wantField: "top_k"},
	{name: "top_k negative", body: body(`"cut"`, `["saw"]`, `"top_k":-2`), wantErr: contracts.ErrInvalidRequest, wantField: "top_k"},
	{name: "threshold above 1", body: body(`"cut"`, `["saw"]`, `"threshold":1.0001`), wantErr: contracts.ErrInvalidRequest, wantField: "threshold"},
	{name: "threshold below -1", body: body(`"cut"`, `["saw"]`, `"threshold":-1.5`), wantErr: contracts.ErrInvalidRequest, wantField: "threshold"},
	{name: "threshold huge", body: body(`"cut"`, `["saw"]`, `"threshold":1e300`), wantErr: contracts.ErrInvalidRequest, wantField: "threshold"},
	{name: "model number", body: body(`"cut"`, `["saw"]`, `"model":7`), wantErr: contracts.ErrInvalidRequest, wantField: "model"},
	{name: "model with a space", body: body(`"cut"`, `["saw"]`, `"model":"all MiniLM"`), wantErr: contracts.ErrInvalidRequest, wantField: "model"},
	{name: "model with an empty version", body: body(`"cut"`, `["saw"]`, `"model":"all-MiniLM-L6-v2@"`), wantErr: contracts.ErrInvalidRequest, wantField: "model"},
	{name: "model with two versions", body: body(`"cut"`, `["saw"]`, `"model":"m@a@b"`), wantErr: contracts.ErrInvalidRequest, wantField: "model"},
	{name: "model starting with a dot", body: body(`"cut"`, `["saw"]`, `"model":"../etc"`), wantErr: contracts.ErrInvalidRequest, wantField: "model"},
	{name: "request_id too long", body: body(`"cut"`, `["saw"]`, `"request_id":"`+strings.Repeat("r", 129)+`"`), wantErr: contracts.ErrInvalidRequest, wantField: "request_id", wantLimit: 128},
}

// allSentinels lists every sentinel, to check that an error matches exactly one.
var allSentinels = []*contracts.Error{
	contracts.ErrMalformedJSON, contracts.ErrInvalidRequest, contracts.ErrPayloadTooLarge,
	contracts.ErrUnsupportedMediaType, contracts.ErrUnauthorized, contracts.ErrForbidden, contracts.ErrRateLimited, contracts.ErrOverloaded,
	contracts.ErrNoProcessor, contracts.ErrTimeout, contracts.ErrModelError, contracts.ErrInternal,
	contracts.ErrInsufficientStorage,
}

func TestDecodeRequest(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := contracts.DecodeRequest([]byte(tc.body), testLimits)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("DecodeRequest(%q): %v", tc.body, err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("DecodeRequest(%q)\n got %+v\nwant %+v", tc.body, got, tc.want)
				}
				return
			}
			if got != nil {
				t.Errorf("DecodeRequest(%q) = %+v, want nil with the error", tc.body, got)
			}
			checkError(t, err, tc.wantErr, tc.wantField, tc.wantLimit)
		})
	}
}

// checkError asserts that err is an *Error matching exactly the sentinel
// want, with the given Field and Limit and a message naming the field.
func checkError(t *testing.T, err, want error, field string, limit int) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want errors.Is %v", err, want)
	}
	for _, s := range allSentinels {
		if s != want && errors.Is(err, s) { //nolint:errorlint // identity of the sentinel, not a match
			t.Errorf("err = %v also matches %v", err, s)
		}
	}
	var e *contracts.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %T, want *contracts.Error", err)
	}
	if e.Field != field || e.Limit != limit {
		t.Errorf("Field, Limit = %q, %d; want %q, %d (%v)", e.Field, e.Limit, field, limit, err)
	}
	if e.Message == "" || !strings.Contains(e.Message, field) {
		t.Errorf("Message %q should name field %q", e.Message, field)
	}
}

func TestDecodeRequestDefaultLimits(t *testing.T) {
	lim := contracts.DefaultLimits
	long := strings.Repeat("é", lim.MaxTextChars) // 2 bytes per code point
	tests := []struct {
		name      string
		body      string
		wantErr   error
		wantField string
		wantLimit int
	}{
		{name: "text at MaxTextChars code points", body: body(`"`+long+`"`, `["saw"]`)},
		{name: "text over MaxTextChars", body: body(`"`+long+`e"`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query[0]", wantLimit: lim.MaxTextChars},
		{name: "queries over MaxQueries", body: body(`[`+strings.Repeat(`"q",`, lim.MaxQueries)+`"q"]`, `["saw"]`), wantErr: contracts.ErrInvalidRequest, wantField: "query", wantLimit: lim.MaxQueries},
		{name: "descriptions over MaxDescriptions", body: body(`"cut"`, `[`+strings.Repeat(`"d",`, lim.MaxDescriptions)+`"d"]`), wantErr: contracts.ErrInvalidRequest, wantField: "product_descriptions", wantLimit: lim.MaxDescriptions},
		{name: "body over MaxBodyBytes", body: body(`"cut"`, `["saw"]`) + strings.Repeat(" ", lim.MaxBodyBytes), wantErr: contracts.ErrPayloadTooLarge, wantLimit: lim.MaxBodyBytes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := contracts.DecodeRequest([]byte(tc.body), lim)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			checkError(t, err, tc.wantErr, tc.wantField, tc.wantLimit)
		})
	}
}

// TestValidate covers requests built in Go, which can hold values JSON cannot.
func TestValidate(t *testing.T) {
	valid := func() *contracts.Request {
		return &contracts.Request{Query: contracts.Queries{"cut"}, ProductDescriptions: []string{"saw"}}
	}
	tests := []struct {
		name      string
		edit      func(*contracts.Request)
		lim       contracts.Limits
		wantErr   error
		wantField string
		wantLimit int
	}{
		{name: "valid", edit: func(*contracts.Request) {}, lim: testLimits},
		{name: "zero limits disable the limits", lim: contracts.Limits{}, edit: func(r *contracts.Request) {
			r.Query = make(contracts.Queries, 100)
			for i := range r.Query {
				r.Query[i] = strings.Repeat("q", 10000)
			}
		}},
		{name: "NaN threshold", lim: testLimits, edit: func(r *contracts.Request) { r.Threshold = float64Ptr(math.NaN()) },
			wantErr: contracts.ErrInvalidRequest, wantField: "threshold"},
		{name: "infinite threshold", lim: testLimits, edit: func(r *contracts.Request) { r.Threshold = float64Ptr(math.Inf(-1)) },
			wantErr: contracts.ErrInvalidRequest, wantField: "threshold"},
		{name: "invalid UTF-8 query", lim: testLimits, edit: func(r *contracts.Request) { r.Query = contracts.Queries{"cut", "caf\xe9"} },
			wantErr: contracts.ErrInvalidRequest, wantField: "query[1]"},
		{name: "invalid UTF-8 description", lim: testLimits, edit: func(r *contracts.Request) { r.ProductDescriptions = []string{"\xff"} },
			wantErr: contracts.ErrInvalidRequest, wantField: "product_descriptions[0]"},
		{name: "nil query", lim: testLimits, edit: func(r *contracts.Request) { r.Query = nil },
			wantErr: contracts.ErrInvalidRequest, wantField: "query"},
		{name: "negative top_k", lim: testLimits, edit: func(r *contracts.Request) { r.TopK = intPtr(math.MinInt) },
			wantErr: contracts.ErrInvalidRequest, wantField: "top_k"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := valid()
			tc.edit(r)
			err := r.Validate(tc.lim)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			checkError(t, err, tc.wantErr, tc.wantField, tc.wantLimit)
		})
	}
}
