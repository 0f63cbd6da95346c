// Package procflags holds the processor's settings, shared by the
// simmatch-processor command and the all-in-one simmatch command.
package procflags

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/cache"
	"github.com/simmatch/simmatch/processor/catalog"
	"github.com/simmatch/simmatch/processor/models"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// Settings configure one processor and its model.
type Settings struct {
	ModelDir, ModelName, ModelVersion string
	ORTLibrary                        string
	// Workers is the lanes: batches run at once (scheduler.NewPool).
	Workers, IntraOpThreads int
	// MaxBatchTokens, MaxQueuedTokens and BatchWait configure the scheduler.
	MaxBatchTokens, MaxQueuedTokens int
	BatchWait                       time.Duration
	QueueGroup                      string
	Limits                          contracts.Limits
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
	// CatalogReembedCheck and CatalogReembedClaimTTL pace the background
	// re-embedding of catalogs after a switch of the default version.
	CatalogReembedCheck    time.Duration
	CatalogReembedClaimTTL time.Duration
	// ModelStore is the model store models.Config.Root; empty: the store
	// -model-dir is a version of (two levels up), else "models".
	ModelStore string
	// Jobs: on (JetStream required), off, or auto (on when the NATS server
	// has JetStream). JetStreamReplicas, JobRetention and JobAckWait
	// configure the jobs' streams (processor.JobsConfig).
	Jobs         string
	JobRetention time.Duration
	JobAckWait   time.Duration
	// OwnDefault makes the model loaded at start the recorded default of
	// the desired state, over one recorded before (models.ControlConfig.Own):
	// the all-in-one sets it when its model was given explicitly. Without
	// it the processor follows the recorded default.
	OwnDefault bool
}

// storeRoot is the model store: ModelStore, else the store ModelDir is a
// version of, else "models".
func (s *Settings) storeRoot() string {
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

// Register adds the processor flags to f. Limits are registered separately
// (cli.Flags.Limits) because the all-in-one shares them with the bridge.
func (s *Settings) Register(f *cli.Flags) {
	f.String(&s.ModelDir, "model-dir", "SIMMATCH_MODEL_DIR", DefaultModelDir, "model directory in the sentence-transformers ONNX layout (a version of the model store models/<name>/<version>/)")
	f.String(&s.ModelName, "model-name", "SIMMATCH_MODEL_NAME", DefaultModelName, "model name reported in responses")
	f.String(&s.ModelVersion, "model-version", "SIMMATCH_MODEL_VERSION", "", "model version reported in responses (default: the model directory's name when it is <name>/<version>, else \"1\")")
	f.String(&s.ModelStore, "model-store", "SIMMATCH_MODEL_STORE", "",
		"model store holding <name>/<version>/ directories that /v1/models/load and switch load from (default: the store -model-dir is a version of, else models/)")
	f.String(&s.ORTLibrary, "ort-lib", "SIMMATCH_ORT_LIB", "", "path of libonnxruntime.so (ONNX Runtime 1.30); `make deps` fetches it")
	f.Int(&s.Workers, "workers", "SIMMATCH_WORKERS", cores,
		"lanes: batches run at once; a lone request is split across idle lanes (default: the number of cores)")
	f.Int(&s.IntraOpThreads, "intra-op-threads", "SIMMATCH_INTRA_OP_THREADS", 1,
		"ONNX Runtime threads per batch; workers x threads should not exceed the cores")
	f.Int(&s.MaxBatchTokens, "max-batch-tokens", "SIMMATCH_MAX_BATCH_TOKENS", 0,
		fmt.Sprintf("most padded tokens (rows x longest text) per batch; 0: the model version's hint (its simmatch.json), else %d", scheduler.DefaultMaxBatchTokens))
	f.Int(&s.MaxQueuedTokens, "max-queued-tokens", "SIMMATCH_MAX_QUEUED_TOKENS", scheduler.DefaultMaxQueuedTokens,
		"tokens that may wait for a lane; a request beyond is answered 'overloaded' (429)")
	f.Duration(&s.BatchWait, "batch-wait", "SIMMATCH_BATCH_WAIT", 0,
		"how long a batch that is not full may wait for more texts; 0: run at once")
	f.String(&s.QueueGroup, "queue-group", "SIMMATCH_QUEUE_GROUP", contracts.DefaultQueueGroup, "NATS queue group the processors share")
	f.Float64(&s.SimilarityThreshold, "similarity-threshold", "SIMMATCH_SIMILARITY_THRESHOLD", processor.DefaultSimilarityThreshold,
		"score at or above which a match counts in simmatch_model_matches_above_threshold_total (metrics only; answers are not filtered)")
	f.Int(&s.MetricsTopK, "metrics-top-k", "SIMMATCH_METRICS_TOP_K", processor.DefaultMetricsTopK,
		"how many of each query's best scores simmatch_model_topk_similarity averages")
	f.Int(&s.Cache.Bytes, "cache-bytes", "SIMMATCH_CACHE_BYTES", cache.DefaultBytes,
		"bytes of embeddings each processor keeps in memory (texts, vectors and bookkeeping counted); 0: none")
	f.Bool(&s.Cache.Shared, "cache-shared", "SIMMATCH_CACHE_SHARED", false,
		"also share embeddings between processors in a NATS JetStream key-value bucket (needs JetStream)")
	f.Duration(&s.Cache.TTL, "cache-ttl", "SIMMATCH_CACHE_TTL", cache.DefaultTTL, "how long an embedding stays in the shared bucket")
	f.String(&s.Cache.Bucket, "cache-bucket", "SIMMATCH_CACHE_BUCKET", cache.DefaultBucket, "the shared bucket's name")
	f.Int(&s.Cache.MaxBytes, "cache-shared-bytes", "SIMMATCH_CACHE_SHARED_BYTES", cache.DefaultSharedBytes,
		"the shared bucket's size limit; when full, new embeddings are not shared until old ones expire")
	f.Int(&s.JetStreamReplicas, "jetstream-replicas", "SIMMATCH_JETSTREAM_REPLICAS", 1, "replicas of the JetStream buckets and streams the processor creates: the shared cache, the catalogs, the desired model state simmatch_models (3 in a 3-node cluster)")
	f.String(&s.Catalogs, "catalogs", "SIMMATCH_CATALOGS", "auto", "stored catalogs (simmatch.catalog.*): on (fail without JetStream), off, or auto (on when NATS has JetStream)")
	f.Int(&s.CatalogMaxProducts, "catalog-max-products", "SIMMATCH_CATALOG_MAX_PRODUCTS", catalog.DefaultMaxProducts, "most products one catalog may hold")
	f.String(&s.Jobs, "jobs", "SIMMATCH_JOBS", "auto", "asynchronous jobs worker: on (fail without JetStream), off, or auto (on when NATS has JetStream)")
	f.Duration(&s.JobRetention, "job-retention", "SIMMATCH_JOB_RETENTION", 24*time.Hour, "how long jobs and their results are kept")
	f.Duration(&s.JobAckWait, "job-ack-wait", "SIMMATCH_JOB_ACK_WAIT", 30*time.Second, "how long a job chunk may go without a heartbeat before another processor gets it")
	f.Duration(&s.CatalogReembedCheck, "catalog-reembed-check", "SIMMATCH_CATALOG_REEMBED_CHECK", catalog.DefaultReembedCheck, "how often a processor compares each catalog's model version with the desired default, to re-embed it after a switch")
	f.Duration(&s.CatalogReembedClaimTTL, "catalog-reembed-claim-ttl", "SIMMATCH_CATALOG_REEMBED_CLAIM_TTL", catalog.DefaultReembedClaimTTL, "how long a processor that died while re-embedding a catalog keeps its claim before another takes the work over")
}

// wrapCache puts the embedding cache in front of e when it is enabled
// (SIMMATCH_CACHE_BYTES > 0 or SIMMATCH_CACHE_SHARED); otherwise it returns
// e and a nil cache.
func (s *Settings) wrapCache(e processor.Embedder, nc *nats.Conn, logger *slog.Logger, reg prometheus.Registerer) (processor.Embedder, *cache.Cache, error) {
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
func (s *Settings) catalogs(nc *nats.Conn, emb processor.Embedder, logger *slog.Logger) (*catalog.Service, error) {
	switch s.Catalogs {
	case "off":
		return nil, nil
	case "on", "auto":
	default:
		return nil, fmt.Errorf("-catalogs %q: want on, off or auto", s.Catalogs)
	}
	svc, err := catalog.New(catalog.Config{NATS: nc, Embedder: emb, Replicas: s.JetStreamReplicas,
		MaxProducts: s.CatalogMaxProducts, TextLimits: s.Limits, Logger: logger,
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

// jobs returns the jobs worker's configuration: enabled when -jobs is on,
// or auto and the server has JetStream.
func (s *Settings) jobs(nc *nats.Conn, logger *slog.Logger) (processor.JobsConfig, error) {
	cfg := processor.JobsConfig{Replicas: s.JetStreamReplicas, Retention: s.JobRetention, AckWait: s.JobAckWait}
	switch s.Jobs {
	case "off":
		return cfg, nil
	case "on", "auto":
	default:
		return cfg, fmt.Errorf("-jobs %q: want on, off or auto", s.Jobs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A connection of its own: a JetStream call leaves a reply subscription
	// on its connection, and the processor's Stop waits for nc to have none.
	opts := nc.Opts
	probe, err := opts.Connect()
	if err != nil {
		return cfg, fmt.Errorf("jobs: connect to NATS: %w", err)
	}
	defer probe.Close()
	js, err := jetstream.New(probe)
	if err == nil {
		_, err = js.AccountInfo(ctx)
	}
	if err != nil {
		if s.Jobs == "auto" {
			logger.Warn("jobs are off: the NATS server has no JetStream (enable it, or set SIMMATCH_JOBS=off to silence this)", "err", err)
			return cfg, nil
		}
		return cfg, fmt.Errorf("jobs need JetStream on the NATS server: %w", err)
	}
	cfg.Enabled = true
	return cfg, nil
}

// Start loads the model into a model registry (processor/models) and starts
// a processor on nc that serves it, each version behind the embedding cache
// when it is on, with model control over NATS following the desired state
// in JetStream when the server has it; metrics go to reg (none when nil).
// The returned stop function stops control, drains the processor, then
// closes the cache and frees every model version.
func (s *Settings) Start(nc *nats.Conn, logger *slog.Logger, reg prometheus.Registerer) (stop func(context.Context) error, err error) {
	if s.ORTLibrary == "" {
		return nil, fmt.Errorf("no ONNX Runtime library: set SIMMATCH_ORT_LIB or -ort-lib (`make run` does this for you)")
	}
	if s.ModelVersion == "" {
		s.ModelVersion = VersionFromDir(s.ModelDir, s.ModelName)
	}
	logger.Info("loading model", "dir", s.ModelDir, "model", s.ModelName+"@"+s.ModelVersion, "ort_lib", s.ORTLibrary, "model_store", s.storeRoot())
	// The embedding cache, when on, sits in front of each version's
	// scheduler (keyed by the version): only its misses are queued and
	// batched. Versions load after c is set.
	var c *cache.Cache
	registry, err := models.New(models.Config{
		Root: s.storeRoot(), Library: s.ORTLibrary, IntraOpThreads: s.IntraOpThreads, Metrics: reg, Logger: logger,
		Scheduler: scheduler.Config{Pool: newPool(s.Workers), MaxBatchTokens: s.MaxBatchTokens,
			MaxQueuedTokens: s.MaxQueuedTokens, MaxWait: s.BatchWait},
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
	// The cache goes inside the registry (Wrap, per version), never around
	// it: a second layer keyed by the same version would wait on itself.
	_, c, err = s.wrapCache(registry, nc, logger, reg)
	if err != nil {
		return nil, err
	}
	var cats *catalog.Service
	closeAll := func() {
		if cats != nil {
			_ = cats.Stop(context.Background())
		}
		if c != nil {
			_ = c.Close(context.Background())
		}
		_ = registry.Close(context.Background())
	}
	if err := registry.Add(context.Background(), s.ModelName, s.ModelVersion, s.ModelDir); err != nil {
		closeAll()
		return nil, err
	}
	// Catalogs embed with the default version, past the cache: a catalog's
	// descriptions are embedded once and would only evict useful entries.
	if cats, err = s.catalogs(nc, registry.Direct(), logger); err != nil {
		closeAll()
		return nil, err
	}
	jobs, err := s.jobs(nc, logger)
	if err != nil {
		closeAll()
		return nil, err
	}
	// $SRV.STATS data: the model versions as they are now, and the cache.
	statsData := func() any {
		d := map[string]any{"models": registry.Status()}
		if c != nil {
			d["cache"] = c.Stats()
		}
		return d
	}
	cfg := processor.Config{
		Jobs: jobs,
		NATS: nc, Embedder: registry, Models: registry, QueueGroup: s.QueueGroup, Limits: s.Limits, Logger: logger,
		Metrics: reg, SimilarityThreshold: &s.SimilarityThreshold, MetricsTopK: s.MetricsTopK,
		StatsData: statsData,
	}
	if cats != nil { // a nil *catalog.Service in the interface would not be nil
		cfg.Catalogs = cats
	}
	p, err := processor.Start(cfg)
	if err != nil {
		closeAll()
		return nil, err
	}
	ctl, err := models.StartControl(context.Background(), models.ControlConfig{NATS: nc, Registry: registry,
		Processor: p, Replicas: s.JetStreamReplicas, Own: s.OwnDefault, Logger: logger})
	if err != nil {
		_ = p.Stop(context.Background()) // stops the catalogs too
		cats = nil
		closeAll()
		return nil, err
	}
	if cats != nil {
		// Catalogs follow the desired default version: re-embedded in the
		// background when it changes.
		if err := cats.StartReembedding(ctl.DesiredDefault); err != nil {
			ctl.Stop()
			_ = p.Stop(context.Background())
			cats = nil
			closeAll()
			return nil, err
		}
	}
	return func(ctx context.Context) error {
		// In order: no new requests and every received one answered (the
		// processor stops the catalogs; control requests in flight need the
		// watch of the desired state), then control, then the cache's
		// background writes, then each version's scheduler and model.
		err := p.Stop(ctx)
		ctl.Stop()
		if c != nil {
			if cerr := c.Close(ctx); err == nil {
				err = cerr
			}
		}
		if cerr := registry.Close(ctx); err == nil {
			err = cerr
		}
		return err
	}, nil
}

// cores is the process's GOMAXPROCS as Go set it (the CPUs, or the
// container's CPU quota), before newPool raises it.
var cores = runtime.GOMAXPROCS(0)

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
		runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), cores+p.Size()))
	}
	return p
}
