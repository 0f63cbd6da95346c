// Package procflags holds the processor's settings, shared by the
// simmatch-processor command and the all-in-one simmatch command.
package procflags

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor"
)

// Settings configure one processor and its model.
type Settings struct {
	ModelDir, ModelName, ModelVersion string
	ORTLibrary                        string
	Workers, IntraOpThreads           int
	BatchSize, QueueSize              int
	QueueGroup                        string
	Limits                            contracts.Limits
	// SimilarityThreshold and MetricsTopK tune the model metrics
	// (processor.Config.SimilarityThreshold and MetricsTopK).
	SimilarityThreshold float64
	MetricsTopK         int
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
	f.Int(&s.Workers, "workers", "SIMMATCH_WORKERS", runtime.GOMAXPROCS(0), "requests run at once (default: the number of cores)")
	f.Int(&s.IntraOpThreads, "intra-op-threads", "SIMMATCH_INTRA_OP_THREADS", 1, "ONNX Runtime threads per inference; workers x threads should not exceed the cores")
	f.Int(&s.BatchSize, "batch-size", "SIMMATCH_BATCH_SIZE", 32, "most texts per ONNX Runtime run")
	f.Int(&s.QueueSize, "queue-size", "SIMMATCH_QUEUE_SIZE", 0, "accepted requests that may wait for a worker before new ones get 'overloaded' (default 64 per worker)")
	f.String(&s.QueueGroup, "queue-group", "SIMMATCH_QUEUE_GROUP", contracts.DefaultQueueGroup, "NATS queue group the processors share")
	f.Float64(&s.SimilarityThreshold, "similarity-threshold", "SIMMATCH_SIMILARITY_THRESHOLD", processor.DefaultSimilarityThreshold,
		"score at or above which a match counts in simmatch_model_matches_above_threshold_total (metrics only; answers are not filtered)")
	f.Int(&s.MetricsTopK, "metrics-top-k", "SIMMATCH_METRICS_TOP_K", processor.DefaultMetricsTopK,
		"how many of each query's best scores simmatch_model_topk_similarity averages")
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
		IntraOpThreads: s.IntraOpThreads, BatchSize: s.BatchSize,
	})
	if err != nil {
		return nil, err
	}
	p, err := processor.Start(processor.Config{
		NATS: nc, Embedder: m, QueueGroup: s.QueueGroup,
		Workers: s.Workers, QueueSize: s.QueueSize, Limits: s.Limits, Logger: logger,
		Metrics: reg, SimilarityThreshold: &s.SimilarityThreshold, MetricsTopK: s.MetricsTopK,
	})
	if err != nil {
		m.Close()
		return nil, err
	}
	return func(ctx context.Context) error {
		err := p.Stop(ctx)
		if cerr := m.Close(); err == nil {
			err = cerr
		}
		return err
	}, nil
}
