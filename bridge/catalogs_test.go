package bridge

import (
	"net/http"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// Reading and searching catalogs needs the predict scope; changing them
// needs catalog:write. (No processor serves catalogs here: a request that
// passes authentication answers 503 no_processor.)
func TestCatalogScopes(t *testing.T) {
	ns := startNATS(t)
	ks := openKeys(t, testKeysFile(), &logRecorder{})
	b := startBridge(t, ns, func(c *Config) { c.Keys = ks })
	tests := []struct {
		name, method, path, key string
		status                  int
		code                    contracts.Code
	}{
		{"write with predict", "DELETE", "/v1/catalogs/shop", keyPredict, 403, contracts.CodeForbidden},
		{"put with predict", "PUT", "/v1/catalogs/shop/products/a", keyPredict, 403, contracts.CodeForbidden},
		{"bulk with admin", "POST", "/v1/catalogs/shop/products", keyAdmin, 403, contracts.CodeForbidden},
		{"write with *", "DELETE", "/v1/catalogs/shop/products/a", keyAll, 503, contracts.CodeNoProcessor},
		{"list with predict", "GET", "/v1/catalogs", keyPredict, 503, contracts.CodeNoProcessor},
		{"get with predict", "GET", "/v1/catalogs/shop/products/a", keyPredict, 503, contracts.CodeNoProcessor},
		{"search without a key", "POST", "/v1/catalogs/shop/search", "", 401, contracts.CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, b.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.key != "" {
				req.Header.Set("X-API-Key", tt.key)
			}
			resp, body := do(t, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if e := decodeError(t, resp, body); e.Code != tt.code {
				t.Fatalf("code %s, want %s", e.Code, tt.code)
			}
		})
	}
}
