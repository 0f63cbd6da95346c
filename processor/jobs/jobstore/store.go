// Package jobstore keeps asynchronous jobs in JetStream: the bridge and the
// command line submit, follow, cancel and read them (Jobs); processors set up
// the streams and pull the chunks (Setup, processor/jobs). The wire types and
// subjects are in contracts.
package jobstore

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
	"github.com/simmatch/simmatch/contracts"
)

// Jobs submits and follows asynchronous jobs in JetStream. The streams and
// the bucket are made by the processors (which know the replica count);
// until one has started with JetStream, calls fail with no_processor.
type Jobs struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	chunkSize int
	ns        contracts.CatalogNamespace // WithTenant; the zero value: every job, stored names
}

// Option configures a Jobs client.
type Option func(*Jobs) error

// WithTenant makes the client act for tenant, as contracts.WithTenant makes
// a contracts.Client: the jobs it submits belong to tenant (their owner, as
// the bridge's tenants' jobs) and name the tenant's catalogs (a query job's
// catalog, a match's source and target, a dedupe's catalog are qualified;
// statuses, entries and errors name them unqualified), and it sees only the
// tenant's jobs: another's is the not_found of an unknown id. A namespace,
// not a permission: whoever holds the NATS credentials may use any tenant.
func WithTenant(tenant string) Option {
	return func(j *Jobs) error {
		if err := contracts.ValidateTenant(tenant); err != nil {
			return fmt.Errorf("jobstore: %w", err)
		}
		j.ns = contracts.TenantNamespace(tenant)
		return nil
	}
}

// NewJobs returns a Jobs client on nc; chunkSize 0 means contracts.DefaultJobChunkSize.
func NewJobs(nc *nats.Conn, chunkSize int, opts ...Option) (*Jobs, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("contracts: jetstream: %w", err)
	}
	if chunkSize <= 0 {
		chunkSize = contracts.DefaultJobChunkSize
	}
	j := &Jobs{nc: nc, js: js, chunkSize: chunkSize}
	for _, o := range opts {
		if err := o(j); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// forTenant is the owner and the request (a copy, its catalogs qualified)
// a job is submitted with, and the names as the caller gave them: for a
// client made WithTenant the tenant's, otherwise owner and req as they are.
func (j *Jobs) forTenant(owner string, req *contracts.JobRequest) (string, *contracts.JobRequest, []string, error) {
	if !j.ns.Scoped() {
		return owner, req, nil, nil
	}
	if owner != "" && owner != j.ns.Tenant() {
		return "", nil, nil, contracts.Errorf(contracts.CodeInvalidRequest, "jobstore: this client submits jobs of tenant %s, not %s", j.ns.Tenant(), owner)
	}
	q, names, err := j.ns.QualifyJob(req)
	return j.ns.Tenant(), q, names, err
}

func jobsUnavailable(err error) error {
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrNoResponders) {
		return &contracts.Error{Code: contracts.CodeNoProcessor, Message: "jobs are not available: no processor with JetStream has set them up yet; start one (the NATS server needs JetStream)"}
	}
	return contracts.Errorf(contracts.CodeInternal, "jobs: %v", err)
}

func (j *Jobs) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := j.js.KeyValue(ctx, contracts.JobsBucket)
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
// Submit returns. The job has no owner (SubmitFor), or the client's tenant
// (WithTenant).
func (j *Jobs) Submit(ctx context.Context, req *contracts.JobRequest) (*contracts.JobStatus, error) {
	return j.SubmitFor(ctx, "", req)
}

// SubmitFor is Submit for a job that belongs to tenant owner
// (contracts.JobMeta.Owner; "" for none): see Owned. A client made
// WithTenant submits for its tenant only (owner "" or the tenant).
func (j *Jobs) SubmitFor(ctx context.Context, owner string, req *contracts.JobRequest) (*contracts.JobStatus, error) {
	owner, req, names, err := j.forTenant(owner, req)
	if err != nil {
		return nil, err
	}
	st, err := j.submit(ctx, owner, req)
	return st, j.ns.FixError(err, names...)
}

func (j *Jobs) submit(ctx context.Context, owner string, req *contracts.JobRequest) (*contracts.JobStatus, error) {
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
	if req.Match != nil || req.Dedupe != nil || req.Catalog != "" {
		if err := j.checkCatalogs(ctx, req); err != nil {
			return nil, err
		}
	}
	if req.Match != nil || req.Dedupe != nil {
		return j.submitPlanned(ctx, kv, st, id, owner, now, req)
	}
	matchBytes, budget := j.resultBudget(req)
	for _, q := range req.Query {
		if err := j.fits(q, req, matchBytes, budget); err != nil {
			return nil, err
		}
	}
	offsets := splitChunks(req.Query, j.chunkSize, matchBytes, budget)
	chunks := len(offsets)
	meta := &contracts.JobMeta{ID: id, Owner: owner, ProductDescriptions: req.ProductDescriptions, Catalog: req.Catalog, TopK: req.TopK, Threshold: req.Threshold,
		Notify: req.Notify, Total: len(req.Query), Offsets: offsets, Chunks: chunks, Created: now}
	if ttl := st.TTL(); ttl > 0 {
		meta.Expires = now.Add(ttl)
	}
	data, _ := json.Marshal(meta)
	if mp := j.nc.MaxPayload(); mp > 0 && int64(len(data)) > mp-1024 {
		return nil, &contracts.Error{Code: contracts.CodePayloadTooLarge, Field: "product_descriptions",
			Message: fmt.Sprintf("product_descriptions: the job's descriptions take %d bytes; the NATS server's max_payload is %d", len(data), mp)}
	}
	if err := j.create(ctx, kv, owner, id, data); err != nil {
		return nil, err
	}
	var acks []jetstream.PubAckFuture
	for i := range chunks {
		lo := offsets[i]
		c := contracts.JobChunk{Job: id, Index: i, Offset: lo, Query: req.Query[lo : lo+meta.ChunkLen(i)]}
		b, _ := json.Marshal(c)
		f, err := j.js.PublishAsync(contracts.SubjectJobChunkPrefix+id, b, jetstream.WithMsgID(fmt.Sprintf("%s.%d", id, i)))
		if err != nil {
			return nil, j.drop(kv, owner, id, j.chunkError(ctx, err, i, id))
		}
		acks = append(acks, f)
	}
	for i, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return nil, j.drop(kv, owner, id, j.chunkError(ctx, err, i, id))
		case <-ctx.Done():
			return nil, &contracts.Error{Code: contracts.CodeTimeout, Message: "job " + id + " was not fully queued before the deadline"}
		}
	}
	return statusOf(meta, 0), nil
}

// create stores a new job's entry and, for a tenant's job, its index entry
// (ownerKey). A bucket refusing the write for space answers
// insufficient_storage naming SettingBucketMaxBytes.
func (j *Jobs) create(ctx context.Context, kv jetstream.KeyValue, owner, id string, data []byte) error {
	if _, err := kv.Create(ctx, id, data); err != nil {
		return j.storeError(ctx, err, "KV_"+contracts.JobsBucket, "the jobs bucket "+contracts.JobsBucket, SettingBucketMaxBytes,
			fmt.Sprintf("store job %s", id))
	}
	if owner == "" {
		return nil
	}
	// After the entry, so that an index entry always has its job (ActiveFor
	// deletes the ones without).
	if _, err := kv.Put(ctx, ownerKey(owner, id), []byte(id)); err != nil {
		return j.drop(kv, owner, id, j.storeError(ctx, err, "KV_"+contracts.JobsBucket, "the jobs bucket "+contracts.JobsBucket,
			SettingBucketMaxBytes, fmt.Sprintf("index job %s", id)))
	}
	return nil
}

// drop deletes a job that could not be submitted (its entry, index entry
// and queued chunks), on its own deadline, and returns err.
func (j *Jobs) drop(kv jetstream.KeyValue, owner, id string, err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cs, serr := j.js.Stream(ctx, contracts.JobChunksStream); serr == nil {
		_ = cs.Purge(ctx, jetstream.WithPurgeSubject(contracts.SubjectJobChunkPrefix+id))
	}
	if owner != "" {
		_ = kv.Purge(ctx, ownerKey(owner, id))
	}
	_ = kv.Purge(ctx, id)
	return err
}

// chunkError is the error of chunk i of job id refused by the chunks stream.
func (j *Jobs) chunkError(ctx context.Context, err error, i int, id string) error {
	return j.storeError(ctx, err, contracts.JobChunksStream, "the job chunks stream "+contracts.JobChunksStream, SettingChunksMaxBytes,
		fmt.Sprintf("queue chunk %d of job %s", i, id))
}

// storeError is a write to stream refused: insufficient_storage naming
// setting and the stream's MaxBytes when it was for space (FullError),
// otherwise internal, saying what failed.
func (j *Jobs) storeError(ctx context.Context, err error, stream, what, setting, doing string) error {
	if !Full(err) {
		return contracts.Errorf(contracts.CodeInternal, "jobs: %s: %v", doing, err)
	}
	// The request's deadline may be what is left of it: read the limit on one of its own.
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var limit int64
	if s, serr := j.js.Stream(ictx, stream); serr == nil {
		limit = s.CachedInfo().Config.MaxBytes
	}
	return FullError(err, what, setting, limit)
}

// ownerKey is the jobs bucket's index entry of tenant owner's job id, by
// which ActiveFor finds a tenant's jobs without reading every job. The
// tenant's '.'s, which separate key tokens, are written as '=' (as in
// contracts.TenantCatalogPrefix), so each tenant is one token.
func ownerKey(owner, id string) string { return ownerPrefix(owner) + id }

func ownerPrefix(owner string) string {
	return "owner." + strings.ReplaceAll(owner, ".", contracts.TenantSeparator) + "."
}

// ActiveFor counts tenant's jobs that are submitting, queued or running:
// what a quota on a tenant's concurrent jobs bounds. The index entries of
// jobs that ended (or expired) are deleted as they are met, so a count
// reads the tenant's unfinished jobs and the ones ended since the last.
func (j *Jobs) ActiveFor(ctx context.Context, tenant string) (int, error) {
	kv, err := j.bucket(ctx)
	if err != nil {
		return 0, err
	}
	prefix := ownerPrefix(tenant)
	lister, err := kv.ListKeysFiltered(ctx, prefix+"*")
	if err != nil {
		return 0, contracts.Errorf(contracts.CodeInternal, "jobs: list the jobs of tenant %s: %v", tenant, err)
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, strings.TrimPrefix(k, prefix))
	}
	if ctx.Err() != nil { // the list may be cut short
		return 0, &contracts.Error{Code: contracts.CodeTimeout, Message: "jobs: the jobs of tenant " + tenant + " were not counted before the deadline"}
	}
	n := 0
	for _, id := range ids {
		st, err := j.Status(ctx, id)
		if errors.Is(err, contracts.ErrNotFound) {
			_ = kv.Delete(ctx, prefix+id)
			continue
		}
		if err != nil {
			return 0, err
		}
		switch st.State {
		case contracts.JobDone, contracts.JobFailed, contracts.JobCancelled:
			_ = kv.Delete(ctx, prefix+id)
		default:
			n++
		}
	}
	return n, nil
}

// resultBudget returns the bytes of one query's matches in a query job's
// stored results, and the bytes a chunk (with its results) may take.
func (j *Jobs) resultBudget(req *contracts.JobRequest) (matchBytes, budget int) {
	matches := len(req.ProductDescriptions)
	perMatch := 30
	if req.Catalog != "" {
		// A catalog's matches carry their ids.
		matches, perMatch = contracts.DefaultCatalogTopK, 30+contracts.DefaultCatalogLimits.MaxIDBytes
	}
	if req.TopK != nil {
		matches = min(matches, *req.TopK)
	}
	budget = 512 << 10
	if mp := int(j.nc.MaxPayload()); mp > 0 {
		budget = mp/2 - 4096
	}
	return perMatch * matches, budget
}

// fits says whether the results of query q fit in a NATS message.
func (j *Jobs) fits(q string, req *contracts.JobRequest, matchBytes, budget int) error {
	if queryCost(q, matchBytes) > budget {
		return &contracts.Error{Code: contracts.CodePayloadTooLarge, Field: "product_descriptions",
			Message: fmt.Sprintf("product_descriptions: the results of one query (%d bytes of matches) would not fit in a NATS message (max_payload %d); set top_k", matchBytes, j.nc.MaxPayload())}
	}
	return nil
}

// queryCost is what one query takes in a chunk and its results: the query
// twice (chunk, results), its matches, JSON.
func queryCost(q string, matchBytes int) int { return 2*len(q) + matchBytes + 64 }

func statusOf(m *contracts.JobMeta, done int) *contracts.JobStatus {
	s := &contracts.JobStatus{ID: m.ID, Kind: m.Kind, Done: done, Total: m.Total, Chunks: m.Chunks, Created: m.Created, Expires: m.Expires, Error: m.Error}
	if s.Kind == "" {
		s.Kind = contracts.JobKindQuery
	}
	switch {
	case m.State != "":
		s.State = m.State
	case m.Submitting:
		s.State = contracts.JobSubmitting
	case !planned(m):
		s.State = contracts.JobQueued // its size is known once a processor has planned it
	case done == m.Total:
		s.State = contracts.JobDone
	case done > 0:
		s.State = contracts.JobRunning
	default:
		s.State = contracts.JobQueued
	}
	return s
}

// Meta returns a job's entry, or not_found. A client made WithTenant gets
// a copy naming the catalogs as its tenant does, and not_found for another
// tenant's job.
func (j *Jobs) Meta(ctx context.Context, id string) (*contracts.JobMeta, jetstream.KeyValueEntry, error) {
	m, e, err := j.meta(ctx, id)
	if err != nil || !j.ns.Scoped() {
		return m, e, err
	}
	if m.Match != nil {
		mj := *m.Match
		m.Match = &mj
	}
	if m.Dedupe != nil {
		d := *m.Dedupe
		m.Dedupe = &d
	}
	for _, name := range []*string{&m.Catalog, matchName(m.Match, true), matchName(m.Match, false), dedupeName(m.Dedupe)} {
		if name != nil {
			*name, _ = j.ns.Unqualify(*name)
		}
	}
	m.Error = j.ns.Strip(m.Error)
	return m, e, nil
}

func matchName(m *contracts.MatchJob, source bool) *string {
	switch {
	case m == nil:
		return nil
	case source:
		return &m.Source
	}
	return &m.Target
}

func dedupeName(d *contracts.DedupeJob) *string {
	if d == nil {
		return nil
	}
	return &d.Catalog
}

// meta is the job's entry as stored; not_found for a job that is not the
// tenant's of a client made WithTenant.
func (j *Jobs) meta(ctx context.Context, id string) (*contracts.JobMeta, jetstream.KeyValueEntry, error) {
	if !validJobID(id) {
		return nil, nil, &contracts.Error{Code: contracts.CodeNotFound, Message: fmt.Sprintf("no job %q: job ids are 16 hex digits", id)}
	}
	kv, err := j.bucket(ctx)
	if err != nil {
		return nil, nil, err
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil, jobNotFound(id)
	}
	if err != nil {
		return nil, nil, contracts.Errorf(contracts.CodeInternal, "jobs: read job %s: %v", id, err)
	}
	var m contracts.JobMeta
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return nil, nil, contracts.Errorf(contracts.CodeInternal, "jobs: decode job %s: %v", id, err)
	}
	if j.ns.Scoped() && m.Owner != j.ns.Tenant() {
		return nil, nil, jobNotFound(id)
	}
	return &m, e, nil
}

// jobNotFound is the error for a job that is not there, or not the
// caller's (Owned): the two are told apart by nobody.
func jobNotFound(id string) error {
	return &contracts.Error{Code: contracts.CodeNotFound, Message: fmt.Sprintf("no job %s: it never existed or its retention ended", id)}
}

// Owned returns nil when the job id belongs to tenant, and otherwise the
// very error of an unknown id (not_found), so that other tenants learn
// nothing of it. A job submitted without an owner belongs to no tenant.
func (j *Jobs) Owned(ctx context.Context, id, tenant string) error {
	m, _, err := j.meta(ctx, id)
	if err != nil {
		return err
	}
	if m.Owner != tenant {
		return jobNotFound(id)
	}
	return nil
}

func validJobID(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// Status returns a job's state and progress; a client made WithTenant
// reads a failed job's error with its tenant's catalog names.
func (j *Jobs) Status(ctx context.Context, id string) (*contracts.JobStatus, error) {
	m, _, err := j.meta(ctx, id)
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
	st := statusOf(m, n)
	st.Error = j.ns.Strip(st.Error)
	return st, nil
}

// doneChunks lists the chunks whose results are stored.
func (j *Jobs) doneChunks(ctx context.Context, m *contracts.JobMeta) ([]int, error) {
	s, err := j.js.Stream(ctx, contracts.JobResultsStream)
	if err != nil {
		return nil, jobsUnavailable(err)
	}
	prefix := contracts.SubjectJobResultPrefix + m.ID + "."
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+"*"))
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeInternal, "jobs: results of %s: %v", m.ID, err)
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
func (j *Jobs) Cancel(ctx context.Context, id string) (*contracts.JobStatus, error) {
	for range 10 { // optimistic concurrency against a processor marking it failed
		m, e, err := j.meta(ctx, id)
		if err != nil {
			return nil, err
		}
		st, err := j.Status(ctx, id)
		if err != nil {
			return nil, err
		}
		if st.State == contracts.JobDone || st.State == contracts.JobFailed || st.State == contracts.JobCancelled {
			return st, nil
		}
		m.State = contracts.JobCancelled
		data, _ := json.Marshal(m)
		kv, err := j.bucket(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := kv.Update(ctx, id, data, e.Revision()); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			return nil, contracts.Errorf(contracts.CodeInternal, "jobs: cancel %s: %v", id, err)
		}
		if s, err := j.js.Stream(ctx, contracts.JobChunksStream); err == nil {
			_ = s.Purge(ctx, jetstream.WithPurgeSubject(contracts.SubjectJobChunkPrefix+id))
		}
		return j.Status(ctx, id)
	}
	return nil, contracts.Errorf(contracts.CodeInternal, "jobs: cancel %s: the job kept changing; retry", id)
}

// Results calls yield with every query's results in request order. The job
// must be done: otherwise the error is a job_not_done. A match or dedupe
// job's results are read with Lines.
func (j *Jobs) Results(ctx context.Context, id string, yield func(contracts.JobResult) error) error {
	return j.eachChunk(ctx, id, "queries", func(m *contracts.JobMeta, _ int, cr *contracts.JobChunkResult) error {
		for q, query := range cr.Query {
			res := contracts.JobResult{Query: query, Matches: make([]contracts.Match, len(cr.Matches[q]))}
			for k, pair := range cr.Matches[q] {
				idx := int(pair[0])
				res.Matches[k] = contracts.Match{Index: idx, Score: pair[1]}
				if q < len(cr.IDs) && k < len(cr.IDs[q]) {
					res.Matches[k].ID = cr.IDs[q][k]
				}
				if idx >= 0 && idx < len(m.ProductDescriptions) {
					res.Matches[k].Description = m.ProductDescriptions[idx]
				}
			}
			if err := yield(res); err != nil {
				return err
			}
		}
		return nil
	})
}

// eachChunk calls each with every stored chunk result of a done job, in
// chunk order; what names the job's rows in the not-done error.
func (j *Jobs) eachChunk(ctx context.Context, id, what string, each func(m *contracts.JobMeta, i int, cr *contracts.JobChunkResult) error) error {
	st, err := j.Status(ctx, id)
	if err != nil {
		return err
	}
	if st.State != contracts.JobDone {
		return &contracts.Error{Code: contracts.CodeJobNotDone, Message: fmt.Sprintf("job %s is %s (%d of %d %s done); its results are ready when its state is done", id, st.State, st.Done, st.Total, what)}
	}
	m, _, err := j.meta(ctx, id)
	if err != nil {
		return err
	}
	s, err := j.js.Stream(ctx, contracts.JobResultsStream)
	if err != nil {
		return jobsUnavailable(err)
	}
	for i := range m.Chunks {
		raw, err := s.GetLastMsgForSubject(ctx, fmt.Sprintf("%s%s.%d", contracts.SubjectJobResultPrefix, id, i))
		if err != nil {
			return contracts.Errorf(contracts.CodeInternal, "jobs: results of chunk %d of %s: %v", i, id, err)
		}
		var cr contracts.JobChunkResult
		if err := json.Unmarshal(raw.Data, &cr); err != nil {
			return contracts.Errorf(contracts.CodeInternal, "jobs: decode chunk %d of %s: %v", i, id, err)
		}
		if err := each(m, i, &cr); err != nil {
			return err
		}
	}
	return nil
}

// Wait polls the job's status every interval until it is done, failed or
// cancelled, or ctx ends; progress, when not nil, sees every status.
func (j *Jobs) Wait(ctx context.Context, id string, interval time.Duration, progress func(*contracts.JobStatus)) (*contracts.JobStatus, error) {
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
		if st.State == contracts.JobDone || st.State == contracts.JobFailed || st.State == contracts.JobCancelled {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, &contracts.Error{Code: contracts.CodeTimeout, Message: fmt.Sprintf("job %s still %s after the wait (%d of %d)", id, st.State, st.Done, st.Total)}
		case <-t.C:
		}
	}
}

// splitChunks returns the first query of each chunk: at most size queries,
// and few enough that both the chunk and its stored results (matchBytes of
// matches per query) stay within budget bytes.
func splitChunks(queries []string, size, matchBytes, budget int) []int {
	var offsets []int
	n, bytes := 0, 0
	for i, q := range queries {
		cost := queryCost(q, matchBytes)
		if n == 0 || n == size || bytes+cost > budget {
			offsets = append(offsets, i)
			n, bytes = 0, 0
		}
		n++
		bytes += cost
	}
	return offsets
}
