package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor/jobs"
	"github.com/simmatch/simmatch/processor/jobs/jobstore"
)

// postNDJSON posts body as JSON lines to the bridge's /v1/jobs.
func postNDJSON(t testing.TB, url string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/jobs", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	return proctest.Do(t, req)
}

// ndjsonOptions is the options line of a job on jobProducts.
func ndjsonOptions(extra string) string {
	d, _ := json.Marshal(jobProducts)
	return `{"product_descriptions": ` + string(d) + extra + "}\n"
}

// setupJobs makes the jobs' streams and bucket, as a processor would, and
// returns the JetStream context.
func setupJobs(t testing.TB, ns *server.Server) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobstore.Setup(context.Background(), js, jobstore.SetupConfig{}); err != nil {
		t.Fatal(err)
	}
	return js
}

// A 10,000-query job sent as JSON lines runs to the end: every query's
// results, in order, and a completion notice.
func TestNDJSONJob(t *testing.T) {
	ns := startJobsNATS(t)
	startProcessor(t, ns, nil, jobs.Config{})
	b := proctest.StartBridge(t, ns, nil)
	notices, err := connect(t, ns).SubscribeSync(contracts.SubjectJobDonePrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	queries := jobQueries(10_000)
	var body strings.Builder
	body.WriteString(ndjsonOptions(`, "top_k": 2, "notify": true`))
	for i, q := range queries {
		line, _ := json.Marshal(q)
		if i%2 == 1 {
			line, _ = json.Marshal(map[string]string{"query": q})
		}
		body.Write(line)
		body.WriteString("\n")
		if i == 7 {
			body.WriteString("\n") // blank lines are skipped
		}
	}
	resp, data := postNDJSON(t, b.URL, strings.NewReader(strings.TrimSuffix(body.String(), "\n"))) // no final newline
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, data)
	}
	var st contracts.JobStatus
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Location") != "/v1/jobs/"+st.ID || st.Total != 10_000 || st.Chunks != 79 || st.State == contracts.JobSubmitting {
		t.Fatalf("submit: Location %q, %+v", resp.Header.Get("Location"), st)
	}
	done := waitJob(t, b.URL, st.ID, contracts.JobDone, 10*time.Minute)
	if done.Done != 10_000 || done.Total != 10_000 {
		t.Errorf("done status %+v", done)
	}
	res := jobResults(t, b.URL, st.ID, queries)
	for _, i := range []int{0, 8, 9_999} {
		if len(res[i].Matches) != 2 || res[i].Matches[0].Description == "" {
			t.Errorf("query %d: matches %+v", i, res[i].Matches)
		}
	}
	msg, err := notices.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("no completion notice: %v", err)
	}
	var notice contracts.JobStatus
	if err := json.Unmarshal(msg.Data, &notice); err != nil || notice.ID != st.ID || notice.State != contracts.JobDone || notice.Total != 10_000 {
		t.Errorf("notice %s", msg.Data)
	}
}

// A bad line answers 422 naming its line, and leaves no job behind: neither
// when it comes before the first chunk nor after chunks were queued. The
// limits answer 413.
func TestNDJSONRefused(t *testing.T) {
	ns := startJobsNATS(t)
	js := setupJobs(t, ns)
	lim := contracts.DefaultJobLimits
	lim.MaxQueries, lim.MaxNDJSONBytes = 500, 64<<10
	b := proctest.StartBridge(t, ns, func(c *bridge.Config) { c.JobChunkSize = 40; c.JobLimits = lim })
	lines := func(n int, bad int, badLine string) string {
		var s strings.Builder
		s.WriteString(ndjsonOptions(""))
		for i := 2; i <= n; i++ {
			if i == bad {
				s.WriteString(badLine + "\n")
				continue
			}
			fmt.Fprintf(&s, "%q\n", "query "+strconv.Itoa(i))
		}
		return s.String()
	}
	for _, tt := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"blank query on line 5", lines(10, 5, `"  "`), 422, `"field":"line 5"`},
		{"not JSON on line 5", lines(10, 5, `{"query": "x"`), 400, `line 5`},
		{"unknown field on line 5", lines(10, 5, `{"text": "x"}`), 422, `line 5`},
		{"a number on line 5", lines(10, 5, `42`), 422, `line 5`},
		{"bad line after queued chunks", lines(300, 250, `""`), 422, `"field":"line 250"`},
		{"bad options", `{"top_k": 0, "product_descriptions": ["x"]}` + "\n\"q\"\n", 422, `line 1`},
		{"queries in the options", `{"query": ["a"], "product_descriptions": ["x"]}` + "\n\"q\"\n", 422, `line 1`},
		{"match job", `{"match": {"source": "a", "target": "b"}}` + "\n", 422, `line 1`},
		{"no query", ndjsonOptions(""), 422, `"field":"query"`},
		{"empty body", "", 400, `empty`},
		{"too many queries", lines(600, 0, ""), 413, `"limit":500`},
		{"body over the limit", lines(8000, 0, ""), 413, `"limit":65536`},
		{"query line over the limit", lines(10, 3, `"`+strings.Repeat("x", 6*8192+2000)+`"`), 400, `line 3`},
	} {
		resp, data := postNDJSON(t, b.URL, strings.NewReader(tt.body))
		if resp.StatusCode != tt.status || !strings.Contains(string(data), tt.want) {
			t.Errorf("%s: %d %s; want %d with %s", tt.name, resp.StatusCode, data, tt.status, tt.want)
		}
		testenv.NoJobsLeft(t, js)
	}
	// The body of unknown length over the limit is refused as it streams.
	resp, data := postNDJSON(t, b.URL, io.MultiReader(strings.NewReader(lines(8000, 0, ""))))
	if resp.StatusCode != 413 {
		t.Errorf("chunked body over the limit: %d %s", resp.StatusCode, data)
	}
	testenv.NoJobsLeft(t, js)
}

// genNDJSON is an NDJSON job body of about size bytes made as it is read:
// an options line, then queries of about 1 KB.
type genNDJSON struct {
	size, sent int64
	i          int
	buf        []byte
}

func (g *genNDJSON) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		if g.sent >= g.size {
			return 0, io.EOF
		}
		if g.i == 0 {
			g.buf = []byte(ndjsonOptions(`, "top_k": 1`))
		} else {
			g.buf = fmt.Appendf(g.buf, "%q\n", fmt.Sprintf("query %d %s", g.i, strings.Repeat("lorem ipsum ", 83)))
		}
		g.i++
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	g.sent += int64(n)
	return n, nil
}

// memPeak samples the process's heap in use and resident set every 20ms
// until stop is called, which returns the peaks in bytes.
func memPeak() (stop func() (heap, rss uint64)) {
	var heap, rss atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > heap.Load() {
			heap.Store(ms.HeapInuse)
		}
		if r := residentBytes(); r > rss.Load() {
			rss.Store(r)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return func() (uint64, uint64) {
		close(done)
		wg.Wait()
		sample()
		return heap.Load(), rss.Load()
	}
}

// residentBytes is the process's resident set (Linux), 0 when unknown.
func residentBytes() uint64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// streamBig submits a generated job of size bytes to an in-process bridge
// (the NATS server in-process too) and returns the peaks of heap in use
// and resident set while it streamed, and the job's status.
func streamBig(t testing.TB, size int64) (heap, rss uint64, st contracts.JobStatus) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	setupJobs(t, ns)
	lim := contracts.DefaultJobLimits
	lim.MaxQueries, lim.MaxNDJSONBytes = 0, int(size)+1<<20
	b := proctest.StartBridge(t, ns, func(c *bridge.Config) { c.JobLimits = lim })
	runtime.GC()
	stop := memPeak()
	resp, data := postNDJSON(t, b.URL, &genNDJSON{size: size})
	heap, rss = stop()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %.300s", resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	return heap, rss, st
}

// Streaming a 200 MB job keeps the heap flat: the queries are never held
// whole (the process holds the bridge and the NATS server both).
func TestNDJSONMemoryFlat(t *testing.T) {
	const size = 200 << 20
	start := time.Now()
	heap, rss, st := streamBig(t, size)
	t.Logf("%d MB job, %d queries in %d chunks, %v: peak heap in use %d MB, peak RSS %d MB",
		size>>20, st.Total, st.Chunks, time.Since(start).Round(time.Millisecond), heap>>20, rss>>20)
	if st.Total < 190_000 || st.State == contracts.JobSubmitting {
		t.Errorf("status %+v", st)
	}
	if heap > 100<<20 {
		t.Errorf("peak heap in use %d MB while streaming a %d MB job; want under 100 MB", heap>>20, size>>20)
	}
}

// BenchmarkNDJSON2GB streams a 2 GiB job once and reports the peaks; the
// issue's bar is an RSS under 200 MB. Not part of make test; run it with
//
//	go test -run '^$' -bench NDJSON2GB -benchtime 1x ./processor/jobs/
//
// Measured (2 shared cores, no -race): 2,121,022 queries in 35 s, peak heap
// 46 MB, peak RSS 81 MB, the bridge and the NATS server in one process.
func BenchmarkNDJSON2GB(b *testing.B) {
	for range b.N {
		heap, rss, st := streamBig(b, 2<<30)
		b.ReportMetric(float64(heap>>20), "heap-MB")
		b.ReportMetric(float64(rss>>20), "rss-MB")
		b.ReportMetric(float64(st.Total), "queries")
		if rss > 200<<20 {
			b.Errorf("peak RSS %d MB; want under 200 MB", rss>>20)
		}
	}
}
