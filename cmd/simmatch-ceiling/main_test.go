package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/internal/loadgen"
	"github.com/simmatch/simmatch/internal/testenv"
)

// A short run with the real model and runtime reports a positive best
// figure and writes it as JSON.
func TestCeiling(t *testing.T) {
	dir, lib := testenv.ModelPaths(t)
	out := filepath.Join(t.TempDir(), "ceiling.json")
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"-model-dir", dir, "-ort-lib", lib, "-batch-sizes", "8", "-duration", "200ms",
		"-texts", "40", "-model", "fp32", "-json", out}, func(string) string { return "" }, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	var c loadgen.Ceiling
	if err := loadgen.ReadJSON(out, &c); err != nil {
		t.Fatal(err)
	}
	if c.Model != "fp32" || c.SentencesPerSecond <= 0 || !strings.Contains(c.Config, "batch 8") {
		t.Errorf("ceiling %+v; output:\n%s", c, stdout.String())
	}
	if strings.Count(stdout.String(), "sentences/s") != 3 {
		t.Errorf("want two configurations and the best:\n%s", stdout.String())
	}
}
