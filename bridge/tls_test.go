package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/internal/testenv"
)

// serveTLS serves a bridge over TLS with r's configuration on a loopback
// port until the test ends and returns its base URL.
func serveTLS(t *testing.T, r *CertReloader) string {
	t.Helper()
	ns := startNATS(t)
	h, err := New(Config{NATS: connect(t, ns), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, tls.NewListener(ln, r.TLSConfig()), h, time.Second, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "https://" + ln.Addr().String()
}

// tlsGet GETs url/health on a new connection and returns the server's
// certificate, or the error.
func tlsGet(url string, cfg *tls.Config) (*x509.Certificate, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := c.Get(url + "/health")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, &statusError{resp.StatusCode}
	}
	return resp.TLS.PeerCertificates[0], nil
}

type statusError struct{ status int }

func (e *statusError) Error() string { return http.StatusText(e.status) }

func TestTLSServesAndReloads(t *testing.T) {
	ca := testenv.NewCA(t, "test CA")
	dir := t.TempDir()
	first := ca.Server(t, "bridge-1")
	certFile, keyFile := first.WriteFiles(t, dir, "server")
	logs := &logRecorder{}
	r, err := NewCertReloader(TLSFiles{CertFile: certFile, KeyFile: keyFile}, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Watch(ctx, 5*time.Millisecond)
	url := serveTLS(t, r)
	client := &tls.Config{RootCAs: ca.Pool()}

	got, err := tlsGet(url, client)
	if err != nil {
		t.Fatal(err)
	}
	if got.SerialNumber.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("served %s, want the first certificate", got.Subject.CommonName)
	}
	if _, err := tlsGet(strings.Replace(url, "https://", "http://", 1), nil); err == nil {
		t.Fatal("plain HTTP was answered on the TLS port")
	}
	// TLS 1.1 is refused.
	if _, err := tlsGet(url, &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("a TLS 1.1 client was served")
	}

	// Rotation: the new pair is served without a restart.
	second := ca.Server(t, "bridge-2")
	second.WriteFiles(t, dir, "server")
	testenv.WaitFor(t, 5*time.Second, "the rotated certificate to be served", func() bool {
		got, err := tlsGet(url, client)
		return err == nil && got.SerialNumber.Cmp(second.Cert.SerialNumber) == 0
	})

	// A broken rotation (a key that does not match) keeps the last good pair.
	testenv.WriteFile(t, keyFile, ca.Server(t, "other").KeyPEM)
	testenv.WaitFor(t, 5*time.Second, "the rejected rotation to be logged", func() bool {
		for _, l := range logs.all() {
			if l.Level == slog.LevelError && strings.Contains(l.Attrs["err"], "private key does not match") {
				return true
			}
		}
		return false
	})
	if got, err := tlsGet(url, client); err != nil || got.SerialNumber.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after a broken rotation: %v, want the second certificate still served", err)
	}
}

func TestMutualTLS(t *testing.T) {
	ca := testenv.NewCA(t, "server CA")
	clientCA := testenv.NewCA(t, "client CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t, "bridge").WriteFiles(t, dir, "server")
	caFile := filepath.Join(dir, "clients.pem")
	testenv.WriteFile(t, caFile, clientCA.PEM)
	r, err := NewCertReloader(TLSFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	url := serveTLS(t, r)

	tests := []struct {
		name   string
		certs  []tls.Certificate
		wantOK bool
	}{
		{"no client certificate", nil, false},
		{"certificate from another CA", []tls.Certificate{ca.Client(t, "stranger").TLSCertificate(t)}, false},
		{"certificate from the client CA", []tls.Certificate{clientCA.Client(t, "app").TLSCertificate(t)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tlsGet(url, &tls.Config{RootCAs: ca.Pool(), Certificates: tt.certs})
			if (err == nil) != tt.wantOK {
				t.Fatalf("err = %v, want success: %v", err, tt.wantOK)
			}
		})
	}
}
