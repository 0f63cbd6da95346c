package bridge

import (
	"net/http"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// The console's files are served with their types and caching headers, to
// callers without a key even when the bridge has keys and no public paths;
// the API behind it still needs one.
func TestConsoleIsServedAndPublic(t *testing.T) {
	ns := startNATS(t)
	logs := &logRecorder{}
	ks := openKeys(t, testKeysFile(), logs)
	b := startBridge(t, ns, func(c *Config) { c.Keys, c.PublicPaths = ks, []string{} })

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(b.URL + "/console")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("/console: %d Location %q, want 301 to /console/", resp.StatusCode, resp.Header.Get("Location"))
	}

	for _, tt := range []struct {
		path, ctype, contains string
	}{
		{"/console/", "text/html; charset=utf-8", `<script type="module" src="app.js">`},
		{"/console/index.html", "text/html; charset=utf-8", "<title>simmatch console</title>"},
		{"/console/app.js", "text/javascript; charset=utf-8", "import"},
		{"/console/api.js", "text/javascript; charset=utf-8", "sessionStorage"},
		{"/console/console.css", "text/css; charset=utf-8", "--accent"},
	} {
		resp, body := b.get(t, tt.path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tt.ctype {
			t.Fatalf("%s: %d %q, want 200 %q", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.ctype)
		}
		if !strings.Contains(string(body), tt.contains) {
			t.Errorf("%s: body lacks %q", tt.path, tt.contains)
		}
		etag := resp.Header.Get("ETag")
		if resp.Header.Get("Cache-Control") != "no-cache" || etag == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: Cache-Control %q ETag %q nosniff %q", tt.path, resp.Header.Get("Cache-Control"), etag, resp.Header.Get("X-Content-Type-Options"))
		}
		if strings.HasSuffix(tt.ctype, "html; charset=utf-8") {
			csp := resp.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("%s: CSP %q", tt.path, csp)
			}
		}
		// Revalidation: the same ETag answers 304 without a body.
		req, _ := http.NewRequest(http.MethodGet, b.URL+tt.path, nil)
		req.Header.Set("If-None-Match", etag)
		resp, body = do(t, req)
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("%s with If-None-Match: %d, %d bytes, want 304 and none", tt.path, resp.StatusCode, len(body))
		}
	}

	// No other file, and no way out of the directory.
	for _, p := range []string{"/console/nope.js", "/console/..%2fconsole.go", "/console/console.go"} {
		resp, body := b.get(t, p)
		if e := decodeError(t, resp, body); resp.StatusCode != 404 || e.Code != contracts.CodeNotFound {
			t.Errorf("%s: %d %+v, want 404 not_found", p, resp.StatusCode, e)
		}
	}

	// The API the page calls still needs a key.
	resp, body := b.get(t, "/v1/catalogs")
	if e := decodeError(t, resp, body); resp.StatusCode != 401 || e.Code != contracts.CodeUnauthorized {
		t.Fatalf("/v1/catalogs without a key: %d %+v, want 401", resp.StatusCode, e)
	}
	resp, _ = b.get(t, "/consolex")
	if resp.StatusCode != 401 {
		t.Errorf("/consolex: %d, want 401 (only /console and below are public)", resp.StatusCode)
	}
}
