// Package node is a processor's composition root: Start builds a processor
// and everything it serves from a Config (the model registry, the embedding
// cache, catalogs, jobs, model control), and Stop takes them down in the
// reverse order. The commands only parse flags into a Config.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/cache"
	"github.com/simmatch/simmatch/processor/catalog"
	"github.com/simmatch/simmatch/processor/jobs"
	"github.com/simmatch/simmatch/processor/models"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// Config configures one processor and its model: the settings of the
// simmatch-processor command and the all-in-one (cmd/internal/procflags).
type Config struct {
	ModelDir, ModelName, ModelVersion string
	ORTLibrary                        string
	// Workers is the lanes: batches run at once (scheduler.NewPool).
	Workers, IntraOpThreads int
	// MaxBatchTokens, MaxQueuedTokens and BatchWait configure the scheduler.
	MaxBatchTokens, MaxQueuedTokens int
	BatchWait                       time.Duration
	// MaxQueueWait bounds an admitted request's wait (scheduler.Config.MaxQueueWait).
	MaxQueueWait time.Duration
	QueueGroup   string
	Limits       contracts.Limits
	// SimilarityThreshold and MetricsTopK tune the model metrics
	// (processor.Config.SimilarityThreshold and MetricsTopK).
	SimilarityThreshold float64
	MetricsTopK         int
	// Cache configures the embedding cache in front of the scheduler.
	Cache CacheSettings
	// JetStreamReplicas is the replica count of the JetStream assets the
	// processor creates (the shared cache bucket, the catalogs' streams).
	JetStreamReplicas int
	// Catalogs: on (JetStream required), off, or auto (on when the NATS
	// server has JetStream). CatalogMaxProducts bounds one catalog; new
	// catalog streams get JetStreamReplicas replicas.
	Catalogs           string
	CatalogMaxProducts int
	// CatalogMaxBytes bounds each catalog's stream (catalog.Config.MaxBytes).
	CatalogMaxBytes int
	// CatalogMemoryBytes is the processor-wide budget of the catalogs'
	// matrices and keyword indexes (catalog.Config.MemoryBytes); 0: unbounded.
	CatalogMemoryBytes int
	// JetStreamBucketMaxBytes bounds the key-value buckets the processor
	// creates (jobs, desired models, re-embedding claims; the shared cache
	// has its own setting).
	JetStreamBucketMaxBytes int
	// CatalogInt8 names the catalogs with an int8 matrix, comma-separated
	// ("*": all); CatalogInt8Dir holds their exact rows (catalog.Config.Int8,
	// Int8Dir).
	CatalogInt8    string
	CatalogInt8Dir string
	// CatalogReembedCheck and CatalogReembedClaimTTL pace the background
	// re-embedding of catalogs after a switch of the default version.
	CatalogReembedCheck    time.Duration
	CatalogReembedClaimTTL time.Duration
	// ModelStore is the model store models.Config.Root; empty: the store
	// -model-dir is a version of (two levels up), else "models".
	ModelStore string
	// Jobs: on (JetStream required), off, or auto (on when the NATS server
	// has JetStream). JetStreamReplicas, JobRetention and JobAckWait
	// configure the jobs' streams (processor/jobs.Config).
	Jobs         string
	JobRetention time.Duration
	JobAckWait   time.Duration
	// JobChunksMaxBytes and JobResultsMaxBytes bound the jobs' streams.
	JobChunksMaxBytes, JobResultsMaxBytes int
	// JobMatchChunkSize is the most source products of one match or dedupe
	// chunk (jobs.Config.MatchChunkSize; 0: its default).
	JobMatchChunkSize int
	// OwnDefault makes the model loaded at start the recorded default of
	// the desired state, over one recorded before (models.ControlConfig.Own):
	// the all-in-one sets it when its model was given explicitly. Without
	// it the processor follows the recorded default.
	OwnDefault bool
}

// storeRoot is the model store: ModelStore, else the store ModelDir is a
// version of, else "models".
func (s *Config) storeRoot() string {
	if s.ModelStore != "" {
		return s.ModelStore
	}
	dir := filepath.Clean(s.ModelDir)
	if filepath.Base(filepath.Dir(dir)) == s.ModelName {
		return filepath.Dir(filepath.Dir(dir))
	}
	return "models"
}

// CacheSettings configure the embedding cache (processor/cache).
type CacheSettings struct {
	Bytes    int
	Shared   bool
	TTL      time.Duration
	Bucket   string
	MaxBytes int
}

// DefaultModelName and DefaultModelDir name the model served when none is
// configured: the fp32 version in the model store `make deps` assembles.
const (
	DefaultModelName = "all-MiniLM-L6-v2"
	DefaultModelDir  = "models/" + DefaultModelName + "/fp32"
)

// VersionFromDir is the model version a directory of the model store
// models/<name>/<version>/ stands for: its base name when its parent is named
// after the model, else "1" (a directory outside the store).
func VersionFromDir(dir, name string) string {
	dir = filepath.Clean(dir)
	if base := filepath.Base(dir); filepath.Base(filepath.Dir(dir)) == name && base != "." && base != string(filepath.Separator) {
		return base
	}
	return "1"
}

// wrapCache puts the embedding cache in front of e when it is enabled
// (SIMMATCH_CACHE_BYTES > 0 or SIMMATCH_CACHE_SHARED); otherwise it returns
// e and a nil cache.
func (s *Config) wrapCache(e processor.Embedder, nc *nats.Conn, logger *slog.Logger, reg prometheus.Registerer) (processor.Embedder, *cache.Cache, error) {
	cs := s.Cache
	if cs.Bytes == 0 && !cs.Shared {
		logger.Info("embedding cache off")
		return e, nil, nil
	}
	cfg := cache.Config{Inner: e, Bytes: int64(cs.Bytes), Metrics: reg, Logger: logger}
	if cs.Shared {
		cfg.Shared = &cache.SharedConfig{NATS: nc, Bucket: cs.Bucket, TTL: cs.TTL, Replicas: s.JetStreamReplicas, MaxBytes: int64(cs.MaxBytes)}
	}
	c, err := cache.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	logger.Info("embedding cache on", "bytes", cs.Bytes, "shared", cs.Shared, "bucket", cs.Bucket, "ttl", cs.TTL)
	return c, c, nil
}

// catalogs returns the catalog service for nc, or nil when catalogs are off
// (or auto and the server has no JetStream).
func (s *Config) catalogs(nc *nats.Conn, emb processor.Embedder, logger *slog.Logger) (*catalog.Service, error) {
	switch s.Catalogs {
	case "off":
		return nil, nil
	case "on", "auto":
	default:
		return nil, fmt.Errorf("-catalogs %q: want on, off or auto", s.Catalogs)
	}
	svc, err := catalog.New(catalog.Config{NATS: nc, Embedder: emb, Replicas: s.JetStreamReplicas,
		MaxProducts: s.CatalogMaxProducts, MaxBytes: int64(s.CatalogMaxBytes), BucketMaxBytes: int64(s.JetStreamBucketMaxBytes),
		MemoryBytes: int64(s.CatalogMemoryBytes),
		TextLimits:  s.Limits, Logger: logger, Int8: splitList(s.CatalogInt8), Int8Dir: s.CatalogInt8Dir,
		ReembedCheck: s.CatalogReembedCheck, ReembedClaimTTL: s.CatalogReembedClaimTTL})
	if errors.Is(err, catalog.ErrNoJetStream) && s.Catalogs == "auto" {
		logger.Warn("catalogs are off: the NATS server has no JetStream (enable it, or set SIMMATCH_CATALOGS=off to silence this)", "err", err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("catalogs (SIMMATCH_CATALOGS=%s): %w", s.Catalogs, err)
	}
	return svc, nil
}

// jobsConn returns the jobs worker's connection, made with nc's options,
// when -jobs is on, or auto and the server has JetStream; nil when jobs are
// off. The caller closes it.
func (s *Config) jobsConn(nc *nats.Conn, logger *slog.Logger) (*nats.Conn, error) {
	switch s.Jobs {
	case "off":
		return nil, nil
	case "on", "auto":
	default:
		return nil, fmt.Errorf("-jobs %q: want on, off or auto", s.Jobs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A connection of its own: a JetStream call leaves a reply subscription
	// on its connection, and the processor's Stop waits for nc to have none.
	opts := nc.Opts
	opts.Name += " (jobs)"
	jnc, err := opts.Connect()
	if err != nil {
		return nil, fmt.Errorf("jobs: connect to NATS: %w", err)
	}
	js, err := jetstream.New(jnc)
	if err == nil {
		_, err = js.AccountInfo(ctx)
	}
	if err != nil {
		jnc.Close()
		if s.Jobs == "auto" {
			logger.Warn("jobs are off: the NATS server has no JetStream (enable it, or set SIMMATCH_JOBS=off to silence this)", "err", err)
			return nil, nil
		}
		return nil, fmt.Errorf("jobs need JetStream on the NATS server: %w", err)
	}
	return jnc, nil
}

// Node is a running processor with what it serves.
type Node struct {
	// Processor serves the requests.
	Processor *processor.Processor
	// Jobs works through the asynchronous jobs' chunks; nil when jobs are off.
	Jobs *jobs.Worker
	// closers stop what Start started, run last first by Stop.
	closers []func(context.Context) error
}

// onStop adds a closer: Stop runs them in the reverse order of Start.
func (n *Node) onStop(f func(context.Context) error) { n.closers = append(n.closers, f) }

// Stop stops everything Start started, last first: the jobs worker's chunks
// in hand finished and stored, then no new requests and every received one
// answered (the processor stops the catalogs), then model control, the
// jobs' connection, the cache's background writes, and each version's
// scheduler and model. It returns the first error.
func (n *Node) Stop(ctx context.Context) error {
	var err error
	for i := len(n.closers) - 1; i >= 0; i-- {
		if cerr := n.closers[i](ctx); err == nil {
			err = cerr
		}
	}
	n.closers = nil
	return err
}

// Start loads the model into a model registry (processor/models) and starts
// a processor on nc that serves it, each version behind the embedding cache
// when it is on, with catalogs and jobs when NATS has JetStream, and model
// control over NATS following the desired state in JetStream; metrics go to
// reg (none when nil). When Start fails, what it started is stopped.
func Start(nc *nats.Conn, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (_ *Node, err error) {
	s := &cfg
	if s.ORTLibrary == "" {
		return nil, fmt.Errorf("no ONNX Runtime library: set SIMMATCH_ORT_LIB or -ort-lib (`make run` does this for you)")
	}
	if s.ModelVersion == "" {
		s.ModelVersion = VersionFromDir(s.ModelDir, s.ModelName)
	}
	n := &Node{}
	defer func() {
		if err != nil {
			_ = n.Stop(context.Background())
		}
	}()
	logger.Info("loading model", "dir", s.ModelDir, "model", s.ModelName+"@"+s.ModelVersion, "ort_lib", s.ORTLibrary, "model_store", s.storeRoot())
	// The embedding cache, when on, sits in front of each version's
	// scheduler (keyed by the version): only its misses are queued and
	// batched. Versions load after c is set.
	var c *cache.Cache
	registry, err := models.New(models.Config{
		Root: s.storeRoot(), Library: s.ORTLibrary, IntraOpThreads: s.IntraOpThreads, Metrics: reg, Logger: logger,
		Scheduler: scheduler.Config{Pool: newPool(s.Workers), MaxBatchTokens: s.MaxBatchTokens,
			MaxQueuedTokens: s.MaxQueuedTokens, MaxWait: s.BatchWait, MaxQueueWait: s.MaxQueueWait},
		Wrap: func(e processor.Embedder) processor.Embedder {
			if c == nil {
				return e
			}
			return c.For(e)
		},
	})
	if err != nil {
		return nil, err
	}
	n.onStop(registry.Close)
	// The cache goes inside the registry (Wrap, per version), never around
	// it: a second layer keyed by the same version would wait on itself.
	if _, c, err = s.wrapCache(registry, nc, logger, reg); err != nil {
		return nil, err
	}
	if c != nil {
		n.onStop(c.Close)
	}
	if err := registry.Add(context.Background(), s.ModelName, s.ModelVersion, s.ModelDir); err != nil {
		return nil, err
	}
	// Catalogs embed with the default version, past the cache: a catalog's
	// descriptions are embedded once and would only evict useful entries.
	cats, err := s.catalogs(nc, registry.Direct(), logger)
	if err != nil {
		return nil, err
	}
	jnc, err := s.jobsConn(nc, logger)
	if err != nil {
		if cats != nil {
			_ = cats.Stop(context.Background())
		}
		return nil, err
	}
	if jnc != nil {
		n.onStop(func(context.Context) error { jnc.Close(); return nil })
	}
	// $SRV.STATS data: the model versions as they are now, and the cache.
	statsData := func() any {
		d := map[string]any{"models": registry.Status()}
		if c != nil {
			d["cache"] = c.Stats()
		}
		return d
	}
	pcfg := processor.Config{
		NATS: nc, Embedder: registry, Models: registry, QueueGroup: s.QueueGroup, Limits: s.Limits, Logger: logger,
		Metrics: reg, SimilarityThreshold: &s.SimilarityThreshold, MetricsTopK: s.MetricsTopK,
		StatsData: statsData,
	}
	if cats != nil { // a nil *catalog.Service in the interface would not be nil
		pcfg.Catalogs = cats
	}
	p, err := processor.Start(pcfg)
	if err != nil {
		if cats != nil {
			_ = cats.Stop(context.Background())
		}
		return nil, err
	}
	n.Processor = p
	// Control before the processor in the stack: Stop drains the processor
	// first, and control requests in flight need the watch of the desired state.
	ccfg := models.ControlConfig{NATS: nc, Registry: registry,
		Processor: p, Replicas: s.JetStreamReplicas, MaxBytes: int64(s.JetStreamBucketMaxBytes), Own: s.OwnDefault, Logger: logger}
	if cats != nil {
		ccfg.Catalogs = cats.State
	}
	ctl, err := models.StartControl(context.Background(), ccfg)
	if err != nil {
		_ = p.Stop(context.Background()) // stops the catalogs too
		return nil, err
	}
	n.onStop(func(context.Context) error { ctl.Stop(); return nil })
	n.onStop(p.Stop) // stops the catalogs too
	// The jobs worker after the processor, so it stops first: the chunks in
	// hand are finished and stored while the models still serve them.
	if jnc != nil {
		jcfg := jobs.Config{NATS: jnc, Embedder: registry, Logger: logger,
			Replicas: s.JetStreamReplicas, Retention: s.JobRetention, AckWait: s.JobAckWait,
			MatchChunkSize: s.JobMatchChunkSize, ChunksMaxBytes: int64(s.JobChunksMaxBytes), ResultsMaxBytes: int64(s.JobResultsMaxBytes),
			BucketMaxBytes: int64(s.JetStreamBucketMaxBytes)}
		if cats != nil { // match, dedupe and catalog query jobs
			jcfg.Catalogs = cats
		}
		w, err := jobs.Start(jcfg)
		if err != nil {
			return nil, err
		}
		n.Jobs = w
		n.onStop(w.Stop)
		if reg != nil {
			_ = reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "simmatch_jobs_chunks_total",
				Help: "Job chunks whose results this processor stored."}, func() float64 { return float64(w.Stats().Chunks) }))
			_ = reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "simmatch_jobs_chunks_redelivered_total",
				Help: "Job chunks this processor received that had been delivered before (to a processor that died, stopped or failed)."},
				func() float64 { return float64(w.Stats().Redelivered) }))
		}
	}
	if cats != nil && reg != nil {
		_ = reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "simmatch_catalogs_not_loaded",
			Help: "Stored catalogs this processor does not hold because they do not fit SIMMATCH_CATALOG_MEMORY_BYTES (their requests are answered 507)."},
			func() float64 { return float64(len(cats.State().NotLoaded)) }))
		_ = reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "simmatch_catalogs_memory_bytes",
			Help: "Memory the catalogs this processor follows take (matrices and keyword indexes), the figure SIMMATCH_CATALOG_MEMORY_BYTES bounds."},
			func() float64 { return float64(cats.MemoryBytes()) }))
	}
	if cats != nil {
		// Catalogs follow the desired default version: re-embedded in the
		// background when it changes.
		if err := cats.StartReembedding(ctl.DesiredDefault); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Cores is the process's GOMAXPROCS as Go set it (the CPUs, or the
// container's CPU quota), before Start raises it.
var Cores = runtime.GOMAXPROCS(0)

// newPool returns the lanes and gives Go one more P per lane. A lane spends
// its time inside ONNX Runtime (a cgo call), holding one of Go's Ps until
// the runtime hands it off; with as many lanes as Ps, the intake, the bridge
// and every refusal waited for such a handoff under load (HTTP 429 in 40 ms
// at the median, 340 ms p99, against 1.4 and 9 ms with the extra Ps). The
// lanes' OS threads run at a lower priority (scheduler.LaneNice), so the
// kernel still gives the cores to Go code first. GOMAXPROCS set in the
// environment is left alone.
func newPool(workers int) *scheduler.Pool {
	p := scheduler.NewPool(workers)
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), Cores+p.Size()))
	}
	return p
}

// splitList splits a comma-separated list, dropping empty items and spaces.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
