package jobstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
)

// DefaultRetention, DefaultAckWait and the Default*MaxBytes are
// SetupConfig's defaults: generous, but finite, so that the jobs cannot fill
// the JetStream volume the catalogs share.
const (
	DefaultRetention = 24 * time.Hour
	DefaultAckWait   = 30 * time.Second
	// DefaultChunksMaxBytes bounds the stream of chunks waiting for a processor.
	DefaultChunksMaxBytes = 2 << 30
	// DefaultResultsMaxBytes bounds the stream of stored chunk results.
	DefaultResultsMaxBytes = 8 << 30
	// DefaultBucketMaxBytes bounds the jobs' key-value bucket (and the
	// processor's other small buckets).
	DefaultBucketMaxBytes = 256 << 20
)

// The settings that bound the jobs' assets, named in the errors of a write
// refused for space.
const (
	SettingChunksMaxBytes  = "SIMMATCH_JOB_CHUNKS_MAX_BYTES"
	SettingResultsMaxBytes = "SIMMATCH_JOB_RESULTS_MAX_BYTES"
	SettingBucketMaxBytes  = "SIMMATCH_JETSTREAM_BUCKET_MAX_BYTES"
)

// SetupConfig is the layout of the jobs' JetStream assets.
type SetupConfig struct {
	// Replicas of the streams and the bucket; default 1.
	Replicas int
	// Retention is how long jobs and their results are kept; default DefaultRetention.
	Retention time.Duration
	// AckWait is how long a chunk may go without a sign of life from the
	// processor holding it before it is given to another; default DefaultAckWait.
	AckWait time.Duration
	// ChunksMaxBytes, ResultsMaxBytes and BucketMaxBytes bound the chunks
	// stream, the results stream and the jobs bucket; defaults
	// DefaultChunksMaxBytes, DefaultResultsMaxBytes, DefaultBucketMaxBytes.
	// A full stream refuses new writes (DiscardNew): a job refused at
	// submission, or a chunk whose result cannot be stored, says so, rather
	// than the stream silently dropping the results of older jobs.
	ChunksMaxBytes, ResultsMaxBytes, BucketMaxBytes int64
}

func (c *SetupConfig) defaults() {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.ChunksMaxBytes <= 0 {
		c.ChunksMaxBytes = DefaultChunksMaxBytes
	}
	if c.ResultsMaxBytes <= 0 {
		c.ResultsMaxBytes = DefaultResultsMaxBytes
	}
	if c.BucketMaxBytes <= 0 {
		c.BucketMaxBytes = DefaultBucketMaxBytes
	}
}

// Assets are the jobs' JetStream assets a processor works with.
type Assets struct {
	// Bucket holds each job's contracts.JobMeta by id.
	Bucket jetstream.KeyValue
	// Results is the stream of stored chunk results.
	Results jetstream.Stream
	// Chunks is the durable consumer of the chunks waiting for a processor.
	Chunks jetstream.Consumer
	// Config is the layout set up, defaults filled in (its MaxBytes name
	// the limits in the errors of writes refused for space).
	Config SetupConfig
}

// Setup makes (or updates) the streams, bucket and consumer of jobs. The
// processors call it: they know the replica count, and Jobs answers
// no_processor until one has.
func Setup(ctx context.Context, js jetstream.JetStream, cfg SetupConfig) (*Assets, error) {
	cfg.defaults()
	// The duplicate window may not outlast the messages.
	dedup := min(2*time.Minute, cfg.Retention)
	chunks, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: contracts.JobChunksStream, Description: "simmatch job chunks waiting for a processor",
		Subjects: []string{contracts.SubjectJobChunkPrefix + "*"}, Retention: jetstream.WorkQueuePolicy,
		Replicas: cfg.Replicas, MaxAge: cfg.Retention, Duplicates: dedup,
		MaxBytes: cfg.ChunksMaxBytes, Discard: jetstream.DiscardNew,
	})
	if err != nil {
		return nil, fmt.Errorf("jobstore: stream %s: %w", contracts.JobChunksStream, err)
	}
	res, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: contracts.JobResultsStream, Description: "simmatch job results, one message per chunk",
		Subjects: []string{contracts.SubjectJobResultPrefix + "*.*"}, MaxMsgsPerSubject: 1,
		Replicas: cfg.Replicas, MaxAge: cfg.Retention, Duplicates: dedup,
		MaxBytes: cfg.ResultsMaxBytes, Discard: jetstream.DiscardNew,
	})
	if err != nil {
		return nil, fmt.Errorf("jobstore: stream %s: %w", contracts.JobResultsStream, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: contracts.JobsBucket, Description: "simmatch jobs", TTL: cfg.Retention, Replicas: cfg.Replicas,
		MaxBytes: cfg.BucketMaxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("jobstore: bucket %s: %w", contracts.JobsBucket, err)
	}
	cons, err := chunks.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: contracts.JobsConsumer, AckPolicy: jetstream.AckExplicitPolicy,
		// Chunks refused as overloaded come back as often as needed; the
		// worker counts real failures against its own maximum (processor/jobs).
		AckWait: cfg.AckWait, MaxDeliver: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("jobstore: consumer %s: %w", contracts.JobsConsumer, err)
	}
	return &Assets{Bucket: kv, Results: res, Chunks: cons, Config: cfg}, nil
}

// Full reports whether err is JetStream refusing a write because a stream
// or bucket reached its MaxBytes (or the account or server its storage).
func Full(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrMaxBytesExceeded) {
		return true
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "maximum bytes exceeded") || strings.Contains(msg, "insufficient resources") ||
		strings.Contains(msg, "insufficient storage")
}

// FullError is the answer to a write refused for space: insufficient_storage
// (507) naming the setting that bounds what, and its value. Other errors
// come back as they are.
func FullError(err error, what, setting string, limit int64) error {
	if !Full(err) {
		return err
	}
	return &contracts.Error{Code: contracts.CodeInsufficientStorage, Limit: int(limit),
		Message: fmt.Sprintf("%s is full: it may hold %d bytes (%s); raise the setting, or wait for older entries to expire: %v", what, limit, setting, err)}
}
