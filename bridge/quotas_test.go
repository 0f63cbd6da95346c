package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor/jobs/jobstore"
)

func TestParseQuotas(t *testing.T) {
	q, err := ParseQuotas([]byte(`# tenant quotas
*      catalogs=10 products=100000 bytes=512MiB jobs=4 upload=64MiB

  acme products=5 jobs=1 rate=2.5 burst=10
eu.acme bytes=2GB upload=1024
free
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		tenant string
		want   Quota
	}{
		{"acme", Quota{Catalogs: Unlimited, Products: 5, Bytes: Unlimited, Jobs: 1, Upload: Unlimited, Rate: RateLimit{Rate: 2.5, Burst: 10}}},
		{"eu.acme", Quota{Catalogs: Unlimited, Products: Unlimited, Bytes: 2e9, Jobs: Unlimited, Upload: 1024}},
		{"free", NoQuota},
		{"globex", Quota{Catalogs: 10, Products: 100000, Bytes: 512 << 20, Jobs: 4, Upload: 64 << 20}},
	} {
		if got := q.For(tt.tenant); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.tenant, got, tt.want)
		}
	}
	if got := (*Quotas)(nil).For("acme"); got != NoQuota {
		t.Errorf("no quotas: %+v", got)
	}
	if q, err := ParseQuotas([]byte("acme jobs=0\n")); err != nil || q.For("globex") != NoQuota || q.For("acme").Jobs != 0 {
		t.Errorf("without *: %+v %v", q, err)
	}

	for _, tt := range []struct{ name, file, want string }{
		{"bad tenant", "ac/me jobs=1", "line 1: tenant: want * or 1 to 64"},
		{"field without tenant", "# c\ncatalogs=3", "line 2: tenant:"},
		{"duplicate tenant", "acme jobs=1\n\nacme jobs=2", `line 3: tenant "acme" is already on line 1`},
		{"duplicate *", "* jobs=1\n* jobs=2", `line 2: tenant "*" is already on line 1`},
		{"unknown field", "acme jobs=1 queries=4", "line 1: field 3: want catalogs=<n>"},
		{"no value", "acme jobs", "line 1: jobs: want jobs=<value>"},
		{"negative", "acme catalogs=-1", `line 1: catalogs: want an integer >= 0, got "-1"`},
		{"not a number", "acme products=lots", `line 1: products: want an integer >= 0, got "lots"`},
		{"size unit", "acme bytes=5XB", `line 1: bytes: want a size in bytes`},
		{"size overflow", "acme upload=99999999999TiB", `line 1: upload: want a size`},
		{"given twice", "acme jobs=1 jobs=2", "line 1: jobs: given twice"},
		{"negative rate", "acme rate=-1", `line 1: rate: want requests per second >= 0, got "-1"`},
		{"rate not a number", "acme rate=fast", `line 1: rate: want requests per second`},
		{"fractional burst", "acme rate=1 burst=1.5", `line 1: burst: want an integer >= 0, got "1.5"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseQuotas([]byte(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1024": 1024, "12B": 12, "3KiB": 3 << 10, "512MiB": 512 << 20,
		"2GiB": 2 << 30, "1TiB": 1 << 40, "5KB": 5000, "7MB": 7e6, "2GB": 2e9, "1TB": 1e12} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5GiB", "1 GiB", "1gib", "x"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 99990: "99,990", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := thousands(n); got != want {
			t.Errorf("%d: %q", n, got)
		}
	}
}

// Job quota test keys: tenants acme and globex, and an admin.
const (
	keyAcmeJobs   = "sk-acme-jobs-3c4d5e6f7a8b9c0d"
	keyGlobexJobs = "sk-globex-jobs-7a6b5c4d3e2f1a0b"
	keyRootJobs   = "sk-root-jobs-1f2e3d4c5b6a7988"
)

// quotaJobsBridge runs a bridge with keys of acme, globex and an admin,
// with quotas, over JetStream with the jobs' streams set up as a
// processor would (setup), but no processor: jobs stay queued.
func quotaJobsBridge(t *testing.T, quotas string, setup jobstore.SetupConfig, mod func(*Config)) (*testBridge, jetstream.JetStream) {
	t.Helper()
	ns := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	js, err := jetstream.New(connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobstore.Setup(context.Background(), js, setup); err != nil {
		t.Fatal(err)
	}
	keys := fmt.Sprintf("acme %s jobs\nglobex %s jobs\nroot %s *\n", HashKey(keyAcmeJobs), HashKey(keyGlobexJobs), HashKey(keyRootJobs))
	q, err := ParseQuotas([]byte(quotas))
	if err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, ns, func(c *Config) {
		c.Keys, c.Quotas = openKeys(t, keys, &logRecorder{}), q
		if mod != nil {
			mod(c)
		}
	})
	return b, js
}

// send sends body to the bridge with key and content type ct.
func (b *testBridge) send(t testing.TB, method, path, key, ct string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", key)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	return do(t, req)
}

// jobBody is a JSON query job of size bytes (at least 100), its queries
// of at most 1000 characters.
func jobBody(size int) string {
	pre, post := `{"product_descriptions": ["Claw hammer", "Circular saw"], "query": [`, `]}`
	var s strings.Builder
	s.WriteString(pre)
	left := size - len(pre) - len(post)
	for ; left > 1100; left -= 1003 {
		s.WriteString(`"` + strings.Repeat("q", 1000) + `",`)
	}
	s.WriteString(`"` + strings.Repeat("q", left-2) + `"`)
	s.WriteString(post)
	return s.String()
}

// submit posts a JSON job and returns its status code, decoded job and error.
func (b *testBridge) submit(t testing.TB, key, body string) (*http.Response, contracts.JobStatus, *contracts.Error) {
	t.Helper()
	resp, data := b.send(t, "POST", "/v1/jobs", key, "application/json", strings.NewReader(body))
	var st contracts.JobStatus
	if resp.StatusCode == http.StatusAccepted {
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		return resp, st, nil
	}
	return resp, st, decodeError(t, resp, data)
}

// wantQuota fails unless e refused quota with status.
func wantQuota(t testing.TB, resp *http.Response, e *contracts.Error, status int, quota string) {
	t.Helper()
	if resp.StatusCode != status || e == nil || e.Code != contracts.CodeQuotaExceeded || e.Field != quota {
		t.Fatalf("status %d, error %+v; want %d quota_exceeded on %s", resp.StatusCode, e, status, quota)
	}
}

// The jobs quota counts a tenant's jobs submitting, queued or running: the
// one past it answers 429 with Retry-After; a cancelled job frees its
// place; another tenant and an admin are not bound by it.
func TestJobsQuota(t *testing.T) {
	b, _ := quotaJobsBridge(t, "* jobs=5\nacme jobs=2\n", jobstore.SetupConfig{}, nil)
	var acme []string
	for range 2 {
		resp, st, e := b.submit(t, keyAcmeJobs, jobBody(200))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("acme's job within its quota: %d %+v", resp.StatusCode, e)
		}
		acme = append(acme, st.ID)
	}
	resp, _, e := b.submit(t, keyAcmeJobs, jobBody(200))
	wantQuota(t, resp, e, http.StatusTooManyRequests, "jobs")
	if resp.Header.Get("Retry-After") != "5" || e.Limit != 2 ||
		!strings.Contains(e.Message, "tenant acme: quota jobs=2 would be exceeded (2 submitting, queued or running + 1 in this request)") {
		t.Errorf("Retry-After %q, error %+v", resp.Header.Get("Retry-After"), e)
	}
	// NDJSON submissions count the same.
	resp, data := b.send(t, "POST", "/v1/jobs", keyAcmeJobs, "application/x-ndjson",
		strings.NewReader(`{"product_descriptions": ["Claw hammer"]}`+"\n\"saw\"\n"))
	wantQuota(t, resp, decodeError(t, resp, data), http.StatusTooManyRequests, "jobs")

	// Another tenant has its own count (the * line); the admin has none.
	for range 5 {
		if resp, _, e := b.submit(t, keyGlobexJobs, jobBody(200)); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("globex: %d %+v", resp.StatusCode, e)
		}
	}
	resp, _, e = b.submit(t, keyGlobexJobs, jobBody(200))
	wantQuota(t, resp, e, http.StatusTooManyRequests, "jobs")
	for range 3 {
		if resp, _, e := b.submit(t, keyRootJobs, jobBody(200)); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("admin: %d %+v", resp.StatusCode, e)
		}
	}

	// Cancelling one of acme's frees its place, for one job.
	if resp, data := b.send(t, "DELETE", "/v1/jobs/"+acme[0], keyAcmeJobs, "", nil); resp.StatusCode != 200 {
		t.Fatalf("cancel: %d %s", resp.StatusCode, data)
	}
	resp, data = b.send(t, "POST", "/v1/jobs", keyAcmeJobs, "application/x-ndjson",
		strings.NewReader(`{"product_descriptions": ["Claw hammer"]}`+"\n\"saw\"\n"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("after a cancel: %d %s", resp.StatusCode, data)
	}
	resp, _, e = b.submit(t, keyAcmeJobs, jobBody(200))
	wantQuota(t, resp, e, http.StatusTooManyRequests, "jobs")
}

// The upload quota bounds a tenant's job bodies, JSON and JSON lines: a
// body at the limit passes, one byte more is refused 413 naming the
// quota, and a streamed body cut off at the limit leaves no job.
func TestUploadQuota(t *testing.T) {
	const limit = 4096
	b, js := quotaJobsBridge(t, "acme upload=4KiB\n", jobstore.SetupConfig{}, nil)

	resp, st, e := b.submit(t, keyAcmeJobs, jobBody(limit))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("a JSON job at the limit: %d %+v", resp.StatusCode, e)
	}
	if resp, data := b.send(t, "DELETE", "/v1/jobs/"+st.ID, keyAcmeJobs, "", nil); resp.StatusCode != 200 {
		t.Fatalf("cancel: %d %s", resp.StatusCode, data)
	}
	resp, _, e = b.submit(t, keyAcmeJobs, jobBody(limit+1))
	wantQuota(t, resp, e, http.StatusRequestEntityTooLarge, "upload")
	if e.Limit != limit || !strings.Contains(e.Message, "tenant acme: quota upload=4096 would be exceeded (a job body of 4,097 bytes in this request)") {
		t.Errorf("error %+v", e)
	}
	// Other tenants and the admin: the route's limit only.
	for _, key := range []string{keyGlobexJobs, keyRootJobs} {
		if resp, _, e := b.submit(t, key, jobBody(3*limit)); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: %d %+v", key[:8], resp.StatusCode, e)
		}
	}

	ndjson := func(size int) string {
		var s strings.Builder
		s.WriteString(`{"product_descriptions": ["Claw hammer", "Circular saw"]}` + "\n")
		for s.Len() < size-20 {
			fmt.Fprintf(&s, "%q\n", fmt.Sprintf("query %05d", s.Len()))
		}
		s.WriteString(`"` + strings.Repeat("z", size-s.Len()-3) + "\"\n")
		return s.String()
	}
	resp, data := b.send(t, "POST", "/v1/jobs", keyAcmeJobs, "application/x-ndjson", strings.NewReader(ndjson(limit)))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("JSON lines at the limit: %d %s", resp.StatusCode, data)
	}
	_ = json.Unmarshal(data, &st)
	if resp, data := b.send(t, "DELETE", "/v1/jobs/"+st.ID, keyAcmeJobs, "", nil); resp.StatusCode != 200 {
		t.Fatalf("cancel: %d %s", resp.StatusCode, data)
	}
	purgeJobs(t, js)
	// Of known length: refused before it is read; streamed (unknown length,
	// chunks queued): cut off at the limit.
	for name, body := range map[string]io.Reader{
		"known length": strings.NewReader(ndjson(limit + 1)),
		"streamed":     io.MultiReader(strings.NewReader(ndjson(limit + 1))),
		"streamed far": io.MultiReader(strings.NewReader(ndjson(64 * limit))),
	} {
		t.Run(name, func(t *testing.T) {
			resp, data := b.send(t, "POST", "/v1/jobs", keyAcmeJobs, "application/x-ndjson", body)
			wantQuota(t, resp, decodeError(t, resp, data), http.StatusRequestEntityTooLarge, "upload")
			testenv.NoJobsLeft(t, js)
		})
	}
}

// purgeJobs empties the jobs' bucket and chunks stream.
func purgeJobs(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	for _, name := range []string{contracts.JobChunksStream, "KV_" + contracts.JobsBucket} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Purge(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// A job whose chunks do not fit in the chunks stream (its MaxBytes,
// DiscardNew) answers 507 naming the setting, and leaves no job behind.
func TestJobChunksStreamFull(t *testing.T) {
	b, js := quotaJobsBridge(t, "", jobstore.SetupConfig{ChunksMaxBytes: 16 << 10}, func(c *Config) { c.JobChunkSize = 10 })
	queries := make([]string, 400)
	for i := range queries {
		queries[i] = fmt.Sprintf("query number %d about a saw to cut wood, %s", i, strings.Repeat("x", 60))
	}
	q, _ := json.Marshal(queries)
	resp, _, e := b.submit(t, keyRootJobs, `{"product_descriptions": ["Claw hammer"], "query": `+string(q)+`}`)
	if resp.StatusCode != http.StatusInsufficientStorage || e.Code != contracts.CodeInsufficientStorage ||
		!strings.Contains(e.Message, jobstore.SettingChunksMaxBytes) || e.Limit != 16<<10 {
		t.Fatalf("JSON: %d %+v", resp.StatusCode, e)
	}
	testenv.NoJobsLeft(t, js)

	var body strings.Builder
	body.WriteString(`{"product_descriptions": ["Claw hammer"]}` + "\n")
	for _, q := range queries {
		fmt.Fprintf(&body, "%q\n", q)
	}
	resp, data := b.send(t, "POST", "/v1/jobs", keyAcmeJobs, "application/x-ndjson", strings.NewReader(body.String()))
	e = decodeError(t, resp, data)
	if resp.StatusCode != http.StatusInsufficientStorage || e.Code != contracts.CodeInsufficientStorage || !strings.Contains(e.Message, jobstore.SettingChunksMaxBytes) {
		t.Fatalf("JSON lines: %d %+v", resp.StatusCode, e)
	}
	testenv.NoJobsLeft(t, js)
}

// Without authentication there are no tenants, so no quota applies.
func TestQuotasNeedAuthentication(t *testing.T) {
	ns := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	js, err := jetstream.New(connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobstore.Setup(context.Background(), js, jobstore.SetupConfig{}); err != nil {
		t.Fatal(err)
	}
	q, err := ParseQuotas([]byte("* jobs=1 upload=1KiB\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, ns, func(c *Config) { c.Quotas = q })
	for range 3 {
		if resp, data := b.post(t, "/v1/jobs", "application/json", jobBody(4096)); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%d %s", resp.StatusCode, data)
		}
	}
}

// The quotas file is followed like the keys file: a change applies on
// Reload (SIGHUP, or Watch's poll), a broken file keeps the quotas in force.
func TestQuotasFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quotas")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("acme jobs=1\n")
	f, err := OpenQuotas(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Current().For("acme").Jobs; got != 1 {
		t.Fatalf("jobs = %d, want 1", got)
	}
	write("acme jobs=2\n* products=10\n")
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := f.Current(); got.For("acme").Jobs != 2 || got.For("globex").Products != 10 {
		t.Fatalf("after the reload: acme %+v, globex %+v", got.For("acme"), got.For("globex"))
	}
	write("acme jobs=lots\n")
	if err := f.Reload(); err == nil || !strings.Contains(err.Error(), "line 1: jobs") || !strings.Contains(err.Error(), path) {
		t.Fatalf("a broken file: %v, want an error naming the file, line and field", err)
	}
	if got := f.Current().For("acme").Jobs; got != 2 {
		t.Fatalf("a broken file changed the quotas: jobs = %d, want 2 kept", got)
	}
	if _, err := OpenQuotas(path, nil); err == nil {
		t.Fatal("a broken file at start is not an error")
	}
}
