package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/embedding"
)

// Defaults of Config and SharedConfig.
const (
	// DefaultBytes is the default budget of the in-process tier: 256 MiB hold
	// about 148,000 embeddings of 384 dimensions with 100-byte texts.
	DefaultBytes = 256 << 20
	// DefaultBucket is the default JetStream key-value bucket of the shared tier.
	DefaultBucket = "simmatch_embeddings"
	// DefaultTTL is how long an embedding stays in the shared bucket.
	DefaultTTL = 24 * time.Hour
	// DefaultSharedBytes bounds the shared bucket; once full, new embeddings
	// are not stored there until old ones expire.
	DefaultSharedBytes = 1 << 30
	// DefaultSharedTimeout bounds each bucket operation.
	DefaultSharedTimeout = 250 * time.Millisecond
)

// maxRounds bounds how often Embed waits for other callers computing the
// same texts; after that it computes what is still missing itself.
const maxRounds = 3

// Embedder is what the cache wraps and is: embedding.Embedder (the
// processor's Embedder), named here so this package does not import the
// processor.
type Embedder = embedding.Embedder

// Config configures New. Inner is required.
type Config struct {
	// Inner computes the embeddings the cache does not have.
	Inner Embedder
	// Bytes bounds the in-process tier: texts, vectors and bookkeeping
	// counted; 0 keeps no in-process tier.
	Bytes int64
	// Shards splits the in-process tier so concurrent requests rarely wait
	// on one lock; default 4 per core. Eviction is least-recently-used within
	// a shard, exact with 1.
	Shards int
	// Shared, when set, adds the tier shared by all processors.
	Shared *SharedConfig
	// Metrics receives the simmatch_cache_* collectors of docs/metrics.md;
	// nil keeps none.
	Metrics prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// SharedConfig configures the tier in a JetStream key-value bucket. NATS is required.
type SharedConfig struct {
	// NATS is the connection to the JetStream-enabled NATS system.
	NATS *nats.Conn
	// Bucket is the key-value bucket's name; default DefaultBucket.
	Bucket string
	// TTL is how long an embedding stays in the bucket; default DefaultTTL.
	TTL time.Duration
	// Replicas is the bucket's replica count; default 1.
	Replicas int
	// MaxBytes bounds the bucket; default DefaultSharedBytes.
	MaxBytes int64
	// Timeout bounds each bucket operation; default DefaultSharedTimeout.
	Timeout time.Duration
}

func (c *Config) validate() error {
	if c.Inner == nil {
		return errors.New("cache: Config.Inner is required")
	}
	if c.Bytes < 0 {
		return fmt.Errorf("cache: Config.Bytes %d: want 0 (no in-process tier) or more", c.Bytes)
	}
	if c.Shards < 0 {
		return fmt.Errorf("cache: Config.Shards %d: want a positive number", c.Shards)
	}
	if c.Shards == 0 {
		c.Shards = 4 * runtime.GOMAXPROCS(0)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if s := c.Shared; s != nil {
		if s.NATS == nil {
			return errors.New("cache: SharedConfig.NATS is required")
		}
		if s.Bucket == "" {
			s.Bucket = DefaultBucket
		}
		if !validBucket(s.Bucket) {
			return fmt.Errorf("cache: bucket name %q: want letters, digits, '-' and '_' only", s.Bucket)
		}
		if s.TTL < 0 || s.Replicas < 0 || s.MaxBytes < 0 || s.Timeout < 0 {
			return fmt.Errorf("cache: SharedConfig TTL %v, Replicas %d, MaxBytes %d, Timeout %v: want no negative values", s.TTL, s.Replicas, s.MaxBytes, s.Timeout)
		}
		if s.TTL == 0 {
			s.TTL = DefaultTTL
		}
		if s.Replicas == 0 {
			s.Replicas = 1
		}
		if s.MaxBytes == 0 {
			s.MaxBytes = DefaultSharedBytes
		}
		if s.Timeout == 0 {
			s.Timeout = DefaultSharedTimeout
		}
	}
	return nil
}

func validBucket(b string) bool {
	for _, r := range b {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return b != ""
}

// Cache is an Embedder that answers from its tiers and embeds only what
// they miss. It is safe for concurrent use.
type Cache struct {
	inner   Embedder
	local   *lru
	shared  *shared // nil without a shared tier
	model   atomic.Pointer[modelKey]
	metrics *collector
	reg     prometheus.Registerer
}

type modelKey struct {
	info contracts.ModelInfo
	key  string
}

// New returns a cache in front of cfg.Inner. With a shared tier it starts
// binding the bucket in the background; until that succeeds (it retries),
// requests use the in-process tier and Inner.
func New(cfg Config) (*Cache, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Cache{inner: cfg.Inner, local: newLRU(cfg.Bytes, cfg.Shards)}
	if cfg.Metrics != nil {
		c.metrics, c.reg = &collector{c: c}, cfg.Metrics
		if err := cfg.Metrics.Register(c.metrics); err != nil {
			return nil, fmt.Errorf("cache: register metrics: %w", err)
		}
	}
	if cfg.Shared != nil {
		c.shared = newShared(*cfg.Shared, cfg.Logger)
	}
	return c, nil
}

// For returns a Cache that embeds with inner and shares c's tiers (and
// metrics): the cache of each version of a model registry
// (processor/models), keyed by that version. Close c, not what For returns.
func (c *Cache) For(inner Embedder) *Cache {
	return &Cache{inner: inner, local: c.local, shared: c.shared}
}

// Info is the inner Embedder's model.
func (c *Cache) Info() contracts.ModelInfo { return c.inner.Info() }

// Prompt is the inner Embedder's prompt for texts of kind
// (embedding.Prompter). The cache keys on the text as given, so a prompted
// query and the same text without the prompt are cached apart.
func (c *Cache) Prompt(kind string) string { return embedding.Prompt(c.inner, kind) }

// TextTokenizer is the inner Embedder's tokenizer (embedding.TokenizerSource).
func (c *Cache) TextTokenizer() embedding.Tokenizer {
	if t, ok := embedding.TokenizerOf(c.inner); ok {
		return t
	}
	return nil
}

// EmbedIDs embeds token id sequences with the inner Embedder
// (embedding.IDEmbedder); they are not cached, being keyed by text.
func (c *Cache) EmbedIDs(ctx context.Context, ids [][]int64) (embedding.Result, error) {
	e, ok := c.inner.(embedding.IDEmbedder)
	if !ok {
		return embedding.Result{}, errors.New("cache: the model cannot embed token ids")
	}
	return e.EmbedIDs(ctx, ids)
}

// Embed returns one embedding and token count per text, in order: from the
// cache where it has them, the rest (each distinct text once) from the
// shared tier or the inner Embedder in one call. A text another caller is
// already computing is waited for, not computed twice; if that caller fails
// or is cancelled, this one computes it. The returned vectors are the
// caller's own. The Timing is the inner calls' (summed), zero when nothing
// reached the inner Embedder.
func (c *Cache) Embed(ctx context.Context, texts []string) (embedding.Result, error) {
	if len(texts) == 0 {
		return embedding.Result{}, nil
	}
	info := c.inner.Info()
	model := c.modelKey(info)

	// Distinct texts; at[i] is text i's index among them.
	uniq := make([]string, 0, len(texts))
	first := make(map[string]int, len(texts))
	at := make([]int, len(texts))
	for i, t := range texts {
		j, ok := first[t]
		if !ok {
			j = len(uniq)
			first[t] = j
			uniq = append(uniq, t)
		}
		at[i] = j
	}

	vecs := make([][]float32, len(uniq))
	tokens := make([]int, len(uniq))
	var timing embedding.Timing
	pending := make([]int, len(uniq))
	for i := range pending {
		pending[i] = i
	}
	for round := 1; len(pending) > 0; round++ {
		var lead []int
		var leads []*flight
		var waits []int
		var waitFor []*flight
		for _, i := range pending {
			if round == maxRounds { // compute the rest, waiting for no one
				lead, leads = append(lead, i), append(leads, nil)
				continue
			}
			v, n, w, l := c.local.lookup(key{model, uniq[i]})
			switch {
			case v != nil:
				vecs[i], tokens[i] = v, n
			case w != nil:
				waits, waitFor = append(waits, i), append(waitFor, w)
			default:
				lead, leads = append(lead, i), append(leads, l)
			}
		}
		// Compute what this call leads before waiting for others, so two
		// callers waiting on each other always make progress.
		if len(lead) > 0 {
			t, err := c.fill(ctx, info, model, uniq, lead, leads, vecs, tokens)
			if err != nil {
				return embedding.Result{}, err
			}
			timing = timing.Add(t)
		}
		pending = pending[:0]
		for j, f := range waitFor {
			select {
			case <-f.done:
			case <-ctx.Done():
				return embedding.Result{}, fmt.Errorf("cache: wait for an embedding another request computes: %w", ctx.Err())
			}
			if f.err != nil {
				pending = append(pending, waits[j])
				continue
			}
			vecs[waits[j]], tokens[waits[j]] = f.vec, f.tokens
		}
	}

	// Copy out: cached vectors are shared, the caller's are its own.
	dims := len(vecs[0])
	backing := make([]float32, len(texts)*dims)
	out := embedding.Result{Vectors: make([][]float32, len(texts)), Tokens: make([]int, len(texts)), Timing: timing}
	for i := range texts {
		v := vecs[at[i]]
		if len(v) != dims {
			return embedding.Result{}, fmt.Errorf("cache: embeddings of %d and %d dimensions in one call", dims, len(v))
		}
		out.Vectors[i] = backing[i*dims : (i+1)*dims : (i+1)*dims]
		copy(out.Vectors[i], v)
		out.Tokens[i] = tokens[at[i]]
	}
	return out, nil
}

// fill computes the texts uniq[idx] (from the shared tier, then the inner
// Embedder), records them in vecs and tokens, and completes their flights
// (nil entries have none); timing is the inner call's. On error every
// flight fails, so its waiters compute the text themselves.
func (c *Cache) fill(ctx context.Context, info contracts.ModelInfo, model string, uniq []string, idx []int, flights []*flight, vecs [][]float32, tokens []int) (timing embedding.Timing, err error) {
	completed := false
	defer func() {
		if completed {
			return
		}
		if err == nil { // a panic in Inner: release the waiters, keep panicking
			err = errors.New("cache: the inner embedder panicked")
		}
		for j, f := range flights {
			if f != nil {
				c.local.complete(key{model, uniq[idx[j]]}, f, nil, 0, err)
			}
		}
	}()

	texts := make([]string, len(idx))
	for j, i := range idx {
		texts[j] = uniq[i]
	}
	got, counts := make([][]float32, len(idx)), make([]int, len(idx))
	if c.shared != nil {
		got, counts = c.shared.get(ctx, info, texts)
	}
	var missIdx []int
	var missTexts []string
	for j, v := range got {
		if v == nil {
			missIdx = append(missIdx, j)
			missTexts = append(missTexts, texts[j])
		}
	}
	if len(missTexts) > 0 {
		res, err := c.inner.Embed(ctx, missTexts)
		if err != nil {
			return timing, err
		}
		embedded := res.Vectors
		if len(embedded) != len(missTexts) || len(res.Tokens) != len(missTexts) {
			return timing, fmt.Errorf("cache: the embedder returned %d embeddings and %d token counts for %d texts", len(embedded), len(res.Tokens), len(missTexts))
		}
		for k, j := range missIdx {
			if len(embedded[k]) == 0 {
				return timing, fmt.Errorf("cache: the embedder returned an empty embedding for text %d", k)
			}
			got[j], counts[j] = embedded[k], res.Tokens[k]
		}
		timing = res.Timing
		if c.shared != nil {
			c.shared.put(info, missTexts, embedded, res.Tokens)
		}
	}
	for j, i := range idx {
		vecs[i], tokens[i] = got[j], counts[j]
		k := key{model, uniq[i]}
		if flights[j] != nil {
			c.local.complete(k, flights[j], got[j], counts[j], nil)
		} else {
			c.local.store(k, got[j], counts[j])
		}
	}
	completed = true
	return timing, nil
}

// modelKey is the key part naming the model ("name\x00version"), one string
// shared by every entry of the model.
func (c *Cache) modelKey(info contracts.ModelInfo) string {
	if m := c.model.Load(); m != nil && m.info == info {
		return m.key
	}
	m := &modelKey{info: info, key: info.Name + "\x00" + info.Version}
	c.model.Store(m)
	return m.key
}

// Close unregisters the metrics and waits for the shared tier's background
// writes, until ctx ends. It does not close the inner Embedder.
func (c *Cache) Close(ctx context.Context) error {
	if c.reg != nil {
		c.reg.Unregister(c.metrics)
	}
	if c.shared == nil {
		return nil
	}
	return c.shared.close(ctx)
}
