// Package proctest is the test set-up of the tests that run the processor
// from outside it: the shared real model and an embedder that counts. It
// imports the processor, so it lives beside testenv, which the processor's
// own tests import.
package proctest

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/embedding"
)

// RealModel is the real all-MiniLM-L6-v2, loaded once per test binary
// (testenv.SharedModel; testenv.Main closes it).
func RealModel(t testing.TB) *processor.Model {
	t.Helper()
	return testenv.SharedModel(t, "fp32", func(dir, lib string) (*processor.Model, error) {
		return processor.LoadModel(processor.ModelOptions{Dir: dir, Library: lib, Name: "all-MiniLM-L6-v2", Version: "1"})
	})
}

// CountingEmbedder counts the texts it passes to Embedder.
type CountingEmbedder struct {
	processor.Embedder
	// Texts is the number of texts embedded so far.
	Texts atomic.Int64
}

// Embed counts texts and embeds them with c.Embedder.
func (c *CountingEmbedder) Embed(ctx context.Context, texts []string) (embedding.Result, error) {
	c.Texts.Add(int64(len(texts)))
	return c.Embedder.Embed(ctx, texts)
}
