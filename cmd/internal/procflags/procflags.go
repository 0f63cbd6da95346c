// Package procflags holds the processor's flags, shared by the
// simmatch-processor command and the all-in-one simmatch command; the
// processor itself is built by processor/node.
package procflags

import (
	"fmt"
	"time"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/cache"
	"github.com/simmatch/simmatch/processor/catalog"
	"github.com/simmatch/simmatch/processor/jobs/jobstore"
	"github.com/simmatch/simmatch/processor/node"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// Settings are a processor's settings (node.Config), set from flags.
type Settings struct{ node.Config }

// Register adds the processor flags to f. Limits are registered separately
// (cli.Flags.Limits) because the all-in-one shares them with the bridge.
func (s *Settings) Register(f *cli.Flags) {
	f.String(&s.ModelDir, "model-dir", "SIMMATCH_MODEL_DIR", node.DefaultModelDir, "model directory in the sentence-transformers ONNX layout (a version of the model store models/<name>/<version>/)")
	f.String(&s.ModelName, "model-name", "SIMMATCH_MODEL_NAME", node.DefaultModelName, "model name reported in responses")
	f.String(&s.ModelVersion, "model-version", "SIMMATCH_MODEL_VERSION", "", "model version reported in responses (default: the model directory's name when it is <name>/<version>, else \"1\")")
	f.String(&s.ModelStore, "model-store", "SIMMATCH_MODEL_STORE", "",
		"model store holding <name>/<version>/ directories that /v1/models/load and switch load from (default: the store -model-dir is a version of, else models/)")
	f.String(&s.ORTLibrary, "ort-lib", "SIMMATCH_ORT_LIB", "", "path of libonnxruntime.so (ONNX Runtime 1.30); `make deps` fetches it")
	f.Int(&s.Workers, "workers", "SIMMATCH_WORKERS", node.Cores,
		"lanes: batches run at once; a lone request is split across idle lanes (default: the number of cores)")
	f.Int(&s.IntraOpThreads, "intra-op-threads", "SIMMATCH_INTRA_OP_THREADS", 1,
		"ONNX Runtime threads per batch; workers x threads should not exceed the cores")
	f.Int(&s.MaxBatchTokens, "max-batch-tokens", "SIMMATCH_MAX_BATCH_TOKENS", 0,
		fmt.Sprintf("most padded tokens (rows x longest text) per batch; 0: the model version's hint (its simmatch.json), else %d", scheduler.DefaultMaxBatchTokens))
	f.Int(&s.MaxQueuedTokens, "max-queued-tokens", "SIMMATCH_MAX_QUEUED_TOKENS", scheduler.DefaultMaxQueuedTokens,
		"tokens that may wait for a lane; a request beyond is answered 'overloaded' (429)")
	f.Duration(&s.MaxQueueWait, "max-queue-wait", "SIMMATCH_MAX_QUEUE_WAIT", scheduler.DefaultMaxQueueWait,
		"longest wait for the work ahead that admission accepts (at the measured speed); a request that would wait longer is answered 'overloaded' (429); 0: only the request's deadline bounds it")
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
	f.Int(&s.CatalogMaxBytes, "catalog-max-bytes", catalog.SettingMaxBytes, catalog.DefaultMaxBytes,
		"bytes each catalog's JetStream stream may hold; a full catalog refuses new writes (507 insufficient_storage naming this setting)")
	f.Int(&s.CatalogMemoryBytes, "catalog-memory-bytes", catalog.SettingMemoryBytes, 0,
		"bytes of catalog matrices and keyword indexes this processor may hold in memory; an upsert beyond is refused (507), and at start the catalogs that do not fit are not loaded (reported in /ready and simmatch_catalogs_not_loaded); 0: unbounded")
	f.Int(&s.JetStreamBucketMaxBytes, "jetstream-bucket-max-bytes", jobstore.SettingBucketMaxBytes, jobstore.DefaultBucketMaxBytes,
		"bytes each key-value bucket the processor creates may hold: jobs, desired models, re-embedding claims (the shared cache has -cache-shared-bytes)")
	f.String(&s.CatalogInt8, "catalog-int8", "SIMMATCH_CATALOG_INT8", "",
		"catalogs (comma-separated names, or * for all) whose matrix is int8: a quarter of the memory and a faster scan, the best candidates rescored exactly from float32 rows kept in a file")
	f.String(&s.CatalogInt8Dir, "catalog-int8-dir", "SIMMATCH_CATALOG_INT8_DIR", "",
		"directory of the int8 catalogs' exact float32 rows (unlinked files; default the system temp directory: use a disk, not a tmpfs)")
	f.String(&s.Jobs, "jobs", "SIMMATCH_JOBS", "auto", "asynchronous jobs worker: on (fail without JetStream), off, or auto (on when NATS has JetStream)")
	f.Duration(&s.JobRetention, "job-retention", "SIMMATCH_JOB_RETENTION", 24*time.Hour, "how long jobs and their results are kept")
	f.Duration(&s.JobAckWait, "job-ack-wait", "SIMMATCH_JOB_ACK_WAIT", 30*time.Second, "how long a job chunk may go without a heartbeat before another processor gets it")
	f.Int(&s.JobChunksMaxBytes, "job-chunks-max-bytes", jobstore.SettingChunksMaxBytes, jobstore.DefaultChunksMaxBytes,
		"bytes the stream of job chunks waiting for a processor may hold; a submission beyond is refused")
	f.Int(&s.JobResultsMaxBytes, "job-results-max-bytes", jobstore.SettingResultsMaxBytes, jobstore.DefaultResultsMaxBytes,
		"bytes the stream of job results may hold; a chunk whose result does not fit is retried, then its job fails naming this setting")
	f.Int(&s.JobMatchChunkSize, "job-match-chunk-size", "SIMMATCH_JOB_MATCH_CHUNK_SIZE", contracts.DefaultMatchChunkSize,
		"most source products of one match or dedupe job chunk (fewer when their results could outgrow a NATS message)")
	f.Duration(&s.CatalogReembedCheck, "catalog-reembed-check", "SIMMATCH_CATALOG_REEMBED_CHECK", catalog.DefaultReembedCheck, "how often a processor compares each catalog's model version with the desired default, to re-embed it after a switch")
	f.Duration(&s.CatalogReembedClaimTTL, "catalog-reembed-claim-ttl", "SIMMATCH_CATALOG_REEMBED_CLAIM_TTL", catalog.DefaultReembedClaimTTL, "how long a processor that died while re-embedding a catalog keeps its claim before another takes the work over")
}
