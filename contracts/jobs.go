package contracts

import (
	"strings"
	"time"
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
	// DefaultJobMaxBodyBytes bounds a job's JSON body, which is read and
	// decoded whole: bigger query jobs are sent as NDJSON.
	DefaultJobMaxBodyBytes = 32 << 20
	// DefaultJobMaxNDJSONBytes bounds a query job sent as JSON lines
	// (application/x-ndjson), which is streamed into the job stream in
	// chunks, never held whole.
	DefaultJobMaxNDJSONBytes = 2 << 30
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
	// JobSubmitting is a job whose queries are still arriving (NDJSON):
	// its chunks run as they are queued; Total and Chunks grow until the
	// submission ends. A submission that fails is deleted.
	JobSubmitting JobState = "submitting"
)

// JobRequest is a job of one of three kinds: a /predict-shaped request
// with many queries (Query, ranked against ProductDescriptions or a stored
// Catalog), a matching job (Match) or a deduplication job (Dedupe).
type JobRequest struct {
	// Query holds the queries; on the wire a single string or a list.
	Query Queries `json:"query,omitempty"`
	// ProductDescriptions is ranked for every query.
	ProductDescriptions []string `json:"product_descriptions,omitempty"`
	// Catalog, instead of ProductDescriptions, ranks the stored catalog's
	// products for every query, as /predict does when it names a catalog.
	Catalog string `json:"catalog,omitempty"`
	// Match matches every product of one catalog against another.
	Match *MatchJob `json:"match,omitempty"`
	// Dedupe finds the near-duplicate products of one catalog.
	Dedupe *DedupeJob `json:"dedupe,omitempty"`
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
	// Kind is query, match or dedupe.
	Kind JobKind `json:"kind,omitempty"`
	// Done and Total count queries (a match or dedupe job: source
	// products); a match or dedupe job's Total is 0 until a processor has
	// listed its source catalog (planned it).
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

// JobChunk is one chunk of a job's queries, as processors receive it. A
// match or dedupe job starts with one planning chunk (Plan); the processor
// that takes it lists the source catalog and publishes the chunks of source
// product IDs, all of plan generation Gen.
type JobChunk struct {
	Job    string   `json:"job"`
	Index  int      `json:"index"`
	Offset int      `json:"offset"`
	Query  []string `json:"query,omitempty"`
	IDs    []string `json:"ids,omitempty"`
	Plan   bool     `json:"plan,omitempty"`
	Gen    int      `json:"gen,omitempty"`
}

// JobMeta is a job's key-value entry: what processors need besides the
// chunk, and the state set by cancellation or failure.
type JobMeta struct {
	ID string `json:"id"`
	// Owner is the tenant that submitted the job, "" when authentication
	// was off: the bridge tells other tenants (admins aside) that the job
	// does not exist.
	Owner               string     `json:"owner,omitempty"`
	Kind                JobKind    `json:"kind,omitempty"` // "" is JobKindQuery
	ProductDescriptions []string   `json:"product_descriptions,omitempty"`
	Catalog             string     `json:"catalog,omitempty"`
	Match               *MatchJob  `json:"match,omitempty"`
	Dedupe              *DedupeJob `json:"dedupe,omitempty"`
	// Planned is set (with Total, Offsets, Chunks and Gen) once a
	// processor has published a match or dedupe job's chunks.
	Planned   bool     `json:"planned,omitempty"`
	Gen       int      `json:"gen,omitempty"`
	TopK      *int     `json:"top_k,omitempty"`
	Threshold *float64 `json:"threshold,omitempty"`
	Notify    bool     `json:"notify,omitempty"`
	Total     int      `json:"total"`
	// Offsets holds the index of each chunk's first query.
	Offsets []int     `json:"offsets"`
	Chunks  int       `json:"chunks"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Submitting is set while a streamed (NDJSON) job's queries are still
	// being queued: Total, Offsets and Chunks are not final yet, and
	// Notify is held back until they are. Processors run its chunks.
	Submitting bool `json:"submitting,omitempty"`
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

// JobChunkResult is what a processor stores for one chunk: per query, the
// matches as [index, score] pairs; descriptions come from the job's entry.
type JobChunkResult struct {
	Query   []string       `json:"query,omitempty"`
	Matches [][][2]float64 `json:"matches,omitempty"`
	// IDs are, for a job on a catalog, the product id of each match.
	IDs [][]string `json:"ids,omitempty"`
	// Rows are a match or dedupe chunk's results, one per source product.
	Rows []MatchResult `json:"rows,omitempty"`
}

// JobLimits bound a job.
type JobLimits struct {
	// Limits bound the texts and the descriptions, as for /predict;
	// MaxQueries and MaxBodyBytes are replaced by the two below.
	Limits
	MaxQueries   int
	MaxBodyBytes int
	// MaxNDJSONBytes bounds a job sent as JSON lines; 0 means
	// DefaultJobMaxNDJSONBytes. The same limit holds for every tenant.
	MaxNDJSONBytes int
}

// DefaultJobLimits are the limits used when none are configured.
var DefaultJobLimits = JobLimits{Limits: DefaultLimits, MaxQueries: DefaultJobMaxQueries, MaxBodyBytes: DefaultJobMaxBodyBytes, MaxNDJSONBytes: DefaultJobMaxNDJSONBytes}

// DecodeJobRequest decodes and validates a job.
func DecodeJobRequest(data []byte, lim JobLimits) (*JobRequest, error) {
	return decodeValid(data, lim.MaxBodyBytes, "the limit for a job", func(err error) *Error {
		e := decodeError(err)
		if strings.Contains(e.Message, "unknown field") {
			e.Message = e.Field + ": unknown field; known fields are query, product_descriptions, catalog, match, dedupe, top_k, threshold, notify"
		}
		return e
	}, func(r *JobRequest) error { return r.Validate(lim) })
}

// Validate checks r against lim: exactly one kind of job, each field valid.
func (r *JobRequest) Validate(lim JobLimits) error {
	if err := r.validateKind(); err != nil {
		return err
	}
	switch {
	case r.Match != nil:
		return r.Match.Validate()
	case r.Dedupe != nil:
		return r.Dedupe.Validate()
	case r.Catalog != "":
		return r.validateCatalogQuery(lim)
	}
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

// JobResult is one query's results, as GET /v1/jobs/{id}/results streams them.
type JobResult struct {
	Query   string  `json:"query"`
	Matches []Match `json:"matches"`
}

// ValidateOptions checks a streamed (NDJSON) query job's options, the
// request without its queries: r.Query must be empty, and neither Match nor
// Dedupe may be set (they take a JSON body).
func (r *JobRequest) ValidateOptions(lim JobLimits) error {
	if len(r.Query) > 0 {
		return FieldError("query", 0, "goes on the lines after the options line, one query per line")
	}
	if r.Match != nil || r.Dedupe != nil {
		return FieldError("match", 0, "match and dedupe jobs take a JSON body (application/json), not JSON lines")
	}
	probe := *r
	probe.Query = Queries{"x"}
	return probe.Validate(lim)
}

// ValidateQuery checks one query of a streamed job whose options passed
// ValidateOptions, as Validate checks each of a JSON job's queries.
func (r *JobRequest) ValidateQuery(q string, lim JobLimits) error {
	if r.Catalog != "" {
		probe := JobRequest{Query: Queries{q}, Catalog: r.Catalog}
		return probe.validateCatalogQuery(JobLimits{Limits: lim.Limits})
	}
	pr := Request{Query: Queries{q}, ProductDescriptions: []string{"x"}}
	plim := lim.Limits
	plim.MaxQueries = 0
	return pr.Validate(plim)
}
