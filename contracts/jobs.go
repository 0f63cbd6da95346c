package contracts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Asynchronous jobs live in JetStream. A job's queries travel as chunks on
// a work-queue stream that processors pull from; each chunk's results are
// stored under their own subject (one message per subject, so a redelivered
// chunk rewrites the same result instead of adding one); the job's
// description and state are a key-value entry. Progress is the number of
// result subjects, so no coordinator keeps a count.
const (
	// JobChunksStream is the work-queue stream of job chunks.
	JobChunksStream = "SIMMATCH_JOB_CHUNKS"
	// JobResultsStream holds each chunk's results until the retention ends.
	JobResultsStream = "SIMMATCH_JOB_RESULTS"
	// JobsBucket is the key-value bucket of job descriptions and states.
	JobsBucket = "SIMMATCH_JOBS"
	// JobsConsumer is the durable consumer processors share on JobChunksStream.
	JobsConsumer = "simmatch-processors"
	// SubjectJobChunkPrefix + job id is where a job's chunks are published.
	SubjectJobChunkPrefix = "simmatch.jobs.chunk."
	// SubjectJobResultPrefix + job id + "." + chunk index holds a chunk's results.
	SubjectJobResultPrefix = "simmatch.jobs.result."
	// SubjectJobDonePrefix + job id gets a JobStatus (core NATS) when a job
	// completes: subscribe to "simmatch.jobs.done.>" to be told.
	SubjectJobDonePrefix = "simmatch.jobs.done."
	// DefaultJobChunkSize is the most queries one chunk holds; a chunk holds
	// fewer when its queries or its results would not fit in a NATS message.
	DefaultJobChunkSize = 128
	// DefaultJobMaxQueries bounds the queries of one job.
	DefaultJobMaxQueries = 1_000_000
)

// JobState is where a job is in its life.
type JobState string

// The states of a job.
const (
	JobQueued    JobState = "queued"    // no chunk finished yet
	JobRunning   JobState = "running"   // some chunks finished
	JobDone      JobState = "done"      // every chunk finished: results are ready
	JobFailed    JobState = "failed"    // a chunk failed for good; Error says why
	JobCancelled JobState = "cancelled" // cancelled before it finished
)

// JobRequest is a job: a /predict-shaped request with many queries.
type JobRequest struct {
	// Query holds the queries; on the wire a single string or a list.
	Query Queries `json:"query"`
	// ProductDescriptions is ranked for every query.
	ProductDescriptions []string `json:"product_descriptions,omitempty"`
	// TopK keeps the K best matches per query; nil keeps all.
	TopK *int `json:"top_k,omitempty"`
	// Threshold drops matches that score below it; nil keeps all.
	Threshold *float64 `json:"threshold,omitempty"`
	// Notify, when true, publishes the final JobStatus on
	// SubjectJobDonePrefix + id when the job completes.
	Notify bool `json:"notify,omitempty"`
}

// JobStatus describes a job.
type JobStatus struct {
	ID    string   `json:"id"`
	State JobState `json:"state"`
	// Done and Total count queries.
	Done  int `json:"done"`
	Total int `json:"total"`
	// Chunks is how many chunks the queries were split into.
	Chunks int `json:"chunks"`
	// Created is when the job was submitted.
	Created time.Time `json:"created"`
	// Expires is when the job and its results are deleted.
	Expires time.Time `json:"expires"`
	// Error says why a failed job failed.
	Error string `json:"error,omitempty"`
}

// JobChunk is one chunk of a job's queries, as processors receive it.
type JobChunk struct {
	Job    string   `json:"job"`
	Index  int      `json:"index"`
	Offset int      `json:"offset"`
	Query  []string `json:"query"`
}

// JobMeta is a job's key-value entry: what processors need besides the
// chunk, and the state set by cancellation or failure.
type JobMeta struct {
	ID                  string   `json:"id"`
	ProductDescriptions []string `json:"product_descriptions,omitempty"`
	TopK                *int     `json:"top_k,omitempty"`
	Threshold           *float64 `json:"threshold,omitempty"`
	Notify              bool     `json:"notify,omitempty"`
	Total               int      `json:"total"`
	// Offsets holds the index of each chunk's first query.
	Offsets []int     `json:"offsets"`
	Chunks  int       `json:"chunks"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// State is empty while the job runs; JobCancelled or JobFailed end it.
	State JobState `json:"state,omitempty"`
	Error string   `json:"error,omitempty"`
}

// ChunkLen is the number of queries in chunk i.
func (m *JobMeta) ChunkLen(i int) int {
	if i+1 < len(m.Offsets) {
		return m.Offsets[i+1] - m.Offsets[i]
	}
	return m.Total - m.Offsets[i]
}

// splitChunks returns the first query of each chunk: at most size queries,
// and few enough that both the chunk and its stored results (matches
// [index, score] pairs, about 30 bytes each, per query) stay within budget bytes.
func splitChunks(queries []string, size, matches, budget int) []int {
	var offsets []int
	n, bytes := 0, 0
	for i, q := range queries {
		cost := 2*len(q) + 30*matches + 64 // the query twice (chunk, results), its matches, JSON
		if n == 0 || n == size || bytes+cost > budget {
			offsets = append(offsets, i)
			n, bytes = 0, 0
		}
		n++
		bytes += cost
	}
	return offsets
}

// JobChunkResult is what a processor stores for one chunk: per query, the
// matches as [index, score] pairs; descriptions come from the job's entry.
type JobChunkResult struct {
	Query   []string       `json:"query"`
	Matches [][][2]float64 `json:"matches"`
}

// JobLimits bound a job.
type JobLimits struct {
	// Limits bound the texts and the descriptions, as for /predict;
	// MaxQueries and MaxBodyBytes are replaced by the two below.
	Limits
	MaxQueries   int
	MaxBodyBytes int
}

// DefaultJobLimits are the limits used when none are configured.
var DefaultJobLimits = JobLimits{Limits: DefaultLimits, MaxQueries: DefaultJobMaxQueries, MaxBodyBytes: 256 << 20}

// DecodeJobRequest decodes and validates a job.
func DecodeJobRequest(data []byte, lim JobLimits) (*JobRequest, error) {
	var r JobRequest
	if e := decodeStrict(data, lim.MaxBodyBytes, "the limit for a job", &r, func(err error) *Error {
		e := decodeError(err)
		if strings.Contains(e.Message, "unknown field") {
			e.Message = e.Field + ": unknown field; known fields are query, product_descriptions, top_k, threshold, notify"
		}
		return e
	}); e != nil {
		return nil, e
	}
	if err := r.Validate(lim); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks r against lim.
func (r *JobRequest) Validate(lim JobLimits) error {
	if len(r.Query) == 0 {
		return FieldError("query", 0, "required: a non-empty list of strings")
	}
	if lim.MaxQueries > 0 && len(r.Query) > lim.MaxQueries {
		return FieldError("query", lim.MaxQueries, "has %d texts; the limit for a job is %d", len(r.Query), lim.MaxQueries)
	}
	// The per-request checks of /predict, with the job's query limit.
	pr := Request{Query: r.Query, ProductDescriptions: r.ProductDescriptions, TopK: r.TopK, Threshold: r.Threshold}
	plim := lim.Limits
	plim.MaxQueries = 0
	return pr.Validate(plim)
}

// Jobs submits and follows asynchronous jobs in JetStream. The streams and
// the bucket are made by the processors (which know the replica count);
// until one has started with JetStream, calls fail with no_processor.
type Jobs struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	chunkSize int
}

// NewJobs returns a Jobs client on nc; chunkSize 0 means DefaultJobChunkSize.
func NewJobs(nc *nats.Conn, chunkSize int) (*Jobs, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("contracts: jetstream: %w", err)
	}
	if chunkSize <= 0 {
		chunkSize = DefaultJobChunkSize
	}
	return &Jobs{nc: nc, js: js, chunkSize: chunkSize}, nil
}

func jobsUnavailable(err error) error {
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrNoResponders) {
		return &Error{Code: CodeNoProcessor, Message: "jobs are not available: no processor with JetStream has set them up yet; start one (the NATS server needs JetStream)"}
	}
	return Errorf(CodeInternal, "jobs: %v", err)
}

func (j *Jobs) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := j.js.KeyValue(ctx, JobsBucket)
	if err != nil {
		return nil, jobsUnavailable(err)
	}
	return kv, nil
}

// NewJobID returns a random job id (16 hex digits).
func NewJobID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Submit stores the job and queues its chunks. The job is queued when
// Submit returns.
func (j *Jobs) Submit(ctx context.Context, req *JobRequest) (*JobStatus, error) {
	kv, err := j.bucket(ctx)
	if err != nil {
		return nil, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, jobsUnavailable(err)
	}
	now := time.Now().UTC()
	id := NewJobID()
	matches := len(req.ProductDescriptions)
	if req.TopK != nil {
		matches = min(matches, *req.TopK)
	}
	budget := 512 << 10
	if mp := int(j.nc.MaxPayload()); mp > 0 {
		budget = mp/2 - 4096
	}
	for _, q := range req.Query {
		if 2*len(q)+30*matches+64 > budget {
			return nil, &Error{Code: CodePayloadTooLarge, Field: "product_descriptions",
				Message: fmt.Sprintf("product_descriptions: the results of one query (%d matches) would not fit in a NATS message (max_payload %d); set top_k", matches, j.nc.MaxPayload())}
		}
	}
	offsets := splitChunks(req.Query, j.chunkSize, matches, budget)
	chunks := len(offsets)
	meta := &JobMeta{ID: id, ProductDescriptions: req.ProductDescriptions, TopK: req.TopK, Threshold: req.Threshold,
		Notify: req.Notify, Total: len(req.Query), Offsets: offsets, Chunks: chunks, Created: now}
	if ttl := st.TTL(); ttl > 0 {
		meta.Expires = now.Add(ttl)
	}
	data, _ := json.Marshal(meta)
	if mp := j.nc.MaxPayload(); mp > 0 && int64(len(data)) > mp-1024 {
		return nil, &Error{Code: CodePayloadTooLarge, Field: "product_descriptions",
			Message: fmt.Sprintf("product_descriptions: the job's descriptions take %d bytes; the NATS server's max_payload is %d", len(data), mp)}
	}
	if _, err := kv.Create(ctx, id, data); err != nil {
		return nil, Errorf(CodeInternal, "jobs: store job %s: %v", id, err)
	}
	var acks []jetstream.PubAckFuture
	for i := range chunks {
		lo := offsets[i]
		c := JobChunk{Job: id, Index: i, Offset: lo, Query: req.Query[lo : lo+meta.ChunkLen(i)]}
		b, _ := json.Marshal(c)
		f, err := j.js.PublishAsync(SubjectJobChunkPrefix+id, b, jetstream.WithMsgID(fmt.Sprintf("%s.%d", id, i)))
		if err != nil {
			return nil, Errorf(CodeInternal, "jobs: queue chunk %d of job %s: %v", i, id, err)
		}
		acks = append(acks, f)
	}
	for i, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return nil, Errorf(CodeInternal, "jobs: queue chunk %d of job %s: %v", i, id, err)
		case <-ctx.Done():
			return nil, &Error{Code: CodeTimeout, Message: "job " + id + " was not fully queued before the deadline"}
		}
	}
	return statusOf(meta, 0), nil
}

func statusOf(m *JobMeta, done int) *JobStatus {
	s := &JobStatus{ID: m.ID, Done: done, Total: m.Total, Chunks: m.Chunks, Created: m.Created, Expires: m.Expires, Error: m.Error}
	switch {
	case m.State != "":
		s.State = m.State
	case done == m.Total:
		s.State = JobDone
	case done > 0:
		s.State = JobRunning
	default:
		s.State = JobQueued
	}
	return s
}

// Meta returns a job's entry, or not_found.
func (j *Jobs) Meta(ctx context.Context, id string) (*JobMeta, jetstream.KeyValueEntry, error) {
	if !validJobID(id) {
		return nil, nil, &Error{Code: CodeNotFound, Message: fmt.Sprintf("no job %q: job ids are 16 hex digits", id)}
	}
	kv, err := j.bucket(ctx)
	if err != nil {
		return nil, nil, err
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil, &Error{Code: CodeNotFound, Message: fmt.Sprintf("no job %s: it never existed or its retention ended", id)}
	}
	if err != nil {
		return nil, nil, Errorf(CodeInternal, "jobs: read job %s: %v", id, err)
	}
	var m JobMeta
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return nil, nil, Errorf(CodeInternal, "jobs: decode job %s: %v", id, err)
	}
	return &m, e, nil
}

func validJobID(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// Status returns a job's state and progress.
func (j *Jobs) Status(ctx context.Context, id string) (*JobStatus, error) {
	m, _, err := j.Meta(ctx, id)
	if err != nil {
		return nil, err
	}
	done, err := j.doneChunks(ctx, m)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, i := range done {
		n += m.ChunkLen(i)
	}
	return statusOf(m, n), nil
}

// doneChunks lists the chunks whose results are stored.
func (j *Jobs) doneChunks(ctx context.Context, m *JobMeta) ([]int, error) {
	s, err := j.js.Stream(ctx, JobResultsStream)
	if err != nil {
		return nil, jobsUnavailable(err)
	}
	prefix := SubjectJobResultPrefix + m.ID + "."
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+"*"))
	if err != nil {
		return nil, Errorf(CodeInternal, "jobs: results of %s: %v", m.ID, err)
	}
	var out []int
	for subj := range info.State.Subjects {
		var i int
		if _, err := fmt.Sscanf(strings.TrimPrefix(subj, prefix), "%d", &i); err == nil && i >= 0 && i < m.Chunks {
			out = append(out, i)
		}
	}
	return out, nil
}

// Cancel stops a job: its queued chunks are removed and processors skip
// the ones they hold. Cancelling a finished job changes nothing.
func (j *Jobs) Cancel(ctx context.Context, id string) (*JobStatus, error) {
	for range 10 { // optimistic concurrency against a processor marking it failed
		m, e, err := j.Meta(ctx, id)
		if err != nil {
			return nil, err
		}
		st, err := j.Status(ctx, id)
		if err != nil {
			return nil, err
		}
		if st.State == JobDone || st.State == JobFailed || st.State == JobCancelled {
			return st, nil
		}
		m.State = JobCancelled
		data, _ := json.Marshal(m)
		kv, err := j.bucket(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := kv.Update(ctx, id, data, e.Revision()); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			return nil, Errorf(CodeInternal, "jobs: cancel %s: %v", id, err)
		}
		if s, err := j.js.Stream(ctx, JobChunksStream); err == nil {
			_ = s.Purge(ctx, jetstream.WithPurgeSubject(SubjectJobChunkPrefix+id))
		}
		return j.Status(ctx, id)
	}
	return nil, Errorf(CodeInternal, "jobs: cancel %s: the job kept changing; retry", id)
}

// JobResult is one query's results, as GET /v1/jobs/{id}/results streams them.
type JobResult struct {
	Query   string  `json:"query"`
	Matches []Match `json:"matches"`
}

// Results calls yield with every query's results in request order. The job
// must be done: otherwise the error is a job_not_done.
func (j *Jobs) Results(ctx context.Context, id string, yield func(JobResult) error) error {
	st, err := j.Status(ctx, id)
	if err != nil {
		return err
	}
	if st.State != JobDone {
		return &Error{Code: CodeJobNotDone, Message: fmt.Sprintf("job %s is %s (%d of %d queries done); its results are ready when its state is done", id, st.State, st.Done, st.Total)}
	}
	m, _, err := j.Meta(ctx, id)
	if err != nil {
		return err
	}
	s, err := j.js.Stream(ctx, JobResultsStream)
	if err != nil {
		return jobsUnavailable(err)
	}
	for i := range m.Chunks {
		raw, err := s.GetLastMsgForSubject(ctx, fmt.Sprintf("%s%s.%d", SubjectJobResultPrefix, id, i))
		if err != nil {
			return Errorf(CodeInternal, "jobs: results of chunk %d of %s: %v", i, id, err)
		}
		var cr JobChunkResult
		if err := json.Unmarshal(raw.Data, &cr); err != nil {
			return Errorf(CodeInternal, "jobs: decode chunk %d of %s: %v", i, id, err)
		}
		for q, query := range cr.Query {
			res := JobResult{Query: query, Matches: make([]Match, len(cr.Matches[q]))}
			for k, pair := range cr.Matches[q] {
				idx := int(pair[0])
				res.Matches[k] = Match{Index: idx, Score: pair[1]}
				if idx >= 0 && idx < len(m.ProductDescriptions) {
					res.Matches[k].Description = m.ProductDescriptions[idx]
				}
			}
			if err := yield(res); err != nil {
				return err
			}
		}
	}
	return nil
}

// Wait polls the job's status every interval until it is done, failed or
// cancelled, or ctx ends; progress, when not nil, sees every status.
func (j *Jobs) Wait(ctx context.Context, id string, interval time.Duration, progress func(*JobStatus)) (*JobStatus, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		st, err := j.Status(ctx, id)
		if err != nil {
			return nil, err
		}
		if progress != nil {
			progress(st)
		}
		if st.State == JobDone || st.State == JobFailed || st.State == JobCancelled {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, &Error{Code: CodeTimeout, Message: fmt.Sprintf("job %s still %s after the wait (%d of %d)", id, st.State, st.Done, st.Total)}
		case <-t.C:
		}
	}
}
