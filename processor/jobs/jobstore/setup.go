package jobstore

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
)

// DefaultRetention and DefaultAckWait are SetupConfig's defaults.
const (
	DefaultRetention = 24 * time.Hour
	DefaultAckWait   = 30 * time.Second
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
}

// Assets are the jobs' JetStream assets a processor works with.
type Assets struct {
	// Bucket holds each job's contracts.JobMeta by id.
	Bucket jetstream.KeyValue
	// Results is the stream of stored chunk results.
	Results jetstream.Stream
	// Chunks is the durable consumer of the chunks waiting for a processor.
	Chunks jetstream.Consumer
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
	})
	if err != nil {
		return nil, fmt.Errorf("jobstore: stream %s: %w", contracts.JobChunksStream, err)
	}
	res, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: contracts.JobResultsStream, Description: "simmatch job results, one message per chunk",
		Subjects: []string{contracts.SubjectJobResultPrefix + "*.*"}, MaxMsgsPerSubject: 1,
		Replicas: cfg.Replicas, MaxAge: cfg.Retention, Duplicates: dedup,
	})
	if err != nil {
		return nil, fmt.Errorf("jobstore: stream %s: %w", contracts.JobResultsStream, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: contracts.JobsBucket, Description: "simmatch jobs", TTL: cfg.Retention, Replicas: cfg.Replicas,
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
	return &Assets{Bucket: kv, Results: res, Chunks: cons}, nil
}
