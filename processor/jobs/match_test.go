package jobs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/catalog"
	"github.com/simmatch/simmatch/processor/jobs"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// startCatalogProcessor starts a processor with catalogs and a jobs worker
// on them (wrap, when not nil, wraps the catalogs the worker sees); nc is
// the processor's connection (nil: a new one). Cleanup stops the worker,
// the processor (and its catalogs), then the scheduler.
func startCatalogProcessor(t *testing.T, ns *server.Server, nc *nats.Conn, jc jobs.Config, wrap func(jobs.Catalogs) jobs.Catalogs) *jobs.Worker {
	t.Helper()
	return startCatalogProcessorOn(t, ns, nc, jc, wrap, realModel(t))
}

// startCatalogProcessorOn is startCatalogProcessor with model.
func startCatalogProcessorOn(t *testing.T, ns *server.Server, nc *nats.Conn, jc jobs.Config, wrap func(jobs.Catalogs) jobs.Catalogs, model *processor.Model) *jobs.Worker {
	t.Helper()
	s, err := scheduler.New(scheduler.Config{Model: model})
	if err != nil {
		t.Fatal(err)
	}
	stopWith(t, s.Close)
	if nc == nil {
		nc = connect(t, ns)
	}
	svc, err := catalog.New(catalog.Config{NATS: nc, Embedder: s})
	if err != nil {
		t.Fatal(err)
	}
	p, err := processor.Start(processor.Config{NATS: nc, Embedder: s, Catalogs: svc})
	if err != nil {
		t.Fatal(err)
	}
	stopWith(t, p.Stop)
	if jc.NATS == nil {
		jc.NATS = connect(t, ns)
	}
	jc.Embedder, jc.Catalogs = s, svc
	if wrap != nil {
		jc.Catalogs = wrap(svc)
	}
	w, err := jobs.Start(jc)
	if err != nil {
		t.Fatal(err)
	}
	stopWith(t, w.Stop)
	return w
}

func upsert(t *testing.T, ns *server.Server, name string, products []contracts.Product) {
	t.Helper()
	c, err := contracts.NewClient(connect(t, ns), contracts.WithTimeout(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.UpsertProducts(ctx, &contracts.UpsertRequest{Catalog: name, Products: products}); err != nil {
		t.Fatalf("upsert %s: %v", name, err)
	}
}

// submitBody posts a job and returns its status; want is the HTTP status expected.
func submitBody(t *testing.T, url, body string, want int) (contracts.JobStatus, []byte) {
	t.Helper()
	resp, data := proctest.Post(t, url+"/v1/jobs", body)
	if resp.StatusCode != want {
		t.Fatalf("submit %s: %d %s, want %d", body, resp.StatusCode, data, want)
	}
	var st contracts.JobStatus
	_ = json.Unmarshal(data, &st)
	return st, data
}

// lines reads a done job's results, one JSON value of type T per line.
func lines[T any](t *testing.T, url, id string) []T {
	t.Helper()
	resp, data := proctest.Get(t, url+"/v1/jobs/"+id+"/results")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("results: %d %q %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), data)
	}
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v T
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("line %d: %v: %s", len(out), err, sc.Bytes())
		}
		out = append(out, v)
	}
	return out
}

// checkRows checks one result line per source product, each once.
func checkRows(t *testing.T, rows []contracts.MatchResult, source []contracts.Product) map[string]contracts.MatchResult {
	t.Helper()
	by := map[string]contracts.MatchResult{}
	for _, r := range rows {
		if _, dup := by[r.SourceID]; dup {
			t.Errorf("source %s has two result lines", r.SourceID)
		}
		by[r.SourceID] = r
	}
	for _, p := range source {
		if _, ok := by[p.ID]; !ok {
			t.Errorf("source %s has no result line", p.ID)
		}
	}
	if len(rows) != len(source) {
		t.Errorf("%d result lines for %d source products", len(rows), len(source))
	}
	return by
}

// A feed of reworded shop products is matched back to the shop: the
// planted product is first for at least 95% of the feed. block_on keeps
// every match within the brand; mutual_best keeps only mutual bests.
// plantedFirst runs a top-3 match job of feed against shop and checks that
// each feed item's planted product (its id without the "f") comes first for
// at least 95% of the feed; it logs the figure for model.
func plantedFirst(t *testing.T, url, model string, feed []contracts.Product) {
	t.Helper()
	st, _ := submitBody(t, url, `{"match": {"source": "feed", "target": "shop", "top_k": 3}}`, http.StatusAccepted)
	if st.Kind != contracts.JobKindMatch || st.State != contracts.JobQueued {
		t.Errorf("submitted: %+v", st)
	}
	done := waitJob(t, url, st.ID, contracts.JobDone, 2*time.Minute)
	if done.Total != len(feed) || done.Done != len(feed) || done.Chunks != 4 {
		t.Errorf("done: %+v, want %d rows in 4 chunks", done, len(feed))
	}
	rows := checkRows(t, lines[contracts.MatchResult](t, url, st.ID), feed)
	first, inTop := 0, 0
	for _, p := range feed {
		r := rows[p.ID]
		if len(r.Matches) != 3 {
			t.Errorf("%s: %d matches, want 3", p.ID, len(r.Matches))
			continue
		}
		want := strings.TrimPrefix(p.ID, "f")
		if r.Matches[0].ID == want {
			first++
		} else {
			t.Logf("miss: %q -> %s (%.3f), planted %s", p.Description, r.Matches[0].ID, r.Matches[0].Score, want)
		}
		if slices.ContainsFunc(r.Matches, func(m contracts.MatchScore) bool { return m.ID == want }) {
			inTop++
		}
		for k := 1; k < len(r.Matches); k++ {
			if r.Matches[k].Score > r.Matches[k-1].Score {
				t.Errorf("%s: matches not best first: %+v", p.ID, r.Matches)
			}
		}
	}
	rate := float64(first) / float64(len(feed))
	t.Logf("%s: planted product first for %d of %d feed items (%.1f%%), in the top 3 for %d", model, first, len(feed), 100*rate, inTop)
	if rate < 0.95 {
		t.Errorf("planted product first for %.1f%% of the feed, want at least 95%%", 100*rate)
	}
}

// The same planted feed with the second model family, bge-small-en-v1.5:
// its catalogs hold bge embeddings, and the match job uses them.
func TestMatchJobPlantedWithBGE(t *testing.T) {
	ns := startJobsNATS(t)
	startCatalogProcessorOn(t, ns, nil, jobs.Config{MatchChunkSize: 16}, nil, proctest.BGEModel(t))
	b := proctest.StartBridge(t, ns, nil)
	upsert(t, ns, "shop", shopCatalog())
	upsert(t, ns, "feed", feedCatalog())
	plantedFirst(t, b.URL, "bge-small-en-v1.5", feedCatalog())
}

func TestMatchJobFindsPlantedCorrespondences(t *testing.T) {
	ns := startJobsNATS(t)
	startCatalogProcessor(t, ns, nil, jobs.Config{MatchChunkSize: 16}, nil)
	b := proctest.StartBridge(t, ns, nil)
	shop, feed := shopCatalog(), feedCatalog()
	upsert(t, ns, "shop", shop)
	upsert(t, ns, "feed", feed)
	plantedFirst(t, b.URL, "all-MiniLM-L6-v2", feed)
	// block_on: every match shares the source's brand.
	st, _ := submitBody(t, b.URL, `{"match": {"source": "feed", "target": "shop", "top_k": 3, "block_on": ["brand"]}}`, http.StatusAccepted)
	waitJob(t, b.URL, st.ID, contracts.JobDone, 2*time.Minute)
	brand := map[string]string{}
	for _, p := range shop {
		brand[p.ID] = p.Metadata["brand"]
	}
	for _, r := range checkRows(t, lines[contracts.MatchResult](t, b.URL, st.ID), feed) {
		src := feed[slices.IndexFunc(feed, func(p contracts.Product) bool { return p.ID == r.SourceID })]
		for _, m := range r.Matches {
			if brand[m.ID] != src.Metadata["brand"] {
				t.Errorf("block_on brand: %s (%s) matched %s (%s)", r.SourceID, src.Metadata["brand"], m.ID, brand[m.ID])
			}
		}
	}

	// mutual_best: at most one match, each the other's best; the shop
	// matched against itself is the identity.
	st, _ = submitBody(t, b.URL, `{"match": {"source": "shop", "target": "shop", "mutual_best": true}}`, http.StatusAccepted)
	waitJob(t, b.URL, st.ID, contracts.JobDone, 2*time.Minute)
	for _, r := range checkRows(t, lines[contracts.MatchResult](t, b.URL, st.ID), shop) {
		if len(r.Matches) != 1 || r.Matches[0].ID != r.SourceID {
			t.Errorf("shop x shop mutual best of %s: %+v, want itself", r.SourceID, r.Matches)
		}
	}
	st, _ = submitBody(t, b.URL, `{"match": {"source": "feed", "target": "shop", "mutual_best": true, "threshold": 0.5}}`, http.StatusAccepted)
	waitJob(t, b.URL, st.ID, contracts.JobDone, 2*time.Minute)
	kept := 0
	for _, r := range checkRows(t, lines[contracts.MatchResult](t, b.URL, st.ID), feed) {
		if len(r.Matches) > 1 || (len(r.Matches) == 1 && r.Matches[0].Score < 0.5) {
			t.Errorf("mutual best of %s: %+v", r.SourceID, r.Matches)
		}
		kept += len(r.Matches)
	}
	t.Logf("mutual_best (threshold 0.5): %d of %d feed items keep a pair", kept, len(feed))
}

// Dedupe recovers planted near-duplicates as clusters; no product is
// paired with itself; block_on prevents cross-block pairs.
func TestDedupeJobRecoversPlantedDuplicates(t *testing.T) {
	ns := startJobsNATS(t)
	startCatalogProcessor(t, ns, nil, jobs.Config{MatchChunkSize: 20}, nil)
	b := proctest.StartBridge(t, ns, nil)
	products, truth := dupeCatalog()
	upsert(t, ns, "market", products)
	region := map[string]string{}
	for _, p := range products {
		region[p.ID] = p.Metadata["region"]
	}
	truePairs := map[[2]string]bool{}
	for _, c := range truth {
		for i := range c {
			for j := i + 1; j < len(c); j++ {
				truePairs[[2]string{min(c[i], c[j]), max(c[i], c[j])}] = true
			}
		}
	}

	const threshold = 0.85
	check := func(body string, blocked bool) {
		t.Helper()
		st, _ := submitBody(t, b.URL, body, http.StatusAccepted)
		if st.Kind != contracts.JobKindDedupe {
			t.Errorf("kind %q", st.Kind)
		}
		waitJob(t, b.URL, st.ID, contracts.JobDone, 2*time.Minute)
		clusters := lines[contracts.DedupeCluster](t, b.URL, st.ID)
		found := map[[2]string]bool{}
		inCluster := map[string]int{}
		for ci, c := range clusters {
			if len(c.Cluster) < 2 || !slices.IsSorted(c.Cluster) {
				t.Errorf("cluster %v: want 2 or more ids, sorted", c.Cluster)
			}
			for _, id := range c.Cluster {
				if prev, dup := inCluster[id]; dup {
					t.Errorf("%s in clusters %d and %d", id, prev, ci)
				}
				inCluster[id] = ci
			}
			for _, p := range c.Pairs {
				if p.A == p.B {
					t.Errorf("self-pair %+v", p)
				}
				if p.A > p.B {
					t.Errorf("pair %+v: want a < b", p)
				}
				if p.Score < threshold {
					t.Errorf("pair %+v below the threshold %v", p, threshold)
				}
				if !slices.Contains(c.Cluster, p.A) || !slices.Contains(c.Cluster, p.B) {
					t.Errorf("pair %+v outside its cluster %v", p, c.Cluster)
				}
				if blocked && region[p.A] != region[p.B] {
					t.Errorf("block_on region: pair %+v crosses regions %s/%s", p, region[p.A], region[p.B])
				}
				k := [2]string{p.A, p.B}
				if found[k] {
					t.Errorf("pair %+v twice", p)
				}
				found[k] = true
			}
		}
		want := 0
		tp := 0
		for k := range truePairs {
			if blocked && region[k[0]] != region[k[1]] {
				continue
			}
			want++
			if found[k] {
				tp++
			} else {
				t.Logf("missed planted pair %v", k)
			}
		}
		for k := range found {
			if !truePairs[k] {
				t.Logf("false pair %v", k)
			}
		}
		precision, recall := float64(tp)/float64(max(len(found), 1)), float64(tp)/float64(max(want, 1))
		t.Logf("dedupe threshold %.2f (block_on region: %v): %d clusters, %d pairs, %d planted; precision %.3f, recall %.3f",
			threshold, blocked, len(clusters), len(found), want, precision, recall)
		if precision < 0.9 || recall < 0.9 {
			t.Errorf("precision %.3f, recall %.3f: want both at least 0.9", precision, recall)
		}
	}
	check(`{"dedupe": {"catalog": "market", "threshold": 0.85}}`, false)
	check(`{"dedupe": {"catalog": "market", "threshold": 0.85, "block_on": ["region"]}}`, true)
}

// gate lets a processor's first Match through and holds the second until
// released, so a test can kill the processor in the middle of a chunk.
type gate struct {
	jobs.Catalogs
	calls   atomic.Int64
	held    chan struct{} // closed when the second call is held
	release chan struct{}
	once    sync.Once
}

func (g *gate) Match(ctx context.Context, spec catalog.MatchSpec) ([]contracts.MatchResult, error) {
	if g.calls.Add(1) == 2 {
		g.once.Do(func() { close(g.held) })
		<-g.release
	}
	return g.Catalogs.Match(ctx, spec)
}

// A processor killed in the middle of a match job (its connections closed
// without a drain while it holds a chunk) loses nothing: the chunk goes to
// another processor, and every source product has exactly one line.
func TestMatchJobSurvivesKilledProcessor(t *testing.T) {
	ns := startJobsNATS(t)
	jc := jobs.Config{AckWait: 1500 * time.Millisecond, MatchChunkSize: 5}
	vnc, vjobs := testenv.Connect(t, ns), testenv.Connect(t, ns)
	g := &gate{held: make(chan struct{}), release: make(chan struct{})}
	jc.NATS = vjobs
	victim := startCatalogProcessor(t, ns, vnc, jc, func(c jobs.Catalogs) jobs.Catalogs { g.Catalogs = c; return g })
	t.Cleanup(func() { close(g.release) }) // before the victim's stop: cleanups run last first
	b := proctest.StartBridge(t, ns, nil)
	shop, feed := shopCatalog(), feedCatalog()
	upsert(t, ns, "shop", shop)
	upsert(t, ns, "feed", feed)

	st, _ := submitBody(t, b.URL, `{"match": {"source": "feed", "target": "shop", "top_k": 2}}`, http.StatusAccepted)
	select {
	case <-g.held:
	case <-time.After(time.Minute):
		t.Fatal("the victim never took a second chunk")
	}
	// Another processor joins and takes the other chunks meanwhile.
	jc.NATS = nil
	survivor := startCatalogProcessor(t, ns, nil, jc, nil)
	testenv.WaitFor(t, time.Minute, "the survivor works", func() bool { return survivor.Stats().Chunks >= 1 })
	vjobs.Close()
	vnc.Close()
	if v := victim.Stats(); v.Chunks != 1 || v.Busy != 1 {
		t.Errorf("victim stats %+v: want one chunk done and one in hand", v)
	}

	done := waitJob(t, b.URL, st.ID, contracts.JobDone, 3*time.Minute)
	if done.Chunks != 12 {
		t.Errorf("%d chunks, want 12", done.Chunks)
	}
	rows := checkRows(t, lines[contracts.MatchResult](t, b.URL, st.ID), feed)
	for id, r := range rows {
		if len(r.Matches) != 2 {
			t.Errorf("%s: %d matches, want 2", id, len(r.Matches))
		}
	}
	if s := survivor.Stats(); s.Redelivered < 1 {
		t.Errorf("survivor stats %+v: want the victim's chunk redelivered", s)
	}
	if n := jetStreamInfo(t, ns, contracts.SubjectJobResultPrefix+st.ID+".*"); n != done.Chunks {
		t.Errorf("%d stored result messages for %d chunks", n, done.Chunks)
	}
}

// A match between catalogs of two model versions is refused with 409, the
// message naming both; unknown catalogs are 404; a bad field is 422.
func TestMatchJobRefused(t *testing.T) {
	ns := startJobsNATS(t)
	startCatalogProcessor(t, ns, nil, jobs.Config{}, nil)
	b := proctest.StartBridge(t, ns, nil)
	upsert(t, ns, "shop", shopCatalog()[:5])
	// A catalog embedded with another version of the model, as the
	// catalogs' own stream layout records it.
	js, err := jetstream.New(connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SIMMATCH_CATALOG_older", Subjects: []string{"simmatch.catalogdata.older.>"},
		MaxMsgsPerSubject: 1, Metadata: map[string]string{"simmatch.catalog": "older", "simmatch.model.name": "all-MiniLM-L6-v2",
			"simmatch.model.version": "0.9", "simmatch.model.dimensions": "384"}}); err != nil {
		t.Fatal(err)
	}
	_, data := submitBody(t, b.URL, `{"match": {"source": "shop", "target": "older"}}`, http.StatusConflict)
	if !bytes.Contains(data, []byte("all-MiniLM-L6-v2@1")) || !bytes.Contains(data, []byte("all-MiniLM-L6-v2@0.9")) {
		t.Errorf("409 without both versions: %s", data)
	}
	_, data = submitBody(t, b.URL, `{"match": {"source": "shop", "target": "nope"}}`, http.StatusNotFound)
	if !bytes.Contains(data, []byte(`"field":"match.target"`)) {
		t.Errorf("404: %s", data)
	}
	for body, field := range map[string]string{
		`{"match": {"source": "shop"}}`:                                                                    "match.target",
		`{"match": {"source": "shop", "target": "shop", "top_k": 0}}`:                                      "match.top_k",
		`{"match": {"source": "shop", "target": "shop", "mode": "fuzzy"}}`:                                 "match.mode",
		`{"match": {"source": "shop", "target": "shop", "block_on": [""]}}`:                                "match.block_on[0]",
		`{"dedupe": {"catalog": "shop"}}`:                                                                  "dedupe.threshold",
		`{"dedupe": {"catalog": "shop", "threshold": 2}}`:                                                  "dedupe.threshold",
		`{"match": {"source": "shop", "target": "shop"}, "dedupe": {"catalog": "shop", "threshold": 0.9}}`: "dedupe",
		`{"match": {"source": "shop", "target": "shop"}, "query": ["x"]}`:                                  "query",
		`{"query": ["x"], "catalog": "shop", "product_descriptions": ["y"]}`:                               "product_descriptions",
	} {
		_, data := submitBody(t, b.URL, body, http.StatusUnprocessableEntity)
		if !bytes.Contains(data, []byte(`"field":"`+field+`"`)) {
			t.Errorf("%s: %s, want field %s", body, data, field)
		}
	}
}

// A query job names a catalog: its queries are ranked against the stored
// products as /predict with that catalog ranks them.
func TestQueryJobOnCatalog(t *testing.T) {
	ns := startJobsNATS(t)
	startCatalogProcessor(t, ns, nil, jobs.Config{}, nil)
	b := proctest.StartBridge(t, ns, func(c *bridge.Config) { c.JobChunkSize = 7 })
	upsert(t, ns, "shop", shopCatalog())
	queries := jobQueries(30)
	q, _ := json.Marshal(queries)
	st, _ := submitBody(t, b.URL, `{"query": `+string(q)+`, "catalog": "shop", "top_k": 3}`, http.StatusAccepted)
	if st.Chunks != 5 || st.Total != 30 {
		t.Errorf("submitted %+v", st)
	}
	waitJob(t, b.URL, st.ID, contracts.JobDone, 2*time.Minute)
	res := jobResults(t, b.URL, st.ID, queries)
	// The same as /predict naming the catalog.
	for _, i := range []int{0, 13, 29} {
		resp, data := proctest.Post(t, b.URL+"/predict", `{"query": [`+string(mustJSON(queries[i]))+`], "catalog": "shop", "top_k": 3}`)
		if resp.StatusCode != 200 {
			t.Fatalf("predict: %d %s", resp.StatusCode, data)
		}
		var pr contracts.Response
		if err := json.Unmarshal(data, &pr); err != nil {
			t.Fatal(err)
		}
		got, want := res[i].Matches, pr.Results[0].Matches
		if len(got) != 3 || len(want) != 3 {
			t.Fatalf("query %d: %d and %d matches", i, len(got), len(want))
		}
		for k := range got {
			if got[k].ID != want[k].ID || got[k].ID == "" || abs(got[k].Score-want[k].Score) > 1e-6 {
				t.Errorf("query %d match %d: job %+v, predict %+v", i, k, got[k], want[k])
			}
		}
	}
	submitBody(t, b.URL, `{"query": ["x"], "catalog": "nope"}`, http.StatusNotFound)
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// Match modes end to end: model numbers one character apart, which a
// sentence embedding blurs. keyword finds every planted product first
// (its code is the one rare token); hybrid (reciprocal rank fusion) keeps
// every dense hit and scores on the fusion's scale; dense is logged for
// comparison.
func TestMatchJobModes(t *testing.T) {
	ns := startJobsNATS(t)
	startCatalogProcessor(t, ns, nil, jobs.Config{MatchChunkSize: 4}, nil)
	b := proctest.StartBridge(t, ns, nil)
	codes := []string{"DCD771C2", "DCD777C2", "DCD778C2", "DCD791D2", "DCD796D2", "DCD706F2", "GSR12V15", "GSR18V55"}
	var shop, feed []contracts.Product
	for i, c := range codes {
		shop = append(shop, contracts.Product{ID: fmt.Sprintf("s%d", i), Description: "Cordless drill driver " + c + ", 18V, two batteries and a charger"})
		feed = append(feed, contracts.Product{ID: fmt.Sprintf("f%d", i), Description: c + " 18 volt drill/driver kit with 2 batteries"})
	}
	upsert(t, ns, "codes-shop", shop)
	upsert(t, ns, "codes-feed", feed)
	first := map[string]map[string]bool{} // mode -> feed ids whose planted product came first
	for _, mode := range []string{contracts.ModeDense, contracts.ModeKeyword, contracts.ModeHybrid} {
		st, _ := submitBody(t, b.URL, `{"match": {"source": "codes-feed", "target": "codes-shop", "top_k": 3, "mode": "`+mode+`"}}`, http.StatusAccepted)
		waitJob(t, b.URL, st.ID, contracts.JobDone, 2*time.Minute)
		first[mode] = map[string]bool{}
		for id, r := range checkRows(t, lines[contracts.MatchResult](t, b.URL, st.ID), feed) {
			if len(r.Matches) == 0 {
				t.Errorf("%s: %s has no match", mode, id)
				continue
			}
			first[mode][id] = r.Matches[0].ID == "s"+strings.TrimPrefix(id, "f")
			if mode == contracts.ModeHybrid && r.Matches[0].Score > 2.0/(contracts.DefaultRRFK+1)+1e-9 {
				t.Errorf("hybrid: %s scored %v, above the fusion's best 2/(rrf_k+1)", id, r.Matches[0].Score)
			}
		}
		n := 0
		for _, ok := range first[mode] {
			if ok {
				n++
			}
		}
		t.Logf("%s: planted product first for %d of %d feed items", mode, n, len(feed))
	}
	for id := range first[contracts.ModeDense] {
		if !first[contracts.ModeKeyword][id] {
			t.Errorf("keyword: %s's planted product (same model number) is not first", id)
		}
		// The planted product is first in keyword; first in dense too, it
		// has the best fused score there can be.
		if first[contracts.ModeDense][id] && !first[contracts.ModeHybrid][id] {
			t.Errorf("hybrid: %s lost the planted product that dense and keyword both put first", id)
		}
	}
}
