// Package jobs is a processor's asynchronous jobs worker: it pulls job chunks
// from JetStream (contracts.JobChunksStream), embeds their queries and the
// job's descriptions, ranks them as the similarity endpoint does
// (processor.Rank) and stores each chunk's results. The store's layout and
// its clients are in processor/jobs/jobstore; the wire types in contracts.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/embedding"
	"github.com/simmatch/simmatch/processor/internal/vecmath"
	"github.com/simmatch/simmatch/processor/jobs/jobstore"
)

// Config configures a Worker. NATS and Embedder are required; the NATS
// server must have JetStream.
type Config struct {
	// NATS is the connection the worker uses; the caller closes it after
	// Stop. Give the worker a connection of its own, not the processor's:
	// JetStream calls keep reply subscriptions on their connection.
	NATS *nats.Conn
	// Embedder embeds the chunks' queries and the jobs' descriptions,
	// normally the processor's (the scheduler serves interactive requests
	// first: their deadlines are earlier).
	Embedder embedding.Embedder
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Replicas of the streams and the bucket; default 1.
	Replicas int
	// Retention is how long jobs and their results are kept; default
	// jobstore.DefaultRetention (24h).
	Retention time.Duration
	// AckWait is how long a chunk may go without a sign of life from the
	// processor holding it before it is given to another; default
	// jobstore.DefaultAckWait (30s). The worker signals progress every
	// AckWait/3 while it works.
	AckWait time.Duration
	// ChunksMaxBytes, ResultsMaxBytes and BucketMaxBytes bound the jobs'
	// streams and bucket (jobstore.SetupConfig); 0: jobstore's defaults.
	ChunksMaxBytes, ResultsMaxBytes, BucketMaxBytes int64
	// MaxDeliver is how many times a chunk may fail (other than by the
	// processors being overloaded) before its job fails; default 5.
	MaxDeliver int
	// Workers is how many chunks the worker works on at once; default 1
	// (one chunk already fills the model's batches).
	Workers int
	// Catalogs serve the jobs on stored catalogs (match, dedupe, and query
	// jobs naming a catalog): normally the processor's catalog service.
	// Without it such jobs fail.
	Catalogs Catalogs
	// MatchChunkSize is the most source products of one match or dedupe
	// chunk; default contracts.DefaultMatchChunkSize.
	MatchChunkSize int
}

func (c *Config) validate() error {
	if c.NATS == nil {
		return errors.New("jobs: Config.NATS is required")
	}
	if c.Embedder == nil {
		return errors.New("jobs: Config.Embedder is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Retention <= 0 {
		c.Retention = jobstore.DefaultRetention
	}
	if c.AckWait <= 0 {
		c.AckWait = jobstore.DefaultAckWait
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 5
	}
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.MatchChunkSize <= 0 {
		c.MatchChunkSize = contracts.DefaultMatchChunkSize
	}
	return nil
}

// Stats count the chunks a worker has handled.
type Stats struct {
	// Chunks is how many chunks it stored results for.
	Chunks int64
	// Redelivered is how many of the chunks it received had been given to
	// another processor (or to itself) before.
	Redelivered int64
	// Busy is how many chunks it is working on now.
	Busy int64
}

// Worker pulls job chunks and stores their results until Stop.
type Worker struct {
	cfg  Config
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	res  jetstream.Stream
	cons jetstream.Consumer

	stop context.CancelFunc
	ctx  context.Context
	wg   sync.WaitGroup

	chunks, redelivered, busy atomic.Int64
	resultsMax                int64 // the results stream's MaxBytes

	mu    sync.Mutex
	descs map[string]*jobDescs // by job id; the last few jobs only
	order []string
}

type jobDescs struct {
	vecs  [][]float32
	norms []float64
}

// Start sets up the jobs' streams, bucket and consumer (jobstore.Setup)
// and starts pulling chunks.
func Start(cfg Config) (*Worker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := jobstore.Setup(ctx, js, jobstore.SetupConfig{Replicas: cfg.Replicas, Retention: cfg.Retention, AckWait: cfg.AckWait,
		ChunksMaxBytes: cfg.ChunksMaxBytes, ResultsMaxBytes: cfg.ResultsMaxBytes, BucketMaxBytes: cfg.BucketMaxBytes})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	w := &Worker{cfg: cfg, js: js, kv: a.Bucket, res: a.Results, cons: a.Chunks, descs: map[string]*jobDescs{}, resultsMax: a.Config.ResultsMaxBytes}
	w.ctx, w.stop = context.WithCancel(context.Background())
	for range cfg.Workers {
		w.wg.Go(w.loop)
	}
	return w, nil
}

// Stats reports the worker's counters; a nil Worker (jobs off) has none.
func (w *Worker) Stats() Stats {
	if w == nil {
		return Stats{}
	}
	return Stats{Chunks: w.chunks.Load(), Redelivered: w.redelivered.Load(), Busy: w.busy.Load()}
}

// Stop stops pulling chunks and waits for the chunks in hand to be finished
// and stored; it gives up when ctx ends. It does not close Config.NATS.
func (w *Worker) Stop(ctx context.Context) error {
	w.stop()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("jobs: wait for job chunks: %w", ctx.Err())
	}
}

func (w *Worker) loop() {
	for w.ctx.Err() == nil {
		// Short fetches, so Stop is seen within a second.
		fctx, cancel := context.WithTimeout(w.ctx, time.Second)
		msg, err := w.cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || w.ctx.Err() != nil {
				continue
			}
			if w.cfg.NATS.IsClosed() {
				w.cfg.Logger.Error("jobs: worker stops: its NATS connection is closed")
				return
			}
			w.cfg.Logger.Warn("jobs: fetch job chunk", "err", err)
			select { // do not spin on a broken connection
			case <-w.ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		w.handle(msg)
	}
}

func (w *Worker) handle(msg jetstream.Msg) {
	w.busy.Add(1)
	defer w.busy.Add(-1)
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	if md.NumDelivered > 1 {
		w.redelivered.Add(1)
	}
	var c contracts.JobChunk
	if err := json.Unmarshal(msg.Data(), &c); err != nil {
		w.cfg.Logger.Error("jobs: undecodable job chunk dropped", "err", err, "subject", msg.Subject())
		_ = msg.Term()
		return
	}
	// The chunk's own deadline: it is being worked on as long as the worker
	// runs, and heartbeats keep it ours.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hb := time.NewTicker(w.cfg.AckWait / 3)
	defer hb.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hb.C:
				_ = msg.InProgress()
			}
		}
	}()

	meta, err := w.meta(ctx, c.Job)
	if err != nil || meta.State != "" {
		_ = msg.Term() // gone (retention), cancelled or failed: nothing to do
		return
	}
	if c.Plan {
		w.handlePlan(ctx, msg, md, meta)
		return
	}
	if isPlanned(meta.Kind) {
		if !meta.Planned {
			// Published by a planner that has not recorded its plan yet.
			_ = msg.NakWithDelay(200 * time.Millisecond)
			return
		}
		if c.Gen != meta.Gen {
			_ = msg.Term() // a chunk of a plan that was redone
			return
		}
	}
	result, err := w.work(ctx, meta, &c)
	if err == nil {
		data, _ := json.Marshal(result)
		_, err = w.js.Publish(ctx, fmt.Sprintf("%s%s.%d", contracts.SubjectJobResultPrefix, c.Job, c.Index), data,
			jetstream.WithMsgID(fmt.Sprintf("%s.%d", c.Job, c.Index)))
		// A full results stream: later (older jobs expire), and if it stays
		// full, the job fails naming the limit.
		err = jobstore.FullError(err, "the job results stream "+contracts.JobResultsStream, jobstore.SettingResultsMaxBytes, w.resultsMax)
	}
	if err != nil {
		var e *contracts.Error
		if errors.As(err, &e) && e.Code.Retryable() {
			// The processors are busy with interactive requests: later.
			_ = msg.NakWithDelay(time.Second)
			return
		}
		if final(err) {
			w.fail(meta.ID, fmt.Sprintf("chunk %d: %v", c.Index, err))
			_ = msg.Term()
			return
		}
		if int(md.NumDelivered) >= w.cfg.MaxDeliver {
			w.fail(meta.ID, fmt.Sprintf("chunk %d failed %d times: %v", c.Index, md.NumDelivered, err))
			_ = msg.Term()
			return
		}
		w.cfg.Logger.Warn("jobs: job chunk failed; it will be retried", "job", c.Job, "chunk", c.Index, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if err := msg.DoubleAck(ctx); err != nil {
		// The result is stored; a redelivery rewrites the same result.
		w.cfg.Logger.Warn("jobs: ack job chunk", "job", c.Job, "chunk", c.Index, "err", err)
	}
	w.chunks.Add(1)
	if meta.Notify {
		w.notifyIfDone(ctx, meta)
	}
}

func (w *Worker) meta(ctx context.Context, id string) (*contracts.JobMeta, error) {
	e, err := w.kv.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	var m contracts.JobMeta
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// rank embeds the chunk's queries and ranks the job's descriptions, whose
// embeddings are computed once per job and kept for its next chunks.
func (w *Worker) rank(ctx context.Context, meta *contracts.JobMeta, c *contracts.JobChunk) (*contracts.JobChunkResult, error) {
	d, err := w.descriptions(ctx, meta)
	if err != nil {
		return nil, err
	}
	// A deadline far behind interactive requests' (the scheduler serves
	// the earliest first), yet one the chunk meets at the model's speed.
	ectx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err := w.cfg.Embedder.Embed(ectx, embedding.WithPrompt(w.cfg.Embedder, embedding.Query, c.Query))
	if err != nil {
		return nil, fmt.Errorf("embed queries: %w", err)
	}
	vecs := res.Vectors
	if len(vecs) != len(c.Query) {
		return nil, fmt.Errorf("model returned %d embeddings for %d texts", len(vecs), len(c.Query))
	}
	out := &contracts.JobChunkResult{Query: c.Query, Matches: make([][][2]float64, len(c.Query))}
	for i, v := range vecs {
		ms := processor.Rank(v, d.vecs, d.norms, meta.ProductDescriptions, meta.TopK, meta.Threshold)
		pairs := make([][2]float64, len(ms))
		for k, m := range ms {
			pairs[k] = [2]float64{float64(m.Index), m.Score}
		}
		out.Matches[i] = pairs
	}
	return out, nil
}

func (w *Worker) descriptions(ctx context.Context, meta *contracts.JobMeta) (*jobDescs, error) {
	w.mu.Lock()
	d := w.descs[meta.ID]
	w.mu.Unlock()
	if d != nil {
		return d, nil
	}
	ectx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err := w.cfg.Embedder.Embed(ectx, embedding.WithPrompt(w.cfg.Embedder, embedding.Document, meta.ProductDescriptions))
	if err != nil {
		return nil, fmt.Errorf("embed descriptions: %w", err)
	}
	vecs := res.Vectors
	d = &jobDescs{vecs: vecs, norms: make([]float64, len(vecs))}
	for i, v := range vecs {
		d.norms[i] = vecmath.Norm(v)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.descs[meta.ID]; !ok {
		w.descs[meta.ID] = d
		w.order = append(w.order, meta.ID)
		if len(w.order) > 8 {
			delete(w.descs, w.order[0])
			w.order = w.order[1:]
		}
	}
	return d, nil
}

// fail marks a job failed, unless it already ended.
func (w *Worker) fail(id, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 5 {
		e, err := w.kv.Get(ctx, id)
		if err != nil {
			return
		}
		var m contracts.JobMeta
		if json.Unmarshal(e.Value(), &m) != nil || m.State != "" {
			return
		}
		m.State, m.Error = contracts.JobFailed, reason
		data, _ := json.Marshal(m)
		if _, err := w.kv.Update(ctx, id, data, e.Revision()); err == nil {
			w.cfg.Logger.Error("jobs: job failed", "job", id, "reason", reason)
			return
		}
	}
}

// notifyIfDone publishes the job's status on its done subject once, when
// every chunk's result is stored.
func (w *Worker) notifyIfDone(ctx context.Context, meta *contracts.JobMeta) {
	info, err := w.res.Info(ctx, jetstream.WithSubjectFilter(contracts.SubjectJobResultPrefix+meta.ID+".*"))
	if err != nil || len(info.State.Subjects) < meta.Chunks {
		return
	}
	// Several processors may see the last chunk stored; one notice only.
	if _, err := w.kv.Create(ctx, meta.ID+".notified", []byte("1")); err != nil {
		return
	}
	st := contracts.JobStatus{ID: meta.ID, State: contracts.JobDone, Done: meta.Total, Total: meta.Total,
		Chunks: meta.Chunks, Created: meta.Created, Expires: meta.Expires}
	data, _ := json.Marshal(st)
	_ = w.cfg.NATS.Publish(contracts.SubjectJobDonePrefix+meta.ID, data)
}
