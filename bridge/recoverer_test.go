package bridge

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/simmatch/simmatch/contracts"
)

func TestRecoverer(t *testing.T) {
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		status    int
		abort     bool // the handler's panic must become http.ErrAbortHandler
		logsPanic bool
	}{
		{"no panic", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, 204, false, false},
		{"panic before answering", func(http.ResponseWriter, *http.Request) { panic("boom") }, 500, false, true},
		{"panic with an error", func(http.ResponseWriter, *http.Request) { panic(errors.New("boom")) }, 500, false, true},
		{"panic after answering", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(200)
			panic("boom")
		}, 200, true, true},
		{"abort handler", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }, 200, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logRecorder{}
			h := requestID(recoverer(slog.New(logs))(tt.handler))
			w := httptest.NewRecorder()
			var rec any
			func() {
				defer func() { rec = recover() }()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/predict", nil))
			}()
			if tt.abort != (rec == http.ErrAbortHandler) || (!tt.abort && rec != nil) { //nolint:errorlint
				t.Fatalf("recovered %v, want abort: %v", rec, tt.abort)
			}
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if tt.status == 500 {
				resp := w.Result()
				e := decodeError(t, resp, w.Body.Bytes())
				if e.Code != contracts.CodeInternal || e.RequestID == "" || strings.Contains(e.Message, "boom") {
					t.Errorf("error %+v: want internal with a request id, without the panic value", e)
				}
			}
			var logged bool
			for _, l := range logs.all() {
				if l.Level == slog.LevelError && strings.Contains(l.Msg, "panic") {
					logged = strings.Contains(l.Attrs["panic"], "boom") && strings.Contains(l.Attrs["stack"], "recoverer_test.go")
				}
			}
			if logged != tt.logsPanic {
				t.Errorf("panic logged with its stack: %v, want %v (logs %v)", logged, tt.logsPanic, logs.all())
			}
		})
	}
}

// Through the whole server, a panic is answered, logged and traced as a 500.
func TestRecovererInServer(t *testing.T) {
	ns := startNATS(t)
	b := startBridge(t, ns, nil)
	srv, err := New(Config{NATS: b.nc, Logger: slog.New(b.logs)})
	if err != nil {
		t.Fatal(err)
	}
	// The chi router accepts more routes after it was built; a test-only
	// route stands in for a handler with a bug.
	mux, ok := srv.handler.(*chi.Mux)
	if !ok {
		t.Fatalf("handler %T is not a chi router", srv.handler)
	}
	mux.Get("/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/panic", nil))
	e := decodeError(t, w.Result(), w.Body.Bytes())
	if w.Code != 500 || e.Code != contracts.CodeInternal {
		t.Fatalf("got %d %+v, want 500 internal", w.Code, e)
	}
	if l, ok := b.logs.access(e.RequestID); !ok || l.Attrs["status"] != "500" || l.Level != slog.LevelError {
		t.Errorf("access log %+v, want status 500 at Error", l)
	}
}
