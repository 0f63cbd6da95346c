package catalog_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/catalog"
	"github.com/simmatch/simmatch/processor/models"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// versionedNode is a processor serving the real fp32 and int8 versions
// from a registry (fp32 the default), its catalogs embedding through
// Registry.Direct like the processors' own.
type versionedNode struct {
	reg  *models.Registry
	svc  *catalog.Service
	proc *processor.Processor
	name string
}

func startVersionedNode(t *testing.T, url string) *versionedNode {
	t.Helper()
	root, name := testenv.ModelStore(t)
	_, lib := testenv.ModelPaths(t)
	reg, err := models.New(models.Config{Root: root, Library: lib, Scheduler: scheduler.Config{Pool: scheduler.NewPool(2)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := reg.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	for _, v := range []string{"fp32", "int8"} {
		if err := reg.Load(context.Background(), name+"@"+v); err != nil {
			t.Fatal(err)
		}
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	svc, err := catalog.New(catalog.Config{NATS: nc, Embedder: reg.Direct(), ReembedCheck: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The registry's own default stands for the desired state here.
	if err := svc.StartReembedding(func(string) string { return reg.Info().Version }); err != nil {
		t.Fatal(err)
	}
	p, err := processor.Start(processor.Config{NATS: nc, Embedder: reg, Models: reg, Catalogs: svc})
	if err != nil {
		t.Fatal(err)
	}
	n := &versionedNode{reg: reg, svc: svc, proc: p, name: name}
	t.Cleanup(func() { n.stop(t) })
	return n
}

func (n *versionedNode) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.proc.Stop(ctx); err != nil {
		t.Error(err)
	}
}

func cosine(a, b []float32) float64 {
	var d, na, nb float64
	for i := range a {
		d += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return d / math.Sqrt(na*nb)
}

// Switching the default version with a catalog present: searches answer
// with the old version throughout, then with the new one once every product
// is re-embedded; a processor stopped part-way leaves its work to another,
// which resumes it; a product upserted during the re-embedding is found with
// the new version.
func TestReembedOnDefaultSwitch(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := startVersionedNode(t, ns.ClientURL())
	const n = 600
	for lo := 0; lo < n; lo += 200 {
		var ps []contracts.Product
		for i := lo; i < lo+200; i++ {
			id := fmt.Sprintf("p%d", i)
			ps = append(ps, contracts.Product{ID: id, Description: fmt.Sprintf("Item %d: %s", i, shop[i%len(shop)].Description), Metadata: map[string]string{"id": id}})
		}
		if _, err := a.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: "big", Products: ps}); err != nil {
			t.Fatal(err)
		}
	}
	b := startVersionedNode(t, ns.ClientURL())
	search := func(nd *versionedNode, id string) *contracts.SearchResponse {
		t.Helper()
		res, err := nd.svc.Search(ctx, &contracts.SearchRequest{Catalog: "big", Query: contracts.Queries{"coffee machine"}, TopK: ptr(5), Filter: map[string]string{"id": id}})
		if err != nil {
			t.Fatalf("search during the re-embedding: %v", err)
		}
		if len(res.Results[0].Matches) != 1 {
			t.Fatalf("search for %s: %d matches; want 1 (model %s)", id, len(res.Results[0].Matches), res.Model.Version)
		}
		return res
	}
	if v := search(b, "p3").Model.Version; v != "fp32" {
		t.Fatalf("before the switch the catalog answers with %s; want fp32", v)
	}

	// A alone switches: it claims the catalog and re-embeds; stopped part-way.
	if err := a.reg.Switch(a.name + "@int8"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "a to re-embed a first batch", func() bool { return a.svc.Reembedded() >= 64 })
	// B switches too (as the desired state makes every processor do): it
	// finds the catalog claimed by a, and takes it over once a stops.
	if err := b.reg.Switch(b.name + "@int8"); err != nil {
		t.Fatal(err)
	}
	a.stop(t)
	doneA := a.svc.Reembedded()
	if doneA >= n {
		t.Fatalf("a re-embedded all %d products before it stopped; the test needs it stopped part-way", doneA)
	}
	if v := search(b, "p3").Model.Version; v != "fp32" {
		t.Fatalf("with the re-embedding part-way the catalog answers with %s; want fp32", v)
	}

	// B resumes; an upsert lands during its re-embedding.
	if _, err := b.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: "big", Products: []contracts.Product{
		{ID: "late", Description: "Burr coffee grinder with 40 settings", Metadata: map[string]string{"id": "late"}}}}); err != nil {
		t.Fatal(err)
	}
	sawNew := false
	testenv.WaitFor(t, 3*time.Minute, "searches to answer with int8", func() bool {
		v := search(b, "p3").Model.Version
		switch {
		case v == "int8":
			sawNew = true
		case v != "fp32" || sawNew:
			t.Fatalf("search answered with %s after int8; versions must not go back", v)
		}
		return sawNew
	})
	if doneB := b.svc.Reembedded(); doneB == 0 || doneB >= n {
		t.Fatalf("b re-embedded %d products after a did %d of %d; want b to resume (some, not all)", doneB, doneA, n)
	}

	// The scores are int8 cosines, to the tolerance of the int8 model's
	// per-batch quantization.
	int8, release, err := b.reg.Resolve(b.name + "@int8")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for _, id := range []string{"p3", "p599", "late"} {
		m := search(b, id).Results[0].Matches[0]
		vecs, err := int8.Embed(ctx, []string{"coffee machine", m.Description})
		if err != nil {
			t.Fatal(err)
		}
		if want := cosine(vecs[0], vecs[1]); math.Abs(float64(m.Score)-want) > 0.05 {
			t.Fatalf("%s scores %v; the int8 cosine is %v", id, m.Score, want)
		}
	}
	// A processor joining now loads the int8 matrix from the stream, without
	// embedding, and ranks exactly as b.
	c := startVersionedNode(t, ns.ClientURL())
	if err := c.reg.Switch(c.name + "@int8"); err != nil {
		t.Fatal(err)
	}
	q := &contracts.SearchRequest{Catalog: "big", Query: contracts.Queries{"coffee machine"}, TopK: ptr(20)}
	want, err := b.svc.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.svc.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if got.Model.Version != "int8" || !slices.EqualFunc(want.Results[0].Matches, got.Results[0].Matches, sameMatch) || c.svc.Reembedded() != 0 {
		t.Fatalf("joining processor (re-embedded %d) answers with %s\n%+v\nwant\n%+v", c.svc.Reembedded(), got.Model.Version, got.Results[0].Matches, want.Results[0].Matches)
	}
}
