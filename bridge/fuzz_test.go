package bridge

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAuthHeaders sends arbitrary Authorization and X-API-Key values to
// /predict: the bridge must never panic, must answer only 200, 401 or 403,
// and must never answer 200 unless the one valid key is in a header.
func FuzzAuthHeaders(f *testing.F) {
	for _, seed := range [][2]string{
		{"", ""},
		{"Bearer " + keyPredict, ""},
		{"", keyPredict},
		{"bearer  " + keyPredict + " ", ""},
		{"Bearer " + keyAdmin, ""},
		{"Basic " + keyPredict, keyUnknown},
		{"Bearer", HashKey(keyPredict)},
		{"Bearer \x00\xff", "\r\n"},
		{strings.Repeat("A", 10000), strings.Repeat("\x80", 300)},
	} {
		f.Add(seed[0], seed[1])
	}
	ns := startNATS(f)
	startFake(f, ns, rank(f))
	ks := openKeys(f, testKeysFile(), &logRecorder{})
	h, err := New(Config{NATS: connect(f, ns), Keys: ks, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, authorization, apiKey string) {
		req := httptest.NewRequest(http.MethodPost, "/predict", strings.NewReader(goodPredict))
		req.Header.Set("Content-Type", "application/json")
		if authorization != "" {
			req.Header["Authorization"] = []string{authorization}
		}
		if apiKey != "" {
			req.Header["X-Api-Key"] = []string{apiKey}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK:
			if !strings.Contains(authorization, keyPredict) && !strings.Contains(authorization, keyAll) &&
				!strings.Contains(apiKey, keyPredict) && !strings.Contains(apiKey, keyAll) &&
				!strings.Contains(authorization, keyLimited) && !strings.Contains(apiKey, keyLimited) {
				t.Fatalf("200 without a valid key: Authorization %q, X-API-Key %q", authorization, apiKey)
			}
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}
