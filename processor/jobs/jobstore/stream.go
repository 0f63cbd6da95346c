package jobstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
)

// maxPendingChunks bounds the chunks of a Stream published and not yet
// acknowledged: what a streamed job holds in memory.
const maxPendingChunks = 16

// Stream is a query job whose queries arrive one at a time (an NDJSON
// submission): Add queues each chunk as it fills, so memory stays flat
// whatever the job's size. The job's entry exists from BeginFor on, marked
// submitting (contracts.JobMeta.Submitting): processors run its chunks
// while the rest arrives. Commit makes it whole; Abort deletes it, chunks
// and results included, so a failed submission leaves no job. A Stream is
// not safe for concurrent use.
type Stream struct {
	j          *Jobs
	kv         jetstream.KeyValue
	meta       *contracts.JobMeta
	req        *contracts.JobRequest
	matchBytes int
	budget     int
	chunk      []string
	bytes      int
	pending    []jetstream.PubAckFuture
	ended      bool
}

// BeginFor starts a streamed query job that belongs to tenant owner (""
// for none): req holds its options (product_descriptions or catalog,
// top_k, threshold, notify), no queries, and has been validated
// (contracts.JobRequest.ValidateOptions). A client made WithTenant begins
// jobs of its tenant only, on its catalogs (as SubmitFor).
func (j *Jobs) BeginFor(ctx context.Context, owner string, req *contracts.JobRequest) (*Stream, error) {
	owner, req, names, err := j.forTenant(owner, req)
	if err != nil {
		return nil, err
	}
	s, err := j.begin(ctx, owner, req)
	return s, j.ns.FixError(err, names...)
}

func (j *Jobs) begin(ctx context.Context, owner string, req *contracts.JobRequest) (*Stream, error) {
	if req.Match != nil || req.Dedupe != nil || len(req.Query) > 0 {
		return nil, contracts.Errorf(contracts.CodeInternal, "jobs: a streamed job is a query job given without its queries")
	}
	kv, err := j.bucket(ctx)
	if err != nil {
		return nil, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, jobsUnavailable(err)
	}
	if req.Catalog != "" {
		if err := j.checkCatalogs(ctx, req); err != nil {
			return nil, err
		}
	}
	now := time.Now().UTC()
	meta := &contracts.JobMeta{ID: NewJobID(), Owner: owner, ProductDescriptions: req.ProductDescriptions, Catalog: req.Catalog,
		TopK: req.TopK, Threshold: req.Threshold, Offsets: []int{}, Created: now, Submitting: true}
	if ttl := st.TTL(); ttl > 0 {
		meta.Expires = now.Add(ttl)
	}
	data, _ := json.Marshal(meta)
	if mp := j.nc.MaxPayload(); mp > 0 && int64(len(data)) > mp-1024 {
		return nil, &contracts.Error{Code: contracts.CodePayloadTooLarge, Field: "product_descriptions",
			Message: fmt.Sprintf("product_descriptions: the job's descriptions take %d bytes; the NATS server's max_payload is %d", len(data), mp)}
	}
	if err := j.create(ctx, kv, owner, meta.ID, data); err != nil {
		return nil, err
	}
	s := &Stream{j: j, kv: kv, meta: meta, req: req}
	s.matchBytes, s.budget = j.resultBudget(req)
	return s, nil
}

// ID is the job's id.
func (s *Stream) ID() string { return s.meta.ID }

// Total is the number of queries added so far.
func (s *Stream) Total() int { return s.meta.Total + len(s.chunk) }

// Add adds the job's next query (valid: contracts.JobRequest.ValidateQuery),
// publishing a chunk when one is full.
func (s *Stream) Add(ctx context.Context, q string) error {
	if err := s.j.fits(q, s.req, s.matchBytes, s.budget); err != nil {
		return err
	}
	cost := queryCost(q, s.matchBytes)
	if len(s.chunk) == s.j.chunkSize || (len(s.chunk) > 0 && s.bytes+cost > s.budget) {
		if err := s.flush(ctx); err != nil {
			return err
		}
	}
	s.chunk = append(s.chunk, q)
	s.bytes += cost
	return nil
}

// flush publishes the filling chunk, waiting for the oldest
// acknowledgements when maxPendingChunks are in flight.
func (s *Stream) flush(ctx context.Context) error {
	if len(s.chunk) == 0 {
		return nil
	}
	i := s.meta.Chunks
	c := contracts.JobChunk{Job: s.meta.ID, Index: i, Offset: s.meta.Total, Query: s.chunk}
	b, _ := json.Marshal(c)
	for len(s.pending) >= maxPendingChunks {
		// Off the list first: a future answers once, and Abort waits for
		// the ones left.
		f, n := s.pending[0], i-len(s.pending)
		s.pending = s.pending[1:]
		if err := s.await(ctx, n, f); err != nil {
			return err
		}
	}
	f, err := s.j.js.PublishAsync(contracts.SubjectJobChunkPrefix+s.meta.ID, b, jetstream.WithMsgID(fmt.Sprintf("%s.%d", s.meta.ID, i)))
	if err != nil {
		return s.j.chunkError(ctx, err, i, s.meta.ID)
	}
	s.pending = append(s.pending, f)
	s.meta.Offsets = append(s.meta.Offsets, s.meta.Total)
	s.meta.Chunks++
	s.meta.Total += len(s.chunk)
	s.chunk = make([]string, 0, len(s.chunk)) // the published one may still be referenced
	s.bytes = 0
	return nil
}

func (s *Stream) await(ctx context.Context, i int, f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return s.j.chunkError(ctx, err, i, s.meta.ID)
	case <-ctx.Done():
		return &contracts.Error{Code: contracts.CodeTimeout, Message: "job " + s.meta.ID + " was not fully queued before the deadline"}
	}
}

// Commit queues the last chunk and makes the job whole: its Total, Offsets
// and Chunks final, no longer submitting. A job with no query is an error
// (and deleted). When the job was cancelled or failed meanwhile, Commit
// returns its status as it is.
func (s *Stream) Commit(ctx context.Context) (*contracts.JobStatus, error) {
	if s.ended {
		return nil, contracts.Errorf(contracts.CodeInternal, "jobs: job %s already ended", s.meta.ID)
	}
	if s.Total() == 0 {
		s.Abort("no query")
		return nil, contracts.FieldError("query", 0, "required: at least one query line after the options line")
	}
	if err := s.flush(ctx); err != nil {
		return nil, err
	}
	first := s.meta.Chunks - len(s.pending)
	for k, f := range s.pending {
		if err := s.await(ctx, first+k, f); err != nil {
			s.pending = s.pending[k+1:] // a future answers once: Abort waits for the others
			return nil, err
		}
	}
	s.pending = nil
	s.meta.Submitting = false
	s.meta.Notify = s.req.Notify
	data, _ := json.Marshal(s.meta)
	if mp := s.j.nc.MaxPayload(); mp > 0 && int64(len(data)) > mp-1024 {
		return nil, &contracts.Error{Code: contracts.CodePayloadTooLarge, Field: "query",
			Message: fmt.Sprintf("query: the job's %d chunks take %d bytes to describe; the NATS server's max_payload is %d: send fewer queries", s.meta.Chunks, len(data), mp)}
	}
	for range 10 {
		e, err := s.kv.Get(ctx, s.meta.ID)
		if err != nil {
			return nil, contracts.Errorf(contracts.CodeInternal, "jobs: read job %s: %v", s.meta.ID, err)
		}
		var cur contracts.JobMeta
		if err := json.Unmarshal(e.Value(), &cur); err != nil {
			return nil, contracts.Errorf(contracts.CodeInternal, "jobs: decode job %s: %v", s.meta.ID, err)
		}
		if cur.State != "" {
			// Cancelled, or failed by a processor, while it was submitted.
			s.ended = true
			return s.j.Status(ctx, s.meta.ID)
		}
		if _, err := s.kv.Update(ctx, s.meta.ID, data, e.Revision()); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			return nil, contracts.Errorf(contracts.CodeInternal, "jobs: store job %s: %v", s.meta.ID, err)
		}
		s.ended = true
		st, err := s.j.Status(ctx, s.meta.ID)
		if err == nil && s.meta.Notify && st.State == contracts.JobDone {
			// Every chunk finished before the job was whole: processors
			// did not know to tell.
			s.j.notifyDone(ctx, st)
		}
		return st, err
	}
	return nil, contracts.Errorf(contracts.CodeInternal, "jobs: store job %s: the job kept changing", s.meta.ID)
}

// notifyDone publishes a done job's status on its done subject, once
// (the processors' guard: the key id.notified).
func (j *Jobs) notifyDone(ctx context.Context, st *contracts.JobStatus) {
	kv, err := j.bucket(ctx)
	if err != nil {
		return
	}
	if _, err := kv.Create(ctx, st.ID+".notified", []byte("1")); err != nil {
		return
	}
	data, _ := json.Marshal(st)
	_ = j.nc.Publish(contracts.SubjectJobDonePrefix+st.ID, data)
}

// Abort ends a submission that failed (reason says why): the job is
// marked failed, so processors drop its chunks, then its chunks, results
// and entry are deleted. It works on its own deadline, as the request's may
// be the reason.
func (s *Stream) Abort(reason string) {
	if s.ended {
		return
	}
	s.ended = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := s.meta.ID
	m := *s.meta
	m.State, m.Error, m.Submitting = contracts.JobFailed, "submission failed: "+reason, false
	data, _ := json.Marshal(&m)
	_, _ = s.kv.Put(ctx, id, data)
	wait, cancelWait := context.WithTimeout(ctx, 5*time.Second)
	defer cancelWait()
	for _, f := range s.pending { // let the published chunks land before purging them
		select {
		case <-f.Ok():
		case <-f.Err():
		case <-wait.Done():
		}
	}
	if cs, err := s.j.js.Stream(ctx, contracts.JobChunksStream); err == nil {
		_ = cs.Purge(ctx, jetstream.WithPurgeSubject(contracts.SubjectJobChunkPrefix+id))
	}
	if rs, err := s.j.js.Stream(ctx, contracts.JobResultsStream); err == nil {
		_ = rs.Purge(ctx, jetstream.WithPurgeSubject(contracts.SubjectJobResultPrefix+id+".*"))
	}
	if s.meta.Owner != "" {
		_ = s.kv.Purge(ctx, ownerKey(s.meta.Owner, id))
	}
	_ = s.kv.Purge(ctx, id)
}
