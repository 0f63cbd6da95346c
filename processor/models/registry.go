// Package models is the processor's model registry: the versions of each
// model loaded side by side, each with its own scheduler on the shared lane
// Pool, the default version per name, safe loading (a version is validated
// before it serves) and draining (an unloaded version is freed only when its
// last request is answered). The desired state of a fleet lives in a
// JetStream key-value bucket (desired.go); control arrives over NATS
// (control.go).
package models

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/embedding"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// Config configures New. Library is required.
type Config struct {
	// Root is the model store: one directory per version, Root/<name>/<version>/,
	// in the sentence-transformers ONNX layout. Default "models".
	Root string
	// Library is the ONNX Runtime shared library.
	Library string
	// IntraOpThreads is ONNX Runtime's threads per batch; default 1.
	IntraOpThreads int
	// Scheduler is the template of every version's scheduler; its Model and
	// Metrics are set per version. Its Pool is shared by all versions
	// (default: one lane per core).
	Scheduler scheduler.Config
	// Metrics receives each version's scheduler metrics, labelled with
	// model and model_version; nil keeps none.
	Metrics prometheus.Registerer
	// Wrap, when set, wraps each version's scheduler, e.g. in the
	// embedding cache's Cache.For; requests resolved to the version use
	// what it returns.
	Wrap func(processor.Embedder) processor.Embedder
	// DrainTimeout bounds how long an unloaded version's scheduler may take
	// to finish its queue once its last request is answered; default 1 minute.
	DrainTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// ErrNotFound is wrapped by the errors of Resolve, Switch and Unload for a
// model that is not loaded.
var ErrNotFound = errors.New("models: not loaded")

// ErrRefused is wrapped by Load's error for a version that does not load or
// fails validation.
var ErrRefused = errors.New("models: version refused")

// Registry holds the loaded model versions. It implements processor.Resolver
// and, for the default model, processor.Embedder. It is safe for concurrent use.
type Registry struct {
	cfg Config

	mu       sync.Mutex
	versions map[string]*version // by "name@version"; serving only
	loading  map[string]*loadCall
	draining map[*version]bool
	defaults map[string]string // name -> default version
	primary  string            // the name requests naming no model get
	closed   bool
	drains   sync.WaitGroup // versions draining
	loads    sync.WaitGroup // loads running; Add only under mu before Close
}

// version is one loaded model version and its scheduler.
type version struct {
	name, ver string
	model     *processor.Model
	sched     *scheduler.Scheduler
	serve     processor.Embedder // sched, or Config.Wrap(sched)
	fileBytes int64
	refs      sync.WaitGroup // requests holding the version; Add only under Registry.mu while in versions
	inflight  atomic.Int64
}

type loadCall struct {
	done chan struct{}
	err  error
}

var (
	_ processor.Resolver = (*Registry)(nil)
	_ processor.Embedder = (*Registry)(nil)
	_ embedding.Prompter = (*Registry)(nil)
	_ embedding.Prompter = direct{}
)

// New returns an empty registry; load a first version with Add or Load.
func New(cfg Config) (*Registry, error) {
	if cfg.Library == "" {
		return nil, errors.New("models: Config.Library (the ONNX Runtime library) is required")
	}
	if cfg.Root == "" {
		cfg.Root = "models"
	}
	if cfg.Scheduler.Pool == nil {
		cfg.Scheduler.Pool = scheduler.NewPool(0)
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Registry{cfg: cfg, versions: map[string]*version{}, loading: map[string]*loadCall{},
		draining: map[*version]bool{}, defaults: map[string]string{}}, nil
}

// Dir is the store directory of name@ver.
func (r *Registry) Dir(name, ver string) string { return filepath.Join(r.cfg.Root, name, ver) }

// Load loads ref ("name@version") from the store, validates it and makes it
// serve; the first version of a name becomes its default, and the first
// name the default model. Loading an already loaded version does nothing;
// concurrent loads of one version share one load. A version that fails to
// load or validate is refused with the reason; what serves is untouched.
func (r *Registry) Load(ctx context.Context, ref string) error {
	name, ver, err := contracts.ParseModelRef(ref)
	if err != nil {
		return fmt.Errorf("models: model %q: %w", ref, err)
	}
	if ver == "" {
		return fmt.Errorf("models: model %q: name a version to load (name@version)", ref)
	}
	return r.Add(ctx, name, ver, r.Dir(name, ver))
}

// Add is Load from dir, which need not be in the store (the processor's
// -model-dir).
func (r *Registry) Add(ctx context.Context, name, ver, dir string) error {
	key := contracts.ModelRef(name, ver)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errors.New("models: registry closed")
	}
	if _, ok := r.versions[key]; ok {
		r.mu.Unlock()
		return nil
	}
	c, ok := r.loading[key]
	if !ok {
		c = &loadCall{done: make(chan struct{})}
		r.loading[key] = c
		r.loads.Add(1)
		go r.load(c, name, ver, dir)
	}
	r.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("models: load %s: %w (the load goes on in the background)", key, ctx.Err())
	}
}

func (r *Registry) load(c *loadCall, name, ver, dir string) {
	defer r.loads.Done()
	key := contracts.ModelRef(name, ver)
	start := time.Now()
	r.cfg.Logger.Info("loading model version", "model", key, "dir", dir)
	v, err := r.open(name, ver, dir)
	r.mu.Lock()
	delete(r.loading, key)
	if err == nil && r.closed {
		err = errors.New("models: registry closed")
	}
	if err != nil {
		r.mu.Unlock()
		if v != nil {
			r.free(v)
		}
		c.err = err
		r.cfg.Logger.Error("model version refused; what serves is unchanged", "model", key, "err", err)
		close(c.done)
		return
	}
	r.versions[key] = v
	if _, ok := r.defaults[name]; !ok {
		r.defaults[name] = ver
	}
	if r.primary == "" {
		r.primary = name
	}
	r.mu.Unlock()
	r.cfg.Logger.Info("model version serving", "model", key, "dimensions", v.model.Dimensions(), "load_time", time.Since(start).Round(time.Millisecond))
	close(c.done)
}

// open loads, validates and schedules one version; on error the returned
// version (if any) holds what must be freed.
func (r *Registry) open(name, ver, dir string) (*version, error) {
	key := contracts.ModelRef(name, ver)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: %s: no directory %s in the model store (%s/<name>/<version>/)", ErrNotFound, key, dir, r.cfg.Root)
	}
	m, err := processor.LoadModel(processor.ModelOptions{Dir: dir, Library: r.cfg.Library, Name: name, Version: ver,
		IntraOpThreads: max(r.cfg.IntraOpThreads, 1)})
	if err != nil {
		if m != nil {
			m.Close()
		}
		return nil, fmt.Errorf("%w: load %s from %s: %w", ErrRefused, key, dir, err)
	}
	v := &version{name: name, ver: ver, model: m}
	if st, err := os.Stat(m.Layout().ONNXPath); err == nil {
		v.fileBytes = st.Size()
	}
	if err := Validate(context.Background(), m); err != nil {
		return v, fmt.Errorf("%w: %s from %s failed validation: %w", ErrRefused, key, dir, err)
	}
	hints, err := readHints(dir)
	if err != nil {
		return v, fmt.Errorf("%w: %s from %s: %w", ErrRefused, key, dir, err)
	}
	sc := r.cfg.Scheduler
	if sc.MaxBatchTokens == 0 {
		sc.MaxBatchTokens = hints.MaxBatchTokens
	}
	sc.Model = m
	sc.Logger = r.cfg.Logger
	if r.cfg.Metrics != nil {
		sc.Metrics = newVersionRegisterer(r.cfg.Metrics, name, ver)
	}
	if v.sched, err = scheduler.New(sc); err != nil {
		return v, fmt.Errorf("models: scheduler for %s: %w", key, err)
	}
	v.serve = v.sched
	if r.cfg.Wrap != nil {
		v.serve = r.cfg.Wrap(v.sched)
	}
	return v, nil
}

// free closes a version's scheduler, then its model.
func (r *Registry) free(v *version) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.DrainTimeout)
	defer cancel()
	if v.sched != nil {
		if err := v.sched.Close(ctx); err != nil {
			r.cfg.Logger.Error("close scheduler", "model", contracts.ModelRef(v.name, v.ver), "err", err)
		}
	}
	if err := v.model.Close(); err != nil {
		r.cfg.Logger.Error("close model", "model", contracts.ModelRef(v.name, v.ver), "err", err)
	}
}

// Resolve returns the version that serves model ("", "name" or
// "name@version") and holds it until release is called.
func (r *Registry) Resolve(model string) (processor.Embedder, func(), error) {
	v, release, err := r.hold(model)
	if err != nil {
		return nil, nil, err
	}
	return v.serve, release, nil
}

// hold resolves model and holds its version until release is called.
func (r *Registry) hold(model string) (*version, func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := r.find(model)
	if err != nil {
		return nil, nil, err
	}
	v.refs.Add(1)
	v.inflight.Add(1)
	var once sync.Once
	return v, func() {
		once.Do(func() {
			v.inflight.Add(-1)
			v.refs.Done()
		})
	}, nil
}

// Direct is an Embedder on the default version's scheduler, past
// Config.Wrap: the catalogs embed through it, past the embedding cache.
func (r *Registry) Direct() processor.Embedder { return direct{r} }

type direct struct{ r *Registry }

func (d direct) Embed(ctx context.Context, texts []string) (embedding.Result, error) {
	v, release, err := d.r.hold("")
	if err != nil {
		return embedding.Result{}, err
	}
	defer release()
	return v.sched.Embed(ctx, texts)
}

func (d direct) Info() contracts.ModelInfo { return d.r.Info() }

// Prompt is the default version's prompt for texts of kind (embedding.Prompter).
func (d direct) Prompt(kind string) string { return d.r.Prompt(kind) }

// Resolve is Registry.Resolve: a catalog created for a chosen model learns
// its name and version from it.
func (d direct) Resolve(model string) (processor.Embedder, func(), error) { return d.r.Resolve(model) }

// Hold returns the scheduler of model ("name@version"), past Config.Wrap,
// and holds the version until release is called. A version that is loading
// is waited for (until ctx ends).
func (d direct) Hold(ctx context.Context, model string) (processor.Embedder, func(), error) {
	v, release, err := d.r.hold(model)
	if err != nil {
		d.r.mu.Lock()
		c := d.r.loading[model]
		d.r.mu.Unlock()
		if c == nil {
			return nil, nil, err
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, nil, err
		}
		if v, release, err = d.r.hold(model); err != nil {
			return nil, nil, err
		}
	}
	return v.sched, release, nil
}

// find resolves model under r.mu; its error is a contracts.Error not_found
// listing what is available.
func (r *Registry) find(model string) (*version, error) {
	name, ver := r.primary, ""
	if model != "" {
		var err error
		if name, ver, err = contracts.ParseModelRef(model); err != nil {
			return nil, contracts.FieldError("model", 0, "%v", err)
		}
	}
	if ver == "" {
		ver = r.defaults[name]
	}
	if v, ok := r.versions[contracts.ModelRef(name, ver)]; ok {
		return v, nil
	}
	if model == "" {
		return nil, &contracts.Error{Code: contracts.CodeNotFound, Message: "no model is loaded"}
	}
	return nil, &contracts.Error{Code: contracts.CodeNotFound,
		Message: fmt.Sprintf("model %q is not loaded; available: %s", model, strings.Join(r.availableLocked(), ", "))}
}

// availableLocked lists the loaded "name@version"s, sorted, and each name
// alone for its default.
func (r *Registry) availableLocked() []string {
	var l []string
	for k := range r.versions {
		l = append(l, k)
	}
	for n := range r.defaults {
		l = append(l, n)
	}
	slices.Sort(l)
	return l
}

// Available lists the models requests may name: every loaded
// "name@version" and every name (its default version).
func (r *Registry) Available() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.availableLocked()
}

// Embed embeds texts with the default model's default version.
func (r *Registry) Embed(ctx context.Context, texts []string) (embedding.Result, error) {
	e, release, err := r.Resolve("")
	if err != nil {
		return embedding.Result{}, err
	}
	defer release()
	return e.Embed(ctx, texts)
}

// AdmissionLoad is the default version's scheduler.AdmissionLoad (zeros
// when none serves).
func (r *Registry) AdmissionLoad() scheduler.Load {
	r.mu.Lock()
	v, err := r.find("")
	r.mu.Unlock()
	if err != nil || v.sched == nil {
		return scheduler.Load{}
	}
	return v.sched.AdmissionLoad()
}

// Info describes the default model's default version (zero when none is loaded).
func (r *Registry) Info() contracts.ModelInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, err := r.find(""); err == nil {
		return v.model.Info()
	}
	return contracts.ModelInfo{}
}

// Prompt is the default model's default version's prompt for texts of kind
// (embedding.Prompter); "" when none is loaded or it has none. A caller that
// resolved a version (Resolve) asks that version: embedding.WithPrompt.
func (r *Registry) Prompt(kind string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, err := r.find(""); err == nil {
		return v.model.Prompt(kind)
	}
	return ""
}

// TextTokenizer is the default model's default version's tokenizer
// (embedding.TokenizerSource); nil when none is loaded.
func (r *Registry) TextTokenizer() embedding.Tokenizer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, err := r.find(""); err == nil {
		return v.model.TextTokenizer()
	}
	return nil
}

// EmbedIDs embeds token id sequences with the default model's default
// version (embedding.IDEmbedder).
func (r *Registry) EmbedIDs(ctx context.Context, ids [][]int64) (embedding.Result, error) {
	e, release, err := r.Resolve("")
	if err != nil {
		return embedding.Result{}, err
	}
	defer release()
	ie, ok := e.(embedding.IDEmbedder)
	if !ok {
		return embedding.Result{}, errors.New("models: the model cannot embed token ids")
	}
	return ie.EmbedIDs(ctx, ids)
}

// Switch makes ref ("name@version", loaded) the default version of its
// name: requests that arrive afterwards and name no version use it; requests
// already resolved finish on the version they hold.
func (r *Registry) Switch(ref string) error {
	name, ver, err := contracts.ParseModelRef(ref)
	if err != nil {
		return fmt.Errorf("models: model %q: %w", ref, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ver == "" {
		ver = r.defaults[name]
	}
	if _, ok := r.versions[contracts.ModelRef(name, ver)]; !ok {
		return fmt.Errorf("%w: %s (load it first; loaded: %s)", ErrNotFound, ref, strings.Join(r.availableLocked(), ", "))
	}
	if r.defaults[name] != ver {
		r.cfg.Logger.Info("default model version switched", "model", name, "from", r.defaults[name], "to", ver)
	}
	r.defaults[name] = ver
	return nil
}

// ErrDefault is wrapped by Unload's error for a version that is the default
// of its name.
var ErrDefault = errors.New("models: the default version cannot be unloaded")

// Unload stops ref ("name@version") from taking new requests; it is freed
// in the background once the requests holding it are answered. The default
// version of a name cannot be unloaded while the name has other versions,
// nor the default model's last version: switch first.
func (r *Registry) Unload(ref string) error {
	name, ver, err := contracts.ParseModelRef(ref)
	if err != nil {
		return fmt.Errorf("models: model %q: %w", ref, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ver == "" {
		ver = r.defaults[name]
	}
	key := contracts.ModelRef(name, ver)
	v, ok := r.versions[key]
	if !ok {
		return fmt.Errorf("%w: %s (loaded: %s)", ErrNotFound, ref, strings.Join(r.availableLocked(), ", "))
	}
	if r.defaults[name] == ver {
		others := 0
		for _, o := range r.versions {
			if o.name == name {
				others++
			}
		}
		if others > 1 || name == r.primary {
			return fmt.Errorf("%w: %s is the default of %s; switch to another version first", ErrDefault, key, name)
		}
		delete(r.defaults, name)
	}
	delete(r.versions, key)
	r.draining[v] = true
	r.drains.Add(1)
	go r.drain(v)
	return nil
}

// drain waits for the requests holding v, then frees it.
func (r *Registry) drain(v *version) {
	defer r.drains.Done()
	key := contracts.ModelRef(v.name, v.ver)
	r.cfg.Logger.Info("model version draining", "model", key, "in_flight", v.inflight.Load())
	v.refs.Wait()
	r.free(v)
	r.mu.Lock()
	delete(r.draining, v)
	r.mu.Unlock()
	r.cfg.Logger.Info("model version freed", "model", key)
}

// Status lists the loaded, loading and draining versions.
func (r *Registry) Status() []contracts.ModelVersionStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	var l []contracts.ModelVersionStatus
	add := func(v *version, state string) {
		st := contracts.ModelVersionStatus{Name: v.name, Version: v.ver, Dimensions: v.model.Dimensions(),
			State: state, Default: state == contracts.ModelServing && r.defaults[v.name] == v.ver,
			InFlight: v.inflight.Load(), FileBytes: v.fileBytes}
		if v.sched != nil {
			st.MaxBatchTokens = v.sched.MaxBatchTokens()
			for _, kind := range []string{contracts.InputQuery, contracts.InputDocument} {
				if p := v.sched.Prompt(kind); p != "" {
					if st.Prompts == nil {
						st.Prompts = map[string]string{}
					}
					st.Prompts[kind] = p
				}
			}
		}
		l = append(l, st)
	}
	for _, v := range r.versions {
		add(v, contracts.ModelServing)
	}
	for v := range r.draining {
		add(v, contracts.ModelDraining)
	}
	for k := range r.loading {
		name, ver, _ := strings.Cut(k, "@")
		l = append(l, contracts.ModelVersionStatus{Name: name, Version: ver, State: contracts.ModelLoading})
	}
	slices.SortFunc(l, func(a, b contracts.ModelVersionStatus) int {
		return strings.Compare(a.Name+"@"+a.Version+a.State, b.Name+"@"+b.Version+b.State)
	})
	return l
}

// Primary returns the "name@version" that serves requests naming no model,
// or "" when none is serving.
func (r *Registry) Primary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := r.find("")
	if err != nil {
		return ""
	}
	return contracts.ModelRef(v.name, v.ver)
}

// Defaults returns the default version of each loaded name.
func (r *Registry) Defaults() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]string, len(r.defaults))
	for k, v := range r.defaults {
		m[k] = v
	}
	return m
}

// Close unloads every version and waits until all are freed (their
// requests answered), and loads under way have ended, or ctx ends. Stop the
// processor first.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	for k, v := range r.versions {
		delete(r.versions, k)
		r.draining[v] = true
		r.drains.Add(1)
		go r.drain(v)
	}
	r.defaults = map[string]string{}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.loads.Wait(); r.drains.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("models: close: versions still draining: %w", ctx.Err())
	}
}
