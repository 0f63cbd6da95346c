package models_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/models"
	"github.com/simmatch/simmatch/processor/scheduler"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(m.Run())
}

// newRegistry returns a registry on the real model store with the given
// versions loaded (the first is the default), closed when the test ends.
func newRegistry(t testing.TB, reg prometheus.Registerer, versions ...string) (*models.Registry, string) {
	t.Helper()
	root, name := testenv.ModelStore(t)
	_, lib := testenv.ModelPaths(t)
	r, err := models.New(models.Config{Root: root, Library: lib, Scheduler: scheduler.Config{Pool: scheduler.NewPool(2)}, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	for _, v := range versions {
		if err := r.Load(context.Background(), name+"@"+v); err != nil {
			t.Fatal(err)
		}
	}
	return r, name
}

// startProcessor serves r on ns, with its metrics on reg (none when nil);
// it stops before r closes.
func startProcessor(t testing.TB, ns *server.Server, r *models.Registry, reg ...prometheus.Registerer) *processor.Processor {
	t.Helper()
	cfg := processor.Config{NATS: testenv.Connect(t, ns), Embedder: r, Models: r}
	if len(reg) > 0 {
		cfg.Metrics = reg[0]
	}
	p, err := processor.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return p
}

func match(t testing.TB, c *contracts.Client, model string) (*contracts.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return c.Match(ctx, &contracts.Request{Query: contracts.Queries{"What can I use to cut wood?"},
		ProductDescriptions: []string{"Heavy-duty claw hammer.", "Circular saw with laser guide."}, Model: model})
}

func newClient(t testing.TB, ns *server.Server) *contracts.Client {
	t.Helper()
	c, err := contracts.NewClient(testenv.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRequestsNameAModel serves two versions side by side from one
// processor: a request gets the version it names, the default when it names
// none, and not_found with the list of models for an unknown one.
func TestRequestsNameAModel(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, name := newRegistry(t, reg, "fp32", "int8")
	ns := testenv.StartNATS(t)
	startProcessor(t, ns, r, reg)
	c := newClient(t, ns)
	tests := []struct {
		name, model, version string
	}{
		{"no model: the default", "", "fp32"},
		{"name alone: its default version", name, "fp32"},
		{"name@int8", name + "@int8", "int8"},
		{"name@fp32", name + "@fp32", "fp32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := match(t, c, tc.model)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Model.Name != name || resp.Model.Version != tc.version {
				t.Fatalf("answered by %+v, want %s@%s", resp.Model, name, tc.version)
			}
			if resp.Results[0].Matches[0].Index != 1 {
				t.Fatalf("the saw should rank first: %+v", resp.Results[0].Matches)
			}
		})
	}
	for _, model := range []string{"bert", name + "@fp16"} {
		t.Run("unknown "+model, func(t *testing.T) {
			_, err := match(t, c, model)
			var e *contracts.Error
			if !errors.As(err, &e) || e.Code != contracts.CodeNotFound {
				t.Fatalf("got %v, want code not_found", err)
			}
			for _, want := range []string{name + "@fp32", name + "@int8"} {
				if !strings.Contains(e.Message, want) {
					t.Errorf("message %q does not list %s", e.Message, want)
				}
			}
			if e.Code.HTTPStatus() != 404 {
				t.Errorf("status %d, want 404", e.Code.HTTPStatus())
			}
		})
	}
	t.Run("metrics by version", func(t *testing.T) {
		for _, metric := range []string{"simmatch_model_matches_total", "simmatch_processor_texts_total"} {
			for _, v := range []string{"fp32", "int8"} {
				got, err := testutil.GatherAndCount(reg, metric)
				if err != nil || got < 2 {
					t.Fatalf("%s: %d series (%v), want one per version", metric, got, err)
				}
				mfs, _ := reg.Gather()
				if !hasSeries(mfs, metric, v) {
					t.Errorf("%s has no series with model_version=%q", metric, v)
				}
			}
		}
	})
	t.Run("malformed model", func(t *testing.T) {
		_, err := match(t, c, "a b")
		var e *contracts.Error
		if !errors.As(err, &e) || e.Code != contracts.CodeInvalidRequest || e.Field != "model" {
			t.Fatalf("got %#v, want invalid_request on field model", err)
		}
	})
}

// brokenCopy makes root/name/version a copy of the real fp32 version (the
// graph linked, the small files copied), then lets breakIt damage it.
func brokenCopy(t *testing.T, root, name, version string, breakIt func(dir string)) {
	t.Helper()
	src := testenv.ModelVersionDir(t, "fp32")
	dst := filepath.Join(root, name, version)
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if rel == "model.onnx" {
			return os.Symlink(p, filepath.Join(dst, rel))
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	breakIt(dst)
}

// TestBrokenModelsAreRefused loads broken copies of the model: each is
// refused with an error that says what is wrong, and the version that serves
// keeps serving, alone.
func TestBrokenModelsAreRefused(t *testing.T) {
	realRoot, name := testenv.ModelStore(t)
	_, lib := testenv.ModelPaths(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(realRoot, name, "fp32"), filepath.Join(root, name, "fp32")); err != nil {
		t.Fatal(err)
	}
	write := func(file, data string) func(string) {
		return func(dir string) {
			p := filepath.Join(dir, file)
			_ = os.Remove(p) // a symlink to the real graph must not be written through
			testenv.WriteFile(t, p, []byte(data))
		}
	}
	tests := []struct {
		version, wantErr string
		breakIt          func(dir string)
	}{
		{"corrupt", "model.onnx", write("model.onnx", "this is not an ONNX graph")},
		{"wrongdim", "declares 512", write("1_Pooling/config.json", `{"word_embedding_dimension": 512, "pooling_mode_mean_tokens": true}`)},
		{"notokenizer", "no tokenizer.json", func(dir string) {
			if err := os.Remove(filepath.Join(dir, "tokenizer.json")); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing", "no directory", func(dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}},
		{"badhints", "max_batch_tokens", write(models.HintsFile, `{"max_batch_tokens": "small"}`)},
	}
	for _, tc := range tests {
		brokenCopy(t, root, name, tc.version, tc.breakIt)
	}
	r, err := models.New(models.Config{Root: root, Library: lib})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	if err := r.Load(context.Background(), name+"@fp32"); err != nil {
		t.Fatal(err)
	}
	ns := testenv.StartNATS(t)
	startProcessor(t, ns, r)
	c := newClient(t, ns)
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			err := r.Load(context.Background(), name+"@"+tc.version)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), name+"@"+tc.version) {
				t.Fatalf("load: got error %v, want one naming the version and %q", err, tc.wantErr)
			}
			if err := r.Switch(name + "@" + tc.version); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("switch to a refused version: got %v, want ErrNotFound", err)
			}
			resp, err := match(t, c, "")
			if err != nil || resp.Model.Version != "fp32" {
				t.Fatalf("serving after the refusal: %+v, %v; want fp32 answering", resp, err)
			}
			if st := r.Status(); len(st) != 1 || st[0].Version != "fp32" || !st[0].Default {
				t.Fatalf("status %+v, want fp32 alone, default", st)
			}
		})
	}
}

// TestOldVersionDrains switches and unloads the version a request is being
// served by: the request completes on it, and only then is it freed.
func TestOldVersionDrains(t *testing.T) {
	r, name := newRegistry(t, prometheus.NewRegistry(), "fp32", "int8")
	ns := testenv.StartNATS(t)
	startProcessor(t, ns, r)
	c := newClient(t, ns)

	// A request big enough to stay in flight while the test switches.
	descs := make([]string, 600)
	for i := range descs {
		descs[i] = fmt.Sprintf("product number %d: a cordless drill with two batteries and a carrying case", i)
	}
	type answer struct {
		resp *contracts.Response
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		resp, err := c.Match(ctx, &contracts.Request{Query: contracts.Queries{"drill"}, ProductDescriptions: descs})
		done <- answer{resp, err}
	}()
	state := func(version string) (contracts.ModelVersionStatus, bool) {
		for _, s := range r.Status() {
			if s.Version == version {
				return s, true
			}
		}
		return contracts.ModelVersionStatus{}, false
	}
	testenv.WaitFor(t, 60*time.Second, "the request in flight on fp32", func() bool {
		s, _ := state("fp32")
		return s.InFlight == 1
	})
	if err := r.Switch(name + "@int8"); err != nil {
		t.Fatal(err)
	}
	if err := r.Unload(name + "@fp32"); err != nil {
		t.Fatal(err)
	}
	if s, ok := state("fp32"); !ok || s.State != contracts.ModelDraining {
		t.Fatalf("fp32 after unload: %+v, want draining while its request runs", s)
	}
	// New requests go to int8 at once, while fp32 still drains.
	resp, err := match(t, c, "")
	if err != nil || resp.Model.Version != "int8" {
		t.Fatalf("request after the switch: %+v, %v; want int8", resp, err)
	}
	if _, err := match(t, c, name+"@fp32"); err == nil {
		t.Fatal("a request naming the unloaded fp32 was served; want not_found")
	}
	a := <-done
	if a.err != nil {
		t.Fatalf("the request in flight during the switch failed: %v", a.err)
	}
	if a.resp.Model.Version != "fp32" || len(a.resp.Results[0].Matches) != len(descs) {
		t.Fatalf("the request in flight was answered by %s with %d matches; want fp32 with %d", a.resp.Model.Version, len(a.resp.Results[0].Matches), len(descs))
	}
	testenv.WaitFor(t, 30*time.Second, "fp32 freed", func() bool {
		_, ok := state("fp32")
		return !ok
	})
}

// TestSwitchUnderLoad switches the default back and forth over NATS
// (through the JetStream desired state) while clients send requests naming
// no version: every request succeeds and is answered by one of the two
// versions, and both answer.
func TestSwitchUnderLoad(t *testing.T) {
	r, name := newRegistry(t, prometheus.NewRegistry(), "fp32", "int8")
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	startControl(t, ns, r, startProcessor(t, ns, r))
	c := newClient(t, ns)
	ctl := contracts.NewModelControl(testenv.Connect(t, ns))

	const clients, switches = 4, 6
	stop := make(chan struct{})
	var (
		mu       sync.Mutex
		versions = map[string]int{}
		failures []error
		wg       sync.WaitGroup
	)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ { // bounded; stop ends it sooner
				select {
				case <-stop:
					return
				default:
				}
				resp, err := match(t, c, "")
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				} else {
					versions[resp.Model.Version]++
				}
				mu.Unlock()
			}
		}()
	}
	answered := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := len(failures)
		for _, c := range versions {
			n += c
		}
		return n
	}
	for i := range switches {
		to := []string{"int8", "fp32"}[i%2]
		before := answered()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		st, err := ctl.Switch(ctx, name+"@"+to)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got := defaultOf(*st, name); got != to {
			t.Fatalf("after switching to %s the default is %q", to, got)
		}
		testenv.WaitFor(t, 60*time.Second, "answers after a switch", func() bool { return answered() >= before+clients })
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed during switches; first: %v", len(failures), failures[0])
	}
	if len(versions) != 2 || versions["fp32"] == 0 || versions["int8"] == 0 {
		t.Fatalf("answers by version %v: want both fp32 and int8, nothing else", versions)
	}
	t.Logf("answers by version: %v", versions)
}

// hasSeries reports whether metric has a series with a non-zero value and
// model_version=version.
func hasSeries(mfs []*dto.MetricFamily, metric, version string) bool {
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "model_version" && l.GetValue() == version && m.GetCounter().GetValue() > 0 {
					return true
				}
			}
		}
	}
	return false
}

// A version's simmatch.json sets its batch budget unless one is configured.
func TestServingHints(t *testing.T) {
	realRoot, name := testenv.ModelStore(t)
	_, lib := testenv.ModelPaths(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(realRoot, name, "fp32"), filepath.Join(root, name, "fp32")); err != nil {
		t.Fatal(err)
	}
	brokenCopy(t, root, name, "hinted", func(dir string) {
		testenv.WriteFile(t, filepath.Join(dir, models.HintsFile), []byte(`{"max_batch_tokens": 96}`))
	})
	budgets := func(configured int) map[string]int {
		r, err := models.New(models.Config{Root: root, Library: lib, Scheduler: scheduler.Config{MaxBatchTokens: configured}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(context.Background())
		got := map[string]int{}
		for _, v := range []string{"fp32", "hinted"} {
			if err := r.Load(context.Background(), name+"@"+v); err != nil {
				t.Fatal(err)
			}
		}
		for _, st := range r.Status() {
			got[st.Version] = st.MaxBatchTokens
		}
		return got
	}
	if got := budgets(0); got["hinted"] != 96 || got["fp32"] != scheduler.DefaultMaxBatchTokens {
		t.Errorf("batch budgets %v; want hinted 96 (its %s), fp32 the default %d", got, models.HintsFile, scheduler.DefaultMaxBatchTokens)
	}
	if got := budgets(512); got["hinted"] != 512 || got["fp32"] != 512 {
		t.Errorf("batch budgets %v with 512 configured; want 512 for both (configuration wins)", got)
	}
}
