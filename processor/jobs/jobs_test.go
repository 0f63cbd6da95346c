package jobs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/embedding"
	"github.com/simmatch/simmatch/processor/jobs"
)

var jobProducts = []string{hammer, saw, "Cordless drill with two batteries.", "Garden hose, 25 m, with spray nozzle.", "Wood chisel set, four sizes."}

// jobQueries are n distinct queries, so every result line can be traced back.
func jobQueries(n int) []string {
	base := []string{"cut wood", "drive nails", "drill holes", "water the garden", "carve a joint"}
	q := make([]string, n)
	for i := range q {
		q[i] = fmt.Sprintf("%s #%d", base[i%len(base)], i)
	}
	return q
}

func startJobsNATS(t *testing.T) *server.Server {
	t.Helper()
	return testenv.StartNATS(t, testenv.WithJetStream(t, ""))
}

func submitJob(t *testing.T, url string, queries []string, extra string) contracts.JobStatus {
	t.Helper()
	q, _ := json.Marshal(queries)
	d, _ := json.Marshal(jobProducts)
	resp, data := proctest.Post(t, url+"/v1/jobs", `{"query": `+string(q)+`, "product_descriptions": `+string(d)+extra+`}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, data)
	}
	var st contracts.JobStatus
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Location") != "/v1/jobs/"+st.ID || st.State != contracts.JobQueued || st.Total != len(queries) {
		t.Fatalf("submit: Location %q, %+v", resp.Header.Get("Location"), st)
	}
	return st
}

func jobStatus(t *testing.T, url, id string) (int, contracts.JobStatus) {
	t.Helper()
	resp, data := proctest.Get(t, url+"/v1/jobs/"+id)
	var st contracts.JobStatus
	_ = json.Unmarshal(data, &st)
	return resp.StatusCode, st
}

func waitJob(t *testing.T, url, id string, state contracts.JobState, timeout time.Duration) contracts.JobStatus {
	t.Helper()
	var st contracts.JobStatus
	testenv.WaitFor(t, timeout, "job "+id+" "+string(state), func() bool {
		_, st = jobStatus(t, url, id)
		return st.State == state
	})
	return st
}

// jobResults reads the results and checks there is exactly one line per
// query, in request order.
func jobResults(t *testing.T, url, id string, queries []string) []contracts.JobResult {
	t.Helper()
	resp, data := proctest.Get(t, url+"/v1/jobs/"+id+"/results")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("results: %d %q %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), data)
	}
	var out []contracts.JobResult
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r contracts.JobResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v", len(out), err)
		}
		out = append(out, r)
	}
	if len(out) != len(queries) {
		t.Fatalf("%d result lines for %d queries", len(out), len(queries))
	}
	for i, r := range out {
		if r.Query != queries[i] {
			t.Fatalf("line %d is for %q, want %q (each query once, in request order)", i, r.Query, queries[i])
		}
	}
	return out
}

// A job is accepted, runs, reports progress, notifies its completion and
// streams results equal to /predict's, one line per query in order.
func TestJobLifecycle(t *testing.T) {
	ns := startJobsNATS(t)
	startProcessor(t, ns, nil, jobs.Config{})
	b := proctest.StartBridge(t, ns, func(c *bridge.Config) { c.JobChunkSize = 40 })
	nc := connect(t, ns)
	notices, err := nc.SubscribeSync(contracts.SubjectJobDonePrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	queries := jobQueries(230)
	st := submitJob(t, b.URL, queries, `, "top_k": 3, "notify": true`)
	if st.Chunks != 6 {
		t.Errorf("chunks %d, want 6", st.Chunks)
	}
	done := waitJob(t, b.URL, st.ID, contracts.JobDone, 2*time.Minute)
	if done.Done != 230 || done.Total != 230 || done.Expires.Before(done.Created) {
		t.Errorf("done status %+v", done)
	}
	msg, err := notices.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no completion notice: %v", err)
	}
	var notice contracts.JobStatus
	if err := json.Unmarshal(msg.Data, &notice); err != nil || notice.ID != st.ID || notice.State != contracts.JobDone {
		t.Errorf("notice %s on %s", msg.Data, msg.Subject)
	}

	res := jobResults(t, b.URL, st.ID, queries)
	for _, i := range []int{0, 117, 229} {
		body, _ := json.Marshal(contracts.Request{Query: contracts.Queries{queries[i]}, ProductDescriptions: jobProducts, TopK: ptr(3)})
		resp, data := proctest.Post(t, b.URL+"/predict", string(body))
		var pr contracts.Response
		if err := json.Unmarshal(data, &pr); err != nil || resp.StatusCode != 200 {
			t.Fatalf("/predict: %d %s", resp.StatusCode, data)
		}
		got, want := res[i].Matches, pr.Results[0].Matches
		if len(got) != 3 || len(want) != 3 {
			t.Fatalf("query %d: %d matches, /predict %d", i, len(got), len(want))
		}
		for k := range got {
			if got[k].Index != want[k].Index || got[k].Description != want[k].Description || abs(got[k].Score-want[k].Score) > 1e-6 {
				t.Errorf("query %d match %d: job %+v, /predict %+v", i, k, got[k], want[k])
			}
		}
	}

	for _, tt := range []struct {
		name, path string
		status     int
		code       contracts.Code
	}{
		{"unknown job", "/v1/jobs/0123456789abcdef", 404, contracts.CodeNotFound},
		{"malformed id", "/v1/jobs/nope", 404, contracts.CodeNotFound},
		{"unknown results", "/v1/jobs/0123456789abcdef/results", 404, contracts.CodeNotFound},
	} {
		resp, data := proctest.Get(t, b.URL+tt.path)
		var e contracts.ErrorBody
		if json.Unmarshal(data, &e) != nil || e.Error == nil || resp.StatusCode != tt.status || e.Error.Code != tt.code {
			t.Errorf("%s: %d %s", tt.name, resp.StatusCode, data)
		}
	}
	resp, data := proctest.Post(t, b.URL+"/v1/jobs", `{"query": ["a", " "], "product_descriptions": ["x"]}`)
	if resp.StatusCode != 422 || !bytes.Contains(data, []byte(`"field":"query[1]"`)) {
		t.Errorf("blank query: %d %s", resp.StatusCode, data)
	}
}

// A processor killed mid-job loses nothing: its chunk goes to the other
// processor, and every query's result is there exactly once.
func TestJobSurvivesKilledProcessor(t *testing.T) {
	ns := startJobsNATS(t)
	jc := jobs.Config{AckWait: 1500 * time.Millisecond}
	survivor := startProcessor(t, ns, nil, jc)
	// The victim's connections are closed without a drain: a crash, as far
	// as NATS and JetStream can tell.
	vnc, vjobs := testenv.Connect(t, ns), testenv.Connect(t, ns)
	victimProc, err := processor.Start(processor.Config{NATS: vnc, Embedder: realModel(t)})
	if err != nil {
		t.Fatal(err)
	}
	// Once gated, the victim's model holds every call until the call ends:
	// the chunk it works on when it dies is surely unfinished.
	held := &holdingEmbedder{Embedder: realModel(t), release: make(chan struct{})}
	jc.NATS, jc.Embedder = vjobs, held
	victim, err := jobs.Start(jc)
	if err != nil {
		t.Fatal(err)
	}
	b := proctest.StartBridge(t, ns, func(c *bridge.Config) { c.JobChunkSize = 10 })

	queries := jobQueries(400)
	st := submitJob(t, b.URL, queries, `, "top_k": 2`)
	testenv.WaitFor(t, time.Minute, "the victim finishes a chunk", func() bool { return victim.Stats().Chunks >= 1 })
	held.gated.Store(true)
	testenv.WaitFor(t, time.Minute, "the victim holds a chunk it cannot finish", func() bool { return held.holding.Load() >= 1 })
	vjobs.Close()
	vnc.Close()
	t.Cleanup(func() {
		close(held.release)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = victim.Stop(ctx) // its connections are gone: only its goroutines end
		_ = victimProc.Stop(ctx)
	})

	waitJob(t, b.URL, st.ID, contracts.JobDone, 3*time.Minute)
	jobResults(t, b.URL, st.ID, queries)
	if s := survivor.Stats(); s.Redelivered < 1 {
		t.Errorf("survivor stats %+v: want at least one redelivered chunk", s)
	}
	// One result message per chunk, whatever was redelivered.
	js := jetStreamInfo(t, ns, contracts.SubjectJobResultPrefix+st.ID+".*")
	if js != st.Chunks {
		t.Errorf("%d stored result messages for %d chunks", js, st.Chunks)
	}
}

func jetStreamInfo(t *testing.T, ns *server.Server, filter string) int {
	t.Helper()
	nc := connect(t, ns)
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	info, err := js.StreamInfo(contracts.JobResultsStream, &nats.StreamInfoRequest{SubjectsFilter: filter})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// A cancelled job stops: its state stays cancelled, no more chunks finish,
// and its results are refused.
func TestJobCancel(t *testing.T) {
	ns := startJobsNATS(t)
	p := startProcessor(t, ns, nil, jobs.Config{})
	b := proctest.StartBridge(t, ns, func(c *bridge.Config) { c.JobChunkSize = 10 })
	queries := jobQueries(2000)
	st := submitJob(t, b.URL, queries, `, "top_k": 1`)
	waitJob(t, b.URL, st.ID, contracts.JobRunning, time.Minute)

	req, _ := http.NewRequest(http.MethodDelete, b.URL+"/v1/jobs/"+st.ID, nil)
	resp, data := proctest.Do(t, req)
	var cst contracts.JobStatus
	if err := json.Unmarshal(data, &cst); err != nil || resp.StatusCode != 200 || cst.State != contracts.JobCancelled {
		t.Fatalf("cancel: %d %s", resp.StatusCode, data)
	}
	testenv.WaitFor(t, 30*time.Second, "the processor lets go of the job", func() bool { return p.Stats().Busy == 0 })
	_, before := jobStatus(t, b.URL, st.ID)
	chunks := p.Stats().Chunks
	// A queued chunk would be picked up within a fetch: give it a few.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if p.Stats().Chunks != chunks {
			t.Fatalf("chunks still finish after the cancel: %d -> %d", chunks, p.Stats().Chunks)
		}
	}
	_, after := jobStatus(t, b.URL, st.ID)
	if after.State != contracts.JobCancelled || after.Done != before.Done || after.Done >= after.Total {
		t.Errorf("after cancel: %+v (before %+v)", after, before)
	}
	resp2, data := proctest.Get(t, b.URL+"/v1/jobs/"+st.ID+"/results")
	if resp2.StatusCode != http.StatusConflict || !bytes.Contains(data, []byte(contracts.CodeJobNotDone)) {
		t.Errorf("results of a cancelled job: %d %s", resp2.StatusCode, data)
	}
}

// Jobs and their results are deleted when the retention ends.
func TestJobRetention(t *testing.T) {
	ns := startJobsNATS(t)
	startProcessor(t, ns, nil, jobs.Config{Retention: 3 * time.Second})
	b := proctest.StartBridge(t, ns, nil)
	queries := jobQueries(5)
	st := submitJob(t, b.URL, queries, "")
	if !st.Expires.After(st.Created) || st.Expires.Sub(st.Created) > 4*time.Second {
		t.Errorf("expires %v for created %v and a 3s retention", st.Expires, st.Created)
	}
	waitJob(t, b.URL, st.ID, contracts.JobDone, time.Minute)
	jobResults(t, b.URL, st.ID, queries)
	testenv.WaitFor(t, 30*time.Second, "the job and its results expire", func() bool {
		code, _ := jobStatus(t, b.URL, st.ID)
		return code == http.StatusNotFound && jetStreamInfo(t, ns, contracts.SubjectJobResultPrefix+st.ID+".*") == 0
	})
}

func ptr[T any](v T) *T { return &v }

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// holdingEmbedder embeds with Embedder until gated, then holds each call
// until its context ends or release is closed (a processor that dies
// mid-chunk).
type holdingEmbedder struct {
	processor.Embedder
	gated   atomic.Bool
	holding atomic.Int32
	release chan struct{}
}

// Embed embeds, or holds the call once gated.
func (h *holdingEmbedder) Embed(ctx context.Context, texts []string) (embedding.Result, error) {
	if h.gated.Load() {
		h.holding.Add(1)
		select {
		case <-ctx.Done():
		case <-h.release:
		}
		return embedding.Result{}, errors.New("the processor died")
	}
	return h.Embedder.Embed(ctx, texts)
}
