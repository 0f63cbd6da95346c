package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// natscliVersion is the nats CLI the test runs, pinned.
const natscliVersion = "v0.5.0"

// natscli returns the path of the pinned nats CLI, building it on first use
// into $SIMMATCH_CACHE/natscli-<version>/nats (like the other tools; a
// second run starts at once). A fresh machine needs the Go module proxy.
func natscli(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("SIMMATCH_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(home, ".cache", "simmatch")
	}
	dir := filepath.Join(cache, "natscli-"+natscliVersion)
	bin := filepath.Join(dir, "nats")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	// Build into a directory of our own, then rename it into place: a
	// concurrent run never sees half a binary.
	tmp, err := os.MkdirTemp(cache, ".natscli-build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	t.Logf("building the nats CLI %s into %s (once)", natscliVersion, dir)
	cmd := exec.Command("go", "install", "github.com/nats-io/natscli/nats@"+natscliVersion)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install natscli %s: %v\n%s", natscliVersion, err, out)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(bin); serr != nil { // not another run's build
			t.Fatalf("install natscli: %v", err)
		}
	}
	return bin
}

// The nats CLI sees the processors as a NATS micro service, and a plain
// `nats req` gets a ranking: the commands the README shows.
func TestNatsCLISeesTheService(t *testing.T) {
	bin := natscli(t)
	args := []string{"-http-addr", "127.0.0.1:0", "-nats-listen", "127.0.0.1:0", "-log-level", "warn", "-workers", "1", "-data-dir", t.TempDir()}
	_, natsURL, _ := runServe(t, args, modelEnv, io.Discard)
	home := t.TempDir() // no nats contexts of the machine's user
	nats := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--server", natsURL, "--timeout", "30s"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "NATS_CONTEXT=", "NO_COLOR=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("nats %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		t.Logf("$ nats %s\n%s%s", strings.Join(args, " "), stdout.String(), stderr.String())
		return stdout.String() + stderr.String()
	}
	contains := func(what, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: no %q in\n%s", what, w, out)
			}
		}
	}

	contains("micro ls", nats("micro", "ls"), contracts.ServiceName)
	info := nats("micro", "info", contracts.ServiceName)
	contains("micro info", info, contracts.ServiceName, contracts.SubjectSimilarity, `"state": "serving"`)
	contains("micro stats", nats("micro", "stats", contracts.ServiceName), contracts.ServiceName+" Service Statistics", "similarity", "embed", "catalog-search")

	body := `{"query":["cut wood"],"product_descriptions":["Circular saw","Claw hammer"]}`
	out := nats("req", "--raw", contracts.SubjectSimilarity, body)
	var resp contracts.Response
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &resp); err != nil {
		t.Fatalf("reply %q: %v", out, err)
	}
	if len(resp.Results) != 1 || len(resp.Results[0].Matches) != 2 || resp.Results[0].Matches[0].Index != 0 {
		t.Fatalf("reply %s: want two matches, the saw first", fmt.Sprint(resp))
	}
}
