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
	ctl  *models.Control
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
	p, err := processor.Start(processor.Config{NATS: nc, Embedder: reg, Models: reg, Catalogs: svc})
	if err != nil {
		t.Fatal(err)
	}
	// As the processors do (processor/node): the desired state in JetStream
	// drives the default, and the catalogs follow it.
	ctl, err := models.StartControl(context.Background(), models.ControlConfig{NATS: nc, Registry: reg, Processor: p})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.StartReembedding(ctl.DesiredDefault); err != nil {
		t.Fatal(err)
	}
	n := &versionedNode{reg: reg, ctl: ctl, svc: svc, proc: p, name: name}
	t.Cleanup(func() { n.stop(t) })
	return n
}

func (n *versionedNode) stop(t *testing.T) {
	n.ctl.Stop()
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

// Switching the default version with a catalog present: exactly one
// processor re-embeds it; searches answer with the old version throughout,
// then with the new one once every product is re-embedded; a processor
// stopped part-way leaves its work to another, which resumes it; a product
// upserted during the re-embedding is found with the new version.
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
		res, err := nd.svc.Search(ctx, &contracts.SearchRequest{Catalog: "big", Query: contracts.Queries{"coffee machine"}, TopK: ptr(5), SearchOptions: contracts.SearchOptions{Filter: contracts.Filter{"id": contracts.Equals(id)}}})
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

	// The switch reaches both processors through the desired state;
	// exactly one claims the catalog and re-embeds; it is stopped part-way.
	if err := a.ctl.Switch(ctx, a.name+"@int8"); err != nil {
		t.Fatal(err)
	}
	var worker, other *versionedNode
	testenv.WaitFor(t, time.Minute, "a processor to re-embed a first batch", func() bool {
		switch {
		case a.svc.Reembedded() >= 64:
			worker, other = a, b
		case b.svc.Reembedded() >= 64:
			worker, other = b, a
		}
		return worker != nil
	})
	if n := other.svc.Reembedded(); n != 0 {
		t.Fatalf("both processors re-embed the catalog (%d and %d products); want one", worker.svc.Reembedded(), n)
	}
	worker.stop(t)
	doneW := worker.svc.Reembedded()
	if doneW >= n {
		t.Fatalf("the worker re-embedded all %d products before it stopped; the test needs it stopped part-way", doneW)
	}
	if v := search(other, "p3").Model.Version; v != "fp32" {
		t.Fatalf("with the re-embedding part-way the catalog answers with %s; want fp32", v)
	}

	// The other resumes once the claim is released; an upsert lands
	// during its re-embedding. Every search answers, with fp32 then int8.
	if _, err := other.svc.Upsert(ctx, &contracts.UpsertRequest{Catalog: "big", Products: []contracts.Product{
		{ID: "late", Description: "Burr coffee grinder with 40 settings", Metadata: map[string]string{"id": "late"}}}}); err != nil {
		t.Fatal(err)
	}
	sawNew := false
	testenv.WaitFor(t, 3*time.Minute, "searches to answer with int8", func() bool {
		v := search(other, "p3").Model.Version
		switch {
		case v == "int8":
			sawNew = true
		case v != "fp32" || sawNew:
			t.Fatalf("search answered with %s after int8; versions must not go back", v)
		}
		return sawNew
	})
	if doneO := other.svc.Reembedded(); doneO == 0 || doneO >= n {
		t.Fatalf("the second processor re-embedded %d products after the first did %d of %d; want it to resume (some, not all)", doneO, doneW, n)
	}
	b = other

	// The scores are int8 cosines, to the tolerance of the int8 model's
	// per-batch quantization.
	int8, release, err := b.reg.Resolve(b.name + "@int8")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for _, id := range []string{"p3", "p599", "late"} {
		m := search(b, id).Results[0].Matches[0]
		vecs, err := vectors(int8.Embed(ctx, []string{"coffee machine", m.Description}))
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
	testenv.WaitFor(t, time.Minute, "the joining processor to adopt int8", func() bool { return c.reg.Info().Version == "int8" })
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
