package bridge

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRequestID(t *testing.T) {
	tests := []struct {
		name   string
		header string
		keep   bool // the caller's id is used
	}{
		{"caller's id", "order-42", true},
		{"uuid", "3f2b8c1e-9d4a-4f6b-8e2a-1c5d7e9f0a3b", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"none", "", false},
		{"too long", strings.Repeat("a", 129), false},
		{"space", "a b", false},
		{"control character", "a\x01b", false},
		{"non-ascii", "añb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen string
			h := requestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = infoFrom(r.Context()).id
			}))
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.header != "" {
				r.Header.Set("X-Request-Id", tt.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			got := w.Header().Get("X-Request-Id")
			if got != seen {
				t.Errorf("header %q, context %q: want the same id", got, seen)
			}
			if tt.keep && got != tt.header {
				t.Errorf("id %q, want the caller's %q", got, tt.header)
			}
			if !tt.keep && (got == tt.header || !validRequestID(got)) {
				t.Errorf("id %q, want a fresh valid one", got)
			}
		})
	}
}

func TestRequestIDsAreUnique(t *testing.T) {
	h := requestID(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	seen := map[string]bool{}
	for range 1000 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		id := w.Header().Get("X-Request-Id")
		if seen[id] {
			t.Fatalf("id %q generated twice", id)
		}
		seen[id] = true
	}
}

// A request_id that cannot travel in a header is kept out of it, and the
// access log still gets it.
func TestSetRequestID(t *testing.T) {
	for _, id := range []string{"from-body", "has space"} {
		h := requestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			setRequestID(w, r, id)
			if got := infoFrom(r.Context()).id; got != id {
				t.Errorf("context id %q, want %q", got, id)
			}
		}))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		want := id
		if !validRequestID(id) {
			want = ""
		}
		if got := w.Header().Get("X-Request-Id"); got != want {
			t.Errorf("%q: header %q, want %q", id, got, want)
		}
	}
}
