// Package procflags holds the processor's settings, shared by the
// simmatch-processor command and the all-in-one simmatch command.
package procflags

import (
	"context"
	"fmt"
	"log/slog"
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
	// processor creates (the shared cache bucket).
	JetStreamReplicas int
	// Jobs: on (JetStream required), off, or auto (on when the NATS server
	// has JetStream). JetStreamReplicas, JobRetention and JobAckWait
	// configure the jobs' streams (processor.JobsConfig).
	Jobs         string
	JobRetention time.Duration
	JobAckWait   time.Duration
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
	f.String(&s.ORTLibrary, "ort-lib", "SIMMATCH_ORT_LIB", "", "path of libonnxruntime.so (ONNX Runtime 1.30); `make deps` fetches it")
	f.Int(&s.Workers, "workers", "SIMMATCH_WORKERS", runtime.GOMAXPROCS(0),
		"lanes: batches run at once; a lone request is split across idle lanes (default: the number of cores)")
	f.Int(&s.IntraOpThreads, "intra-op-threads", "SIMMATCH_INTRA_OP_THREADS", 1,
		"ONNX Runtime threads per batch; workers x threads should not exceed the cores")
	f.Int(&s.MaxBatchTokens, "max-batch-tokens", "SIMMATCH_MAX_BATCH_TOKENS", scheduler.DefaultMaxBatchTokens,
		"most padded tokens (rows x longest text) per batch")
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
	f.Int(&s.JetStreamReplicas, "jetstream-replicas", "SIMMATCH_JETSTREAM_REPLICAS", 1, "replicas of the JetStream buckets the processor creates (3 in a 3-node cluster)")
	f.String(&s.Jobs, "jobs", "SIMMATCH_JOBS", "auto", "asynchronous jobs worker: on (fail without JetStream), off, or auto (on when NATS has JetStream)")
	f.Duration(&s.JobRetention, "job-retention", "SIMMATCH_JOB_RETENTION", 24*time.Hour, "how long jobs and their results are kept")
	f.Duration(&s.JobAckWait, "job-ack-wait", "SIMMATCH_JOB_ACK_WAIT", 30*time.Second, "how long a job chunk may go without a heartbeat before another processor gets it")
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

// Start loads the model and starts a processor on nc that registers its
// metrics on reg (none when nil). The returned stop function drains the
// processor, then frees the model.
func (s *Settings) Start(nc *nats.Conn, logger *slog.Logger, reg prometheus.Registerer) (stop func(context.Context) error, err error) {
	if s.ORTLibrary == "" {
		return nil, fmt.Errorf("no ONNX Runtime library: set SIMMATCH_ORT_LIB or -ort-lib (`make run` does this for you)")
	}
	if s.ModelVersion == "" {
		s.ModelVersion = VersionFromDir(s.ModelDir, s.ModelName)
	}
	logger.Info("loading model", "dir", s.ModelDir, "model", s.ModelName+"@"+s.ModelVersion, "ort_lib", s.ORTLibrary)
	m, err := processor.LoadModel(processor.ModelOptions{
		Dir: s.ModelDir, Library: s.ORTLibrary, Name: s.ModelName, Version: s.ModelVersion,
		IntraOpThreads: s.IntraOpThreads,
	})
	if err != nil {
		return nil, err
	}
	sched, err := scheduler.New(scheduler.Config{
		Model: m, Pool: scheduler.NewPool(s.Workers), MaxBatchTokens: s.MaxBatchTokens,
		MaxQueuedTokens: s.MaxQueuedTokens, MaxWait: s.BatchWait, Metrics: reg, Logger: logger,
	})
	if err != nil {
		m.Close()
		return nil, err
	}
	// The embedding cache, when on, sits in front of the scheduler: only
	// its misses are queued and batched.
	emb, c, err := s.wrapCache(sched, nc, logger, reg)
	if err != nil {
		_ = sched.Close(context.Background())
		m.Close()
		return nil, err
	}
	jobs, err := s.jobs(nc, logger)
	if err != nil {
		if c != nil {
			_ = c.Close(context.Background())
		}
		_ = sched.Close(context.Background())
		m.Close()
		return nil, err
	}
	var statsData func() any
	if c != nil {
		statsData = func() any { return map[string]any{"cache": c.Stats()} }
	}
	p, err := processor.Start(processor.Config{
		Jobs: jobs, Tokens: m,
		NATS: nc, Embedder: emb, QueueGroup: s.QueueGroup, Limits: s.Limits, Logger: logger,
		Metrics: reg, SimilarityThreshold: &s.SimilarityThreshold, MetricsTopK: s.MetricsTopK,
		StatsData: statsData,
	})
	if err != nil {
		if c != nil {
			_ = c.Close(context.Background())
		}
		_ = sched.Close(context.Background())
		m.Close()
		return nil, err
	}
	return func(ctx context.Context) error {
		// In order: no new requests and every received one answered, then
		// the cache's background writes, the scheduler's last batch, then the model.
		err := p.Stop(ctx)
		if c != nil {
			if cerr := c.Close(ctx); err == nil {
				err = cerr
			}
		}
		if cerr := sched.Close(ctx); err == nil {
			err = cerr
		}
		if cerr := m.Close(); err == nil {
			err = cerr
		}
		return err
	}, nil
}
