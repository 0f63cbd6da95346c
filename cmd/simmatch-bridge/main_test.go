package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/bridge"
)

func TestHashKey(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, stdin, want, wantErr string
	}{
		{"with a newline, as echo writes it", key + "\n", bridge.HashKey(key) + "\n", ""},
		{"without a newline", key, bridge.HashKey(key) + "\n", ""},
		{"too short", "hunter2\n", "", "at least 16"},
		{"with a space", "0123456789 abcdef0123456789\n", "", "without spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), []string{"-hash-key"}, func(string) string { return "" }, strings.NewReader(tt.stdin), &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || out.String() != tt.want {
				t.Fatalf("got %q, %v; want %q", out.String(), err, tt.want)
			}
		})
	}
	// The recipe of docs/security.md gives the same hash.
	if sum, err := exec.Command("sh", "-c", `printf %s "$0" | sha256sum`, key).Output(); err == nil {
		if got := strings.Fields(string(sum))[0]; got != bridge.HashKey(key) {
			t.Fatalf("sha256sum %s, HashKey %s", got, bridge.HashKey(key))
		}
	}
}

// A broken keys file stops the bridge before it serves, naming the line.
func TestBridgeRefusesBrokenKeysFile(t *testing.T) {
	file := t.TempDir() + "/keys"
	if err := writeFile(file, "app not-a-hash predict\n"); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SIMMATCH_API_KEYS_FILE": file, "SIMMATCH_HTTP_ADDR": "127.0.0.1:0", "NATS_URL": "nats://127.0.0.1:1"}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, strings.NewReader(""), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "line 1: hash") {
		t.Fatalf("err %v, want the keys file's line 1", err)
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
