package bridge

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/simmatch/simmatch/contracts"
)

func TestAccessLog(t *testing.T) {
	const secret = "top-secret-catalog-text"
	tests := []struct {
		name      string
		method    string
		path      string
		status    int
		level     slog.Level
		route     string
		errorCode string
	}{
		{"ok", http.MethodPost, "/predict", 200, slog.LevelInfo, "/predict", ""},
		{"bad request", http.MethodPost, "/bad", 422, slog.LevelInfo, "/bad", string(contracts.CodeInvalidRequest)},
		{"health probe", http.MethodGet, "/health", 200, slog.LevelDebug, "/health", ""},
		{"not ready", http.MethodGet, "/ready", 503, slog.LevelWarn, "/ready", string(contracts.CodeNoProcessor)},
		{"timeout", http.MethodPost, "/slow", 504, slog.LevelWarn, "/slow", string(contracts.CodeTimeout)},
		{"bug", http.MethodPost, "/bug", 500, slog.LevelError, "/bug", string(contracts.CodeInternal)},
		{"client gone", http.MethodPost, "/gone", 499, slog.LevelInfo, "/gone", ""},
		{"no route", http.MethodGet, "/nope", 404, slog.LevelInfo, "", string(contracts.CodeNotFound)},
	}
	logs := &logRecorder{}
	r := chi.NewRouter()
	r.Use(requestID, accessLog(slog.New(logs)))
	r.NotFound(notFound)
	r.Post("/predict", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, statusBody{Status: "fine"}) })
	r.Post("/bad", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, contracts.FieldError("query", 0, "bad"))
	})
	r.Get("/health", health)
	r.Get("/ready", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, contracts.Errorf(contracts.CodeNoProcessor, "none"))
	})
	r.Post("/slow", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, contracts.Errorf(contracts.CodeTimeout, "slow"))
	})
	r.Post("/bug", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, contracts.Errorf(contracts.CodeInternal, "nil map"))
	})
	r.Post("/gone", func(w http.ResponseWriter, _ *http.Request) { clientGone(w) })

	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "log-" + strconv.Itoa(i)
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(`{"query": "`+secret+`"}`))
			req.Header.Set("X-Request-Id", id)
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			l, ok := logs.access(id)
			if !ok {
				t.Fatalf("no access log line for %s", id)
			}
			if l.Level != tt.level {
				t.Errorf("level %v, want %v", l.Level, tt.level)
			}
			want := map[string]string{"method": tt.method, "route": tt.route, "status": strconv.Itoa(tt.status), "request_id": id}
			if tt.errorCode != "" {
				want["error_code"] = tt.errorCode
			}
			if tt.route == "" {
				want["path"] = tt.path
			}
			for k, v := range want {
				if l.Attrs[k] != v {
					t.Errorf("%s = %q, want %q (line %v)", k, l.Attrs[k], v, l.Attrs)
				}
			}
			if _, err := strconv.ParseFloat(l.Attrs["duration_ms"], 64); err != nil {
				t.Errorf("duration_ms %q: %v", l.Attrs["duration_ms"], err)
			}
			if _, ok := l.Attrs["error_code"]; ok != (tt.errorCode != "") {
				t.Errorf("error_code present: %v, want %v", ok, tt.errorCode != "")
			}
			for k, v := range l.Attrs {
				if strings.Contains(v, secret) {
					t.Errorf("attribute %s logs the request body", k)
				}
			}
		})
	}
}
