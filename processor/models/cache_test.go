package models_test

import (
	"context"
	"slices"
	"testing"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/cache"
	"github.com/simmatch/simmatch/processor/embedding"
	"github.com/simmatch/simmatch/processor/models"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// TestCacheKeysEachVersion puts one embedding cache in front of two
// versions (Config.Wrap with Cache.For): a text embedded by fp32 is a hit
// for fp32 only; int8 computes its own.
func TestCacheKeysEachVersion(t *testing.T) {
	root, name := testenv.ModelStore(t)
	_, lib := testenv.ModelPaths(t)
	var c *cache.Cache
	r, err := models.New(models.Config{Root: root, Library: lib, Scheduler: scheduler.Config{Pool: scheduler.NewPool(2)},
		Wrap: func(e processor.Embedder) processor.Embedder { return c.For(e) }})
	if err != nil {
		t.Fatal(err)
	}
	if c, err = cache.New(cache.Config{Inner: r, Bytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()); _ = r.Close(context.Background()) })
	for _, v := range []string{"fp32", "int8"} {
		if err := r.Load(context.Background(), contracts.ModelRef(name, v)); err != nil {
			t.Fatal(err)
		}
	}
	embed := func(version string) []float32 {
		t.Helper()
		e, release, err := r.Resolve(contracts.ModelRef(name, version))
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		v, err := vectors(e.Embed(context.Background(), []string{"cordless drill"}))
		if err != nil {
			t.Fatal(err)
		}
		return v[0]
	}
	fp := embed("fp32")
	if again := embed("fp32"); !slices.Equal(fp, again) || c.Stats().Local.Hits != 1 {
		t.Fatalf("second fp32 embedding: hits %d, want 1 and the same bits", c.Stats().Local.Hits)
	}
	if q := embed("int8"); slices.Equal(fp, q) || c.Stats().Local.Hits != 1 {
		t.Fatalf("int8 got fp32's cached embedding (hits %d)", c.Stats().Local.Hits)
	}
}

// vectors is an Embed call's vectors, for tests about the vectors alone.
func vectors(r embedding.Result, err error) ([][]float32, error) { return r.Vectors, err }
