package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// startServe runs `simmatch serve` in-process with JetStream in a temp
// dir and returns its HTTP base URL; it stops when the test ends.
func startServe(t *testing.T) string {
	t.Helper()
	args := []string{"-http-addr", "127.0.0.1:0", "-nats-listen", "", "-log-level", "warn", "-data-dir", t.TempDir()}
	u, _, _ := runServe(t, args, modelEnv, io.Discard)
	return u
}

func modelEnv(k string) string {
	if k == "SIMMATCH_MODEL_DIR" || k == "SIMMATCH_ORT_LIB" {
		return os.Getenv(k)
	}
	return ""
}

// runCLI runs `simmatch args...` against base and returns its output.
func runCLI(t *testing.T, base string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, args, func(k string) string {
		if k == "SIMMATCH_URL" {
			return base
		}
		return ""
	}, &out)
	return out.String(), err
}

const (
	hammer = "Heavy-duty claw hammer with a non-slip grip handle."
	saw    = "High-performance circular saw with laser guide."
)

func TestCLI(t *testing.T) {
	base := startServe(t)

	t.Run("match text", func(t *testing.T) {
		out, err := runCLI(t, base, "match", "-d", hammer, "-d", saw, "What can I use to cut wood?", "-top-k", "1")
		if err != nil {
			t.Fatal(err)
		}
		want := "What can I use to cut wood?\n   1. "
		if !strings.HasPrefix(out, want) || !strings.Contains(out, saw) || strings.Contains(out, hammer) {
			t.Fatalf("output:\n%s", out)
		}
	})
	t.Run("match json", func(t *testing.T) {
		out, err := runCLI(t, base, "match", "-json", "-d", hammer, "-d", saw, "cut wood", "drive nails")
		if err != nil {
			t.Fatal(err)
		}
		var resp contracts.Response
		if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.Results) != 2 {
			t.Fatalf("%v: %s", err, out)
		}
		if resp.Results[0].Matches[0].Index != 1 || resp.Results[1].Matches[0].Index != 0 {
			t.Errorf("rankings: %+v", resp.Results)
		}
	})
	t.Run("match errors", func(t *testing.T) {
		_, err := runCLI(t, base, "match", "-d", hammer)
		if exitCode(err) != 2 {
			t.Errorf("no query: %v (exit %d), want a usage error", err, exitCode(err))
		}
		_, err = runCLI(t, base, "match", "-d", " ", "q")
		if !errors.Is(err, contracts.ErrInvalidRequest) || !strings.Contains(err.Error(), "product_descriptions[0]") {
			t.Errorf("blank description: %v", err)
		}
	})
	t.Run("embed", func(t *testing.T) {
		out, err := runCLI(t, base, "embed", "hello world", saw)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("%d lines", len(lines))
		}
		for _, l := range lines {
			var v []float64
			if err := json.Unmarshal([]byte(l), &v); err != nil || len(v) != 384 {
				t.Fatalf("line %.80s: %v, %d dims", l, err, len(v))
			}
		}
		out, err = runCLI(t, base, "embed", "-json", "hello world")
		var doc struct {
			Embeddings []struct {
				Text      string
				Embedding []float64
			}
		}
		if err != nil || json.Unmarshal([]byte(out), &doc) != nil || doc.Embeddings[0].Text != "hello world" || len(doc.Embeddings[0].Embedding) != 384 {
			t.Fatalf("embed -json: %v %.200s", err, out)
		}
	})
	t.Run("jobs", func(t *testing.T) {
		dir := t.TempDir()
		qf, df := filepath.Join(dir, "q.txt"), filepath.Join(dir, "d.txt")
		var qs []string
		for i := range 300 {
			qs = append(qs, "tool for cutting wood number "+string(rune('a'+i%26))+strings.Repeat("!", i/26))
		}
		if err := os.WriteFile(qf, []byte(strings.Join(qs, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(df, []byte(hammer+"\n"+saw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runCLI(t, base, "jobs", "submit", "-queries-file", qf, "-descriptions-file", df, "-top-k", "1", "-wait")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "] 100%  300/300 queries") || !strings.Contains(out, "done") {
			t.Fatalf("progress output:\n%q", out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		id := strings.Fields(lines[len(lines)-1])[0]
		out, err = runCLI(t, base, "jobs", "status", "-json", id)
		var st contracts.JobStatus
		if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.State != contracts.JobDone || st.Done != 300 {
			t.Fatalf("status: %v %s", err, out)
		}
		out, err = runCLI(t, base, "jobs", "results", id)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		n := 0
		for sc.Scan() {
			var r contracts.JobResult
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Query != qs[n] || len(r.Matches) != 1 {
				t.Fatalf("line %d: %v %s", n, err, sc.Text())
			}
			n++
		}
		if n != 300 {
			t.Fatalf("%d result lines", n)
		}
		out, err = runCLI(t, base, "jobs", "submit", "-json", "-d", saw, "one", "two")
		if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Total != 2 {
			t.Fatalf("submit -json: %v %s", err, out)
		}
		if out, err = runCLI(t, base, "jobs", "cancel", st.ID); err != nil || !strings.Contains(out, st.ID) {
			t.Fatalf("cancel: %v %s", err, out)
		}
		_, err = runCLI(t, base, "jobs", "status", "0123456789abcdef")
		if !errors.Is(err, contracts.ErrNotFound) {
			t.Errorf("unknown job: %v", err)
		}
	})
	t.Run("help", func(t *testing.T) {
		out, err := runCLI(t, base, "help")
		if err != nil || !strings.Contains(out, "simmatch match [flags] QUERY...") {
			t.Errorf("help: %v\n%s", err, out)
		}
		out, err = runCLI(t, base, "match", "-help")
		if !errors.Is(err, flag.ErrHelp) || exitCode(err) != 0 || !strings.Contains(out, "-top-k") || !strings.Contains(out, "SIMMATCH_URL") {
			t.Errorf("match -help: %v\n%s", err, out)
		}
		if _, err := runCLI(t, base, "nope"); exitCode(err) != 2 {
			t.Errorf("unknown command: %v", err)
		}
	})
}
