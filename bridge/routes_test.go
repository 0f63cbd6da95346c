package bridge

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/simmatch/simmatch/contracts"
)

func TestUnknownRoutesAndMethods(t *testing.T) {
	ns := startNATS(t)
	b := startBridge(t, ns, nil)
	tests := []struct {
		name   string
		method string
		path   string
		status int
		code   contracts.Code
		allow  string
	}{
		{"unknown path", http.MethodGet, "/nope", 404, contracts.CodeNotFound, ""},
		{"unknown v1 path", http.MethodPost, "/v1/nope", 404, contracts.CodeNotFound, ""},
		{"trailing slash", http.MethodPost, "/predict/", 404, contracts.CodeNotFound, ""},
		{"GET predict", http.MethodGet, "/predict", 405, contracts.CodeMethodNotAllowed, "POST"},
		{"PUT v1 predict", http.MethodPut, "/v1/predict", 405, contracts.CodeMethodNotAllowed, "POST"},
		{"DELETE health", http.MethodDelete, "/health", 405, contracts.CodeMethodNotAllowed, "GET"},
		{"POST ready", http.MethodPost, "/ready", 405, contracts.CodeMethodNotAllowed, "GET"},
		{"unknown method", "BREW", "/predict", 405, contracts.CodeMethodNotAllowed, "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, b.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, body := do(t, req)
			e := decodeError(t, resp, body)
			if resp.StatusCode != tt.status || e.Code != tt.code {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, e, tt.status, tt.code)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
			if resp.Header.Get("X-Request-Id") == "" || e.RequestID != resp.Header.Get("X-Request-Id") {
				t.Errorf("request id: header %q, body %q", resp.Header.Get("X-Request-Id"), e.RequestID)
			}
		})
	}
}

// The OpenAPI document is served and documents every route and error code.
func TestOpenAPI(t *testing.T) {
	ns := startNATS(t)
	b := startBridge(t, ns, nil)
	resp, body := b.get(t, "/openapi.yaml")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	doc := string(body)
	if !strings.HasPrefix(doc, "openapi: 3.0.") {
		t.Errorf("document does not start with openapi: 3.0.x: %.40q", doc)
	}
	if strings.Contains(doc, "\t") {
		t.Error("YAML must not contain tabs")
	}

	reg := prometheus.NewRegistry()
	srv, err := New(Config{NATS: b.nc, Metrics: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	var routes int
	err = chi.Walk(srv.handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes++
		path := "\n  " + route + ":\n"
		i := strings.Index(doc, path)
		if i < 0 {
			t.Errorf("route %s %s is not documented", method, route)
			return nil
		}
		// The operation follows its path, before the next path.
		rest := doc[i+len(path)-1:]
		if next := strings.Index(rest, "\n  /"); next >= 0 {
			rest = rest[:next]
		}
		if !strings.Contains(rest, "\n    "+strings.ToLower(method)+":\n") {
			t.Errorf("route %s %s: method not documented", method, route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if routes < 6 {
		t.Errorf("walked %d routes, want at least 6", routes)
	}
	codes := []contracts.Code{
		contracts.CodeMalformedJSON, contracts.CodeInvalidRequest, contracts.CodePayloadTooLarge,
		contracts.CodeUnsupportedMediaType, contracts.CodeUnauthorized, contracts.CodeForbidden, contracts.CodeRateLimited, contracts.CodeNotFound,
		contracts.CodeMethodNotAllowed, contracts.CodeOverloaded, contracts.CodeNoProcessor,
		contracts.CodeTimeout, contracts.CodeModelError, contracts.CodeInternal, contracts.CodeJobNotDone,
	}
	for _, c := range codes {
		if !strings.Contains(doc, "\n        - "+string(c)+"\n") {
			t.Errorf("error code %s is not in the ErrorCode enum", c)
		}
		if !strings.Contains(doc, "| "+string(c)+" | "+strconv.Itoa(c.HTTPStatus())+" |") {
			t.Errorf("error code %s is not in the code table with status %d", c, c.HTTPStatus())
		}
	}
}
