package bridge

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/bridge/security"
)

// BenchmarkAuthenticate measures the authentication middleware alone (hash
// the presented key, compare it with every entry in constant time, take a
// token) by the number of keys in the file, against no authentication.
func BenchmarkAuthenticate(b *testing.B) {
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, n := range []int{0, 10, 1000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			s := &Server{public: map[string]bool{}, limiter: security.NewLimiter()}
			if n > 0 {
				var file strings.Builder
				for i := range n {
					fmt.Fprintf(&file, "k%d %s predict\n", i, HashKey(fmt.Sprintf("key-%d", i)))
				}
				s.cfg.Keys = openKeys(b, file.String(), &logRecorder{})
			}
			h := s.authenticate(ok)
			req := httptest.NewRequest(http.MethodPost, "/predict", nil)
			req.Header.Set("Authorization", fmt.Sprintf("Bearer key-%d", max(n-1, 0)))
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		})
	}
}
