package models_test

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/cache"
	"github.com/simmatch/simmatch/processor/embedding"
)

const (
	bge       = "bge-small-en-v1.5"
	bgePrompt = "Represent this sentence for searching relevant passages: "
)

// TestSecondFamilyPerRequest loads bge-small-en-v1.5 (fp32 and int8) through
// model control beside all-MiniLM-L6-v2, the default: a request naming it
// is answered by it, with its query prompt on the queries (and on the
// embeddings of input_type query) and none on the descriptions; requests
// naming no model stay on all-MiniLM-L6-v2, whose embeddings no input_type
// changes.
func TestSecondFamilyPerRequest(t *testing.T) {
	ns := testenv.StartNATS(t)
	r, name := newRegistry(t, prometheus.NewRegistry(), "fp32")
	startControl(t, ns, r, startProcessor(t, ns, r))
	ctl := contracts.NewModelControl(testenv.Connect(t, ns))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, v := range []string{"fp32", "int8"} {
		if _, err := ctl.Load(ctx, bge+"@"+v); err != nil {
			t.Fatalf("load %s@%s: %v", bge, v, err)
		}
	}
	c := newClient(t, ns)

	for model, want := range map[string]contracts.ModelInfo{
		"":             {Name: name, Version: "fp32", Dimensions: 384},
		bge:            {Name: bge, Version: "fp32", Dimensions: 384},
		bge + "@int8":  {Name: bge, Version: "int8", Dimensions: 384},
		name + "@fp32": {Name: name, Version: "fp32", Dimensions: 384},
	} {
		resp, err := match(t, c, model)
		if err != nil {
			t.Fatalf("model %q: %v", model, err)
		}
		if resp.Model != want {
			t.Errorf("model %q: answered by %+v, want %+v", model, resp.Model, want)
		}
		if resp.Results[0].Matches[0].Index != 1 {
			t.Errorf("model %q: the saw should rank first: %+v", model, resp.Results[0].Matches)
		}
	}

	embed := func(model, inputType string, texts ...string) [][]float32 {
		t.Helper()
		resp, err := c.Embed(ctx, &contracts.EmbedRequest{Input: texts, Model: model, InputType: inputType})
		if err != nil {
			t.Fatalf("embed %q (%s, %q): %v", texts, model, inputType, err)
		}
		return resp.Embeddings
	}
	query, product := "What can I use to cut wood?", "Circular saw with laser guide."

	// /predict scores bge's query with the prompt, its descriptions without.
	resp, err := c.Match(ctx, &contracts.Request{Query: contracts.Queries{query}, ProductDescriptions: []string{product}, Model: bge})
	if err != nil {
		t.Fatal(err)
	}
	v := embed(bge, "", bgePrompt+query, product)
	if got, want := resp.Results[0].Matches[0].Score, dot32(v[0], v[1]); math.Abs(got-want) > 1e-5 {
		t.Errorf("bge /predict score %.6f, want %.6f (the prompted query against the plain description)", got, want)
	}

	// input_type query prepends the prompt; document and none do not.
	prompted, asQuery := embed(bge, "", bgePrompt+query)[0], embed(bge, contracts.InputQuery, query)[0]
	plain, asDoc := embed(bge, "", query)[0], embed(bge, contracts.InputDocument, query)[0]
	if !slices.Equal(prompted, asQuery) || !slices.Equal(plain, asDoc) || slices.Equal(plain, asQuery) {
		t.Errorf("bge input_type: query should equal the prompted text, document the plain one")
	}

	// all-MiniLM-L6-v2 has no prompts: input_type changes nothing.
	base := embed("", "", query)[0]
	for _, it := range []string{contracts.InputQuery, contracts.InputDocument} {
		if !slices.Equal(embed("", it, query)[0], base) {
			t.Errorf("all-MiniLM-L6-v2 input_type %q changed the embedding", it)
		}
	}
	if _, err := c.Embed(ctx, &contracts.EmbedRequest{Input: []string{query}, InputType: "passage"}); !isCode(err, contracts.CodeInvalidRequest) {
		t.Errorf("input_type passage: got %v, want invalid_request", err)
	}
}

// TestPromptReachesEveryLayer: whatever Embedder a caller holds for a
// version (the registry's Resolve, the cache in front of it, Direct's Hold
// for the catalogs, the registry itself for the default), it answers the
// version's prompt, so embedding.WithPrompt works on it.
func TestPromptReachesEveryLayer(t *testing.T) {
	r, name := newRegistry(t, prometheus.NewRegistry(), "fp32")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := r.Load(ctx, bge+"@fp32"); err != nil {
		t.Fatal(err)
	}
	resolved, release, err := r.Resolve(bge)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	c, err := cache.New(cache.Config{Inner: resolved, Bytes: cache.DefaultBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	held, releaseHeld, err := r.Direct().(interface {
		Hold(context.Context, string) (processor.Embedder, func(), error)
	}).Hold(ctx, bge+"@fp32")
	if err != nil {
		t.Fatal(err)
	}
	defer releaseHeld()
	for what, e := range map[string]processor.Embedder{"resolved": resolved, "cache": c, "held": held} {
		if p := embedding.Prompt(e, embedding.Query); p != bgePrompt {
			t.Errorf("%s: query prompt %q, want %q", what, p, bgePrompt)
		}
		if p := embedding.Prompt(e, embedding.Document); p != "" {
			t.Errorf("%s: document prompt %q, want none", what, p)
		}
	}
	// The default model is all-MiniLM-L6-v2: no prompt.
	for what, e := range map[string]processor.Embedder{"registry": r, "direct": r.Direct()} {
		if p := embedding.Prompt(e, embedding.Query); p != "" {
			t.Errorf("%s (default %s): query prompt %q, want none", what, name, p)
		}
	}
}

func dot32(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}
