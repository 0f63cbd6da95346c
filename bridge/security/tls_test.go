package security

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/internal/testenv"
)

func TestNewCertReloaderErrors(t *testing.T) {
	ca := testenv.NewCA(t, "ca")
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t, "s").WriteFiles(t, dir, "s")
	notPEM := filepath.Join(dir, "junk.pem")
	testenv.WriteFile(t, notPEM, []byte("not a certificate"))
	tests := []struct {
		name  string
		files TLSFiles
		want  string
	}{
		{"no key", TLSFiles{CertFile: certFile}, "both"},
		{"missing cert", TLSFiles{CertFile: filepath.Join(dir, "nope"), KeyFile: keyFile}, "certificate"},
		{"swapped files", TLSFiles{CertFile: keyFile, KeyFile: certFile}, "certificate"},
		{"bad client CA", TLSFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: notPEM}, "client CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewCertReloader(tt.files, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
