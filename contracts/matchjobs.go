package contracts

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// JobKind is what a job computes.
type JobKind string

// The kinds of job.
const (
	JobKindQuery  JobKind = "query"  // queries ranked against descriptions or a catalog
	JobKindMatch  JobKind = "match"  // every product of a catalog matched against another
	JobKindDedupe JobKind = "dedupe" // the near-duplicates of one catalog, as clusters
)

// Defaults and bounds of matching jobs.
const (
	DefaultMatchTopK       = 1
	MaxMatchTopK           = 100
	DefaultDedupeNeighbors = 50
	MaxDedupeNeighbors     = 1000
	MaxBlockOnKeys         = 8
	DefaultMatchChunkSize  = 512 // source products per chunk, fewer when their results could outgrow a NATS message
	DefaultDedupeMaxPairs  = 1_000_000
	dedupeThresholdMinimum = -1.0
	matchThresholdMaximum  = 1.0
)

// MatchJob links every product of the Source catalog to its best matches
// in the Target catalog. Both must hold embeddings of the same model
// version.
type MatchJob struct {
	Source string `json:"source"`
	Target string `json:"target"`
	// TopK keeps the K best matches per source product; nil means DefaultMatchTopK.
	TopK *int `json:"top_k,omitempty"`
	// Threshold drops matches whose cosine similarity is below it.
	Threshold *float64 `json:"threshold,omitempty"`
	// BlockOn compares only products whose values of these metadata keys
	// are equal; a source product lacking one of them matches nothing.
	BlockOn []string `json:"block_on,omitempty"`
	// MutualBest keeps a pair only when each is the other's best match (at
	// most one match per source product).
	MutualBest bool `json:"mutual_best,omitempty"`
	// Mode is dense (default), keyword or hybrid, as in SearchOptions.
	Mode string `json:"mode,omitempty"`
}

// EffectiveTopK is TopK with its default (1 with MutualBest).
func (m *MatchJob) EffectiveTopK() int {
	if m.MutualBest {
		return 1
	}
	return derefOr(m.TopK, DefaultMatchTopK)
}

// Validate checks the job; errors name the field as match.<name>.
func (m *MatchJob) Validate() error {
	if err := validateCatalogField("match.source", m.Source); err != nil {
		return err
	}
	if err := validateCatalogField("match.target", m.Target); err != nil {
		return err
	}
	if m.TopK != nil && (*m.TopK < 1 || *m.TopK > MaxMatchTopK) {
		return FieldError("match.top_k", MaxMatchTopK, "must be between 1 and %d, got %d", MaxMatchTopK, *m.TopK)
	}
	if m.MutualBest && m.TopK != nil && *m.TopK != 1 {
		return FieldError("match.top_k", 1, "mutual_best keeps one match per source product: leave top_k out or set it to 1")
	}
	if err := validateThreshold("match.threshold", m.Threshold); err != nil {
		return err
	}
	switch m.Mode {
	case "", ModeDense, ModeHybrid:
	case ModeKeyword:
		if m.Threshold != nil {
			return FieldError("match.threshold", 0, "is a cosine similarity and applies to modes dense and hybrid; keyword scores are BM25")
		}
	default:
		return FieldError("match.mode", 0, "%q is not a search mode; use dense, keyword or hybrid", m.Mode)
	}
	return validateBlockOn("match.block_on", m.BlockOn)
}

// DedupeJob finds the products of Catalog whose cosine similarity is at
// least Threshold, and groups them into clusters (connected components).
type DedupeJob struct {
	Catalog string `json:"catalog"`
	// Threshold is required: pairs scoring below it are not duplicates.
	Threshold *float64 `json:"threshold"`
	// BlockOn pairs only products whose values of these keys are equal.
	BlockOn []string `json:"block_on,omitempty"`
	// MaxNeighbors bounds the pairs found per product; nil means
	// DefaultDedupeNeighbors.
	MaxNeighbors *int `json:"max_neighbors,omitempty"`
}

// EffectiveMaxNeighbors is MaxNeighbors with its default.
func (d *DedupeJob) EffectiveMaxNeighbors() int {
	return derefOr(d.MaxNeighbors, DefaultDedupeNeighbors)
}

// Validate checks the job; errors name the field as dedupe.<name>.
func (d *DedupeJob) Validate() error {
	if err := validateCatalogField("dedupe.catalog", d.Catalog); err != nil {
		return err
	}
	if d.Threshold == nil {
		return FieldError("dedupe.threshold", 0, "required: the cosine similarity from which two products are duplicates, e.g. 0.9")
	}
	if err := validateThreshold("dedupe.threshold", d.Threshold); err != nil {
		return err
	}
	if d.MaxNeighbors != nil && (*d.MaxNeighbors < 1 || *d.MaxNeighbors > MaxDedupeNeighbors) {
		return FieldError("dedupe.max_neighbors", MaxDedupeNeighbors, "must be between 1 and %d, got %d", MaxDedupeNeighbors, *d.MaxNeighbors)
	}
	return validateBlockOn("dedupe.block_on", d.BlockOn)
}

func validateCatalogField(field, name string) error {
	if name == "" {
		return FieldError(field, 0, "required: a catalog name")
	}
	if err := ValidateCatalogName(name); err != nil {
		return renameField(err, field)
	}
	return nil
}

// renameField is err (a FieldError of field "catalog") naming field instead.
func renameField(err error, field string) error {
	e := *AsError(err)
	e.Message = field + strings.TrimPrefix(e.Message, e.Field)
	e.Field = field
	return &e
}

func validateThreshold(field string, t *float64) error {
	if t != nil && (math.IsNaN(*t) || *t < dedupeThresholdMinimum || *t > matchThresholdMaximum) {
		return FieldError(field, 0, "must be a cosine similarity between -1 and 1, got %v", *t)
	}
	return nil
}

func validateBlockOn(field string, keys []string) error {
	if len(keys) > MaxBlockOnKeys {
		return FieldError(field, MaxBlockOnKeys, "has %d keys; the limit is %d", len(keys), MaxBlockOnKeys)
	}
	for i, k := range keys {
		f := fmt.Sprintf("%s[%d]", field, i)
		if k == "" || len(k) > DefaultCatalogLimits.MaxMetadataBytes {
			return FieldError(f, DefaultCatalogLimits.MaxMetadataBytes, "must be a metadata key of 1 to %d bytes", DefaultCatalogLimits.MaxMetadataBytes)
		}
		if slices.Index(keys, k) != i {
			return FieldError(f, 0, "%q repeats; each key once", k)
		}
	}
	return nil
}

// Kind is the kind of job r asks for.
func (r *JobRequest) Kind() JobKind {
	switch {
	case r.Match != nil:
		return JobKindMatch
	case r.Dedupe != nil:
		return JobKindDedupe
	}
	return JobKindQuery
}

// validateKind checks that r asks for exactly one kind of job, and that the
// fields of the other kinds are absent.
func (r *JobRequest) validateKind() error {
	if r.Match != nil && r.Dedupe != nil {
		return FieldError("dedupe", 0, "a job is one of query, match or dedupe: this one has both match and dedupe")
	}
	if r.Match == nil && r.Dedupe == nil {
		return nil
	}
	kind := "match"
	if r.Dedupe != nil {
		kind = "dedupe"
	}
	for _, f := range []struct {
		name string
		set  bool
	}{{"query", len(r.Query) > 0}, {"product_descriptions", r.ProductDescriptions != nil}, {"catalog", r.Catalog != ""},
		{"top_k", r.TopK != nil}, {"threshold", r.Threshold != nil}} {
		if f.set {
			return FieldError(f.name, 0, "does not apply to a %s job: its options go inside %q", kind, kind)
		}
	}
	return nil
}

// validateCatalogQuery checks a query job on a stored catalog.
func (r *JobRequest) validateCatalogQuery(lim JobLimits) error {
	if err := validateCatalogField("catalog", r.Catalog); err != nil {
		return err
	}
	if r.ProductDescriptions != nil {
		return FieldError("product_descriptions", 0, "give either product_descriptions or catalog, not both")
	}
	if r.TopK != nil && (*r.TopK < 1 || *r.TopK > MaxOffset) {
		return FieldError("top_k", MaxOffset, "must be between 1 and %d, got %d", MaxOffset, *r.TopK)
	}
	if err := validateThreshold("threshold", r.Threshold); err != nil {
		return err
	}
	if len(r.Query) == 0 {
		return FieldError("query", 0, "required: a non-empty list of strings")
	}
	if lim.MaxQueries > 0 && len(r.Query) > lim.MaxQueries {
		return FieldError("query", lim.MaxQueries, "has %d texts; the limit for a job is %d", len(r.Query), lim.MaxQueries)
	}
	for i, q := range r.Query {
		if q == "" {
			return FieldError(fmt.Sprintf("query[%d]", i), 0, "is empty")
		}
		if lim.MaxTextChars > 0 && len([]rune(q)) > lim.MaxTextChars {
			return FieldError(fmt.Sprintf("query[%d]", i), lim.MaxTextChars, "has %d characters; the limit is %d", len([]rune(q)), lim.MaxTextChars)
		}
	}
	return nil
}

// MatchScore is one match of a match job's result line.
type MatchScore struct {
	ID    string  `json:"id"`
	Score float64 `json:"score"`
}

// MatchResult is one source product's line of a match job's results (and,
// stored, one row of a dedupe chunk): its best matches, best first.
type MatchResult struct {
	SourceID string       `json:"source_id"`
	Matches  []MatchScore `json:"matches"`
}

// DedupePair is two duplicates of a dedupe job: A < B, by id.
type DedupePair struct {
	A     string  `json:"a"`
	B     string  `json:"b"`
	Score float64 `json:"score"`
}

// DedupeCluster is one line of a dedupe job's results: a connected
// component of the pairs at or above the threshold, its ids sorted, and
// its pairs sorted by A then B.
type DedupeCluster struct {
	Cluster []string     `json:"cluster"`
	Pairs   []DedupePair `json:"pairs"`
}
