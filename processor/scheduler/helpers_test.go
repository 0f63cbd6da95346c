package scheduler

import (
	"fmt"
	"testing"

	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor/embedding"
	"github.com/simmatch/simmatch/processor/internal/embed"
)

// realModel is the real model with intraOp ONNX Runtime threads, loaded
// once per thread count and test binary.
func realModel(t testing.TB, intraOp int) *embed.Model {
	t.Helper()
	return testenv.SharedModel(t, fmt.Sprintf("fp32 intra-op %d", intraOp), func(dir, lib string) (*embed.Model, error) {
		return embed.Load(embed.Options{Dir: dir, Library: lib, Name: "all-MiniLM-L6-v2", Version: "1", IntraOpThreads: intraOp})
	})
}

func TestMain(m *testing.M) { testenv.Main(m) }

// newScheduler starts a scheduler on the real model (one intra-op thread)
// and closes it when the test ends.
func newScheduler(t testing.TB, mod func(*Config)) *Scheduler {
	t.Helper()
	cfg := Config{Model: realModel(t, 1)}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.StopAtEnd(t, s.Close)
	return s
}

// freshTexts returns n product-like texts no other call returns (seed picks the set).
func freshTexts(seed, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("Item %d-%d: cordless drill with %d batteries, a fast charger and a hard carrying case, %d-year warranty.", seed, i, i%4+1, i%3+1)
	}
	return out
}

// vectors is an Embed call's vectors, for tests about the vectors alone.
func vectors(r embedding.Result, err error) ([][]float32, error) { return r.Vectors, err }
