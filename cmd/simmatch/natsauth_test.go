package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

func TestBeyondLoopback(t *testing.T) {
	for listen, want := range map[string]bool{
		"127.0.0.1:4222": false, "[::1]:4222": false, "localhost:4222": false, "127.0.0.2:0": false,
		":4222": true, "0.0.0.0:4222": true, "[::]:4222": true, "10.1.2.3:4222": true, "nats.example:4222": true, "garbage": true,
	} {
		if got := beyondLoopback(listen); got != want {
			t.Errorf("beyondLoopback(%q) = %v, want %v", listen, got, want)
		}
	}
}

// The generated credentials are written once, readable by the owner only,
// and read again by the next start; a file others may read is refused.
func TestEmbeddedNATSCredentials(t *testing.T) {
	dir := t.TempDir()
	c, err := embeddedNATSCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.User != natsUser || len(c.Password) < 32 || c.Path != filepath.Join(dir, natsCredentialsFile) {
		t.Fatalf("credentials %+v", c)
	}
	fi, err := os.Stat(c.Path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v, want mode 0600", fi, err)
	}
	again, err := embeddedNATSCredentials(dir)
	if err != nil || again != c {
		t.Fatalf("second start: %+v %v, want the same credentials %+v", again, err, c)
	}
	other, err := embeddedNATSCredentials(t.TempDir())
	if err != nil || other.Password == c.Password {
		t.Fatalf("another data directory: %+v %v, want another password", other, err)
	}
	if err := os.Chmod(c.Path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := embeddedNATSCredentials(dir); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("world-readable file: %v, want a refusal naming 0600", err)
	}
	if err := os.WriteFile(c.Path, []byte("NATS_USER=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := embeddedNATSCredentials(dir); err == nil {
		t.Fatal("a file without a password: want an error")
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The all-in-one whose NATS listens beyond loopback requires credentials:
// a client without them is refused, one with the generated file's gets in,
// and the in-process processor and bridge (which use them) still answer.
func TestAllInOneNATSBeyondLoopbackNeedsCredentials(t *testing.T) {
	data := t.TempDir()
	var logs syncBuffer
	args := []string{"-http-addr", "127.0.0.1:0", "-nats-listen", "0.0.0.0:0", "-log-level", "info", "-workers", "1", "-data-dir", data}
	base, natsURL, _ := runServe(t, args, modelEnv, &logs)

	credsPath := filepath.Join(data, natsCredentialsFile)
	if !strings.Contains(logs.String(), credsPath) {
		t.Errorf("the log does not name the credentials file %s:\n%s", credsPath, logs.String())
	}
	if nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatalf("connect to %s without credentials succeeded", natsURL)
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("connect without credentials: %v, want an authorization error", err)
	}
	if nc, err := nats.Connect(natsURL, nats.UserInfo(natsUser, "wrong-password"), nats.Timeout(5*time.Second), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("connect with a wrong password succeeded")
	}
	c, err := embeddedNATSCredentials(data) // reads the file serve wrote
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsURL, nats.UserInfo(c.User, c.Password), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect with the generated credentials: %v", err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	resp, err := http.Post(base+"/predict", "application/json", strings.NewReader(
		`{"query": ["What can I use to cut wood?"], "product_descriptions": ["Heavy-duty claw hammer with a non-slip grip handle.", "High-performance circular saw with laser guide."]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got contracts.Response
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/predict through the in-process bridge and processor: status %d, decode: %v", resp.StatusCode, err)
	}
	if got.Results[0].Matches[0].Index != 1 {
		t.Fatalf("matches = %+v, want the saw (index 1) first", got.Results[0].Matches)
	}
}
