package bridge

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Every operation of the OpenAPI document names the scope the code asks
// for (x-required-scope): a key with that scope passes the scope check, a
// key with another one gets 403 naming it, and an operation with
// `security: []` answers without a key.
func TestOpenAPIScopes(t *testing.T) {
	data, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Security []map[string][]string `yaml:"security"`
			Scope    string                `yaml:"x-required-scope"`
		}
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	scopes := []Scope{ScopePredict, ScopeCatalogWrite, ScopeJobs, ScopeAdmin}
	var lines strings.Builder
	for _, s := range scopes {
		lines.WriteString("k-" + strings.ReplaceAll(string(s), ":", "-") + " " + HashKey("key-"+string(s)) + " " + string(s) + "\n")
	}
	ns := startNATS(t)
	b := startBridge(t, ns, func(c *Config) { c.Keys = openKeys(t, lines.String(), &logRecorder{}) })
	call := func(method, path, key string) *http.Response {
		t.Helper()
		path = strings.NewReplacer("{catalog}", "tools", "{id}", "0123456789abcdef", "{file}", "app.js").Replace(path)
		req, err := http.NewRequest(strings.ToUpper(method), b.URL+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, _ := do(t, req)
		return resp
	}
	ops := 0
	for path, methods := range doc.Paths {
		for method, op := range methods {
			ops++
			if op.Security != nil && len(op.Security) == 0 {
				if op.Scope != "" {
					t.Errorf("%s %s: public, with x-required-scope %q", method, path, op.Scope)
				}
				if resp := call(method, path, ""); resp.StatusCode == 401 || resp.StatusCode == 403 {
					t.Errorf("%s %s: security [] but %d without a key", method, path, resp.StatusCode)
				}
				continue
			}
			if op.Scope == "" {
				t.Errorf("%s %s: no x-required-scope", method, path)
				continue
			}
			for _, s := range scopes {
				resp := call(method, path, "key-"+string(s))
				switch {
				case string(s) == op.Scope && (resp.StatusCode == 401 || resp.StatusCode == 403):
					t.Errorf("%s %s: a key with scope %s got %d", method, path, s, resp.StatusCode)
				case string(s) != op.Scope && (resp.StatusCode != 403 ||
					!strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="`+op.Scope+`"`)):
					t.Errorf("%s %s: a key with scope %s got %d %q, want 403 for scope %s",
						method, path, s, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), op.Scope)
				}
			}
		}
	}
	if ops < 30 {
		t.Errorf("only %d operations read from the document", ops)
	}
}
