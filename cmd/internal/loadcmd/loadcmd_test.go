package loadcmd

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/internal/loadgen"
)

func noEnv(string) string { return "" }

func TestBadArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"concurrency", []string{"-concurrency", "1,x"}, nil, "-concurrency"},
		{"zero concurrency", []string{"-concurrency", "0"}, nil, "positive integers"},
		{"unbounded", []string{"-duration", "0"}, nil, "bound the run"},
		{"unknown mix", []string{"-mix", "nope"}, nil, "unknown mix"},
		{"custom without file", []string{"-mix", "custom"}, nil, "-requests-file"},
		{"remote target", []string{"-target", "http://10.1.2.3:8000", "-requests", "1"}, nil, "not a loopback address"},
		{"stray argument", []string{"-requests", "1", "extra"}, nil, "unexpected arguments"},
		{"rate too high", []string{"-rate", "1e9", "-requests", "1"}, nil, "at most 1e6"},
		{"bad env", nil, map[string]string{"SIMMATCH_LOAD_ALLOW_REMOTE": "maybe"}, "SIMMATCH_LOAD_ALLOW_REMOTE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), "simmatch-load", tc.args, func(k string) string { return tc.env[k] }, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestReport(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "r.json")
	ceiling := filepath.Join(dir, "c.json")
	if err := loadgen.WriteJSON(res, []*loadgen.Result{
		{Label: "replica", Mix: loadgen.MixFresh, Concurrency: 16, RequestsPerSecond: 4, TextsPerSecond: 44},
		{Label: "simmatch-fp32", Mix: loadgen.MixFresh, Concurrency: 16, RequestsPerSecond: 10, TextsPerSecond: 110,
			Latency: loadgen.Latency{P50: 5, P99: 9}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := loadgen.WriteJSON(ceiling, loadgen.Ceiling{Model: "fp32", SentencesPerSecond: 220, Config: "c"}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	png := filepath.Join(dir, "p.png")
	if err := Run(context.Background(), "simmatch-load", []string{"report", "-ceiling", ceiling, "-png", png, res}, noEnv, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2.50x", "0.50 of it"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if err := Run(context.Background(), "simmatch-load", []string{"report"}, noEnv, &out); err == nil {
		t.Error("report without files: no error")
	}
}
