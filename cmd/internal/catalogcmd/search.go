package catalogcmd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
)

const searchUsage = `Usage: simmatch catalog search --catalog NAME [flags] QUERY...

Ranks a stored catalog's products for each query (over NATS, like import):
dense (cosine similarity, the default), keyword (BM25) or hybrid (both lists
fused). Examples:

  simmatch catalog search --catalog shop "cordless drill"
  simmatch catalog search --catalog shop --mode hybrid --explain DCD771C2
  simmatch catalog search --catalog shop --filter brand=Bosch \
      --filter-json '{"price": {"$gte": 50, "$lt": 200}}' --count --facet category drill
`

// searchFlags are the flags of catalog search, turned into a SearchRequest
// by request.
type searchFlags struct {
	catalog, mode, fusion, threshold, filterJSON, groupBy string
	rrfK, topK, offset, candidates                        int
	alpha                                                 float64
	filters, facets                                       []string
	count, explain, json                                  bool
	timeout                                               time.Duration
}

func (s *searchFlags) register(f *cli.Flags) {
	f.String(&s.catalog, "catalog", "", "", "catalog to search")
	f.String(&s.mode, "mode", "", "dense", "search mode: dense (cosine), keyword (BM25) or hybrid (both, fused)")
	f.String(&s.fusion, "fusion", "", "rrf", "hybrid fusion: rrf (reciprocal rank) or weighted (min-max normalised scores)")
	f.Int(&s.rrfK, "rrf-k", "", contracts.DefaultRRFK, "k of reciprocal rank fusion: score = sum of 1/(k + rank)")
	f.Float64(&s.alpha, "alpha", "", contracts.DefaultAlpha, "weight of the dense score in a weighted fusion, 0 to 1")
	f.Int(&s.candidates, "candidates", "", contracts.DefaultCandidates, "products each list gives a hybrid fusion")
	f.Int(&s.topK, "top-k", "", contracts.DefaultCatalogTopK, "matches per query (a page)")
	f.Int(&s.offset, "offset", "", 0, "matches to skip: the page starts at rank offset+1")
	f.String(&s.threshold, "threshold", "", "", "drop products whose cosine similarity is below this (modes dense and hybrid)")
	f.Strings(&s.filters, "filter", "exact metadata match KEY=VALUE")
	f.String(&s.filterJSON, "filter-json", "", "", `filter as JSON, e.g. '{"price": {"$gte": 50}, "brand": {"$in": ["Bosch", "Makita"]}}'`)
	f.Bool(&s.count, "count", "", false, "print how many products match (after filter and threshold)")
	f.Strings(&s.facets, "facet", "count matches per value of this metadata key")
	f.String(&s.groupBy, "group-by", "", "", "keep the best match per value of this metadata key")
	f.Bool(&s.explain, "explain", "", false, "show each match's dense and keyword score and rank")
	f.Bool(&s.json, "json", "", false, "print the service's JSON answer")
	f.Duration(&s.timeout, "timeout", "", time.Minute, "how long the search may take")
}

// request builds the search request; f tells which flags were given, so
// that options left at their defaults are left out of the request.
func (s *searchFlags) request(f *cli.Flags, queries []string) (*contracts.SearchRequest, error) {
	req := &contracts.SearchRequest{Catalog: s.catalog, Query: queries, TopK: &s.topK}
	o := &req.SearchOptions
	if f.Explicit("mode") {
		o.Mode = s.mode
	}
	if f.Explicit("fusion") {
		o.Fusion = s.fusion
	}
	if f.Explicit("rrf-k") {
		o.RRFK = &s.rrfK
	}
	if f.Explicit("alpha") {
		o.Alpha = &s.alpha
	}
	if f.Explicit("candidates") {
		o.Candidates = &s.candidates
	}
	if s.threshold != "" {
		th, err := strconv.ParseFloat(s.threshold, 64)
		if err != nil {
			return nil, fmt.Errorf("-threshold %q: want a number between -1 and 1", s.threshold)
		}
		req.Threshold = &th
	}
	o.Explain, o.Offset, o.Count, o.Facets, o.GroupBy = s.explain, s.offset, s.count, s.facets, s.groupBy
	filter, err := s.filter()
	if err != nil {
		return nil, err
	}
	o.Filter = filter
	// The processor runs the same check; running it here too reports what
	// the JSON decoder kept of a bad condition (an unknown operator, a
	// comparison with a word), which a re-encoded request would lose. The
	// words are the service's: the same function writes them.
	if err := o.Validate(s.topK, req.Threshold, contracts.CatalogLimits{}); err != nil {
		return nil, err
	}
	return req, nil
}

// filter merges -filter-json and the -filter KEY=VALUE pairs.
func (s *searchFlags) filter() (contracts.Filter, error) {
	var filter contracts.Filter
	if s.filterJSON != "" {
		if err := json.Unmarshal([]byte(s.filterJSON), &filter); err != nil {
			return nil, fmt.Errorf("-filter-json: want a JSON object of conditions: %v", err)
		}
	}
	for _, kv := range s.filters {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-filter %q: want KEY=VALUE (use -filter-json for operators)", kv)
		}
		if _, dup := filter[k]; dup {
			return nil, fmt.Errorf("-filter %q: key %q already has a condition", kv, k)
		}
		if filter == nil {
			filter = contracts.Filter{}
		}
		filter[k] = contracts.Equals(v)
	}
	return filter, nil
}

func runSearch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		natsURL, tenant string
		auth            cli.NATSAuth
		s               searchFlags
	)
	f := cli.NewFlags("simmatch catalog search", getenv, stderr)
	natsFlags(f, &natsURL, &auth, &tenant)
	s.register(f)
	f.SetUsage(searchUsage)
	queries, err := f.ParseInterleaved(args)
	if err != nil {
		return err
	}
	if len(queries) == 0 || s.catalog == "" {
		return errors.New("want -catalog NAME and one or more QUERY arguments\n" + Usage)
	}
	req, err := s.request(f, queries)
	if err != nil {
		return serviceWords(err)
	}
	nc, err := connect(natsURL, auth)
	if err != nil {
		return err
	}
	defer nc.Close()
	c, err := contracts.NewClient(nc, clientOptions(tenant, contracts.WithTimeout(s.timeout))...)
	if err != nil {
		return err
	}
	resp, err := c.SearchCatalog(ctx, req)
	if err != nil {
		return serviceWords(err)
	}
	if s.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(resp)
	}
	printSearch(stdout, req, resp)
	return nil
}

// serviceError is a service's error as the service words it, its code
// first: "invalid_request: filter.price.$gt: compares numbers, ...".
type serviceError struct{ e *contracts.Error }

func (s serviceError) Error() string { return string(s.e.Code) + ": " + s.e.Message }
func (s serviceError) Unwrap() error { return s.e }

// serviceWords turns a *contracts.Error into a serviceError, without the
// "simmatch: " prefix its Error has (the command's own prints one).
func serviceWords(err error) error {
	var e *contracts.Error
	if errors.As(err, &e) {
		return serviceError{e}
	}
	return err
}

// descWidth is where descriptions are clipped in the table.
const descWidth = 60

// printSearch writes one table per query: rank, id, score, description
// (clipped), the explain columns when asked, the group size with group_by;
// then total and facets.
func printSearch(w io.Writer, req *contracts.SearchRequest, resp *contracts.SearchResponse) {
	mode := req.EffectiveMode()
	if mode == contracts.ModeHybrid {
		mode += " (" + req.EffectiveFusion() + ")"
	}
	for i, r := range resp.Results {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "query: %s  [%s, catalog %s]\n", r.Query, mode, req.Catalog)
		if len(r.Matches) == 0 {
			fmt.Fprintln(w, "  no matches")
		} else {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			head := "rank\tid\tscore\t"
			if req.GroupBy != "" {
				head += "group\t"
			}
			if req.Explain {
				head += "dense\tdense rank\tkeyword\tkeyword rank\t"
			}
			fmt.Fprintln(tw, head+"description")
			for k, m := range r.Matches {
				row := fmt.Sprintf("%d\t%s\t%.4f\t", req.Offset+k+1, m.ID, m.Score)
				if req.GroupBy != "" {
					row += fmt.Sprintf("%d\t", m.GroupSize)
				}
				if req.Explain && m.Explain != nil {
					e := m.Explain
					row += fmt.Sprintf("%.4f\t%s\t%.4f\t%s\t", e.Dense, rankText(e.DenseRank), e.Keyword, rankText(e.KeywordRank))
				} else if req.Explain {
					row += "\t\t\t\t"
				}
				fmt.Fprintln(tw, row+clipText(m.Description, descWidth))
			}
			tw.Flush()
		}
		if r.Total != nil {
			fmt.Fprintf(w, "total: %d\n", *r.Total)
		}
		for _, key := range req.Facets {
			fmt.Fprintf(w, "facet %s: %s\n", key, facetText(r.Facets[key]))
		}
	}
}

// rankText is a 1-based rank, or "-" when the product is not among that
// list's candidates.
func rankText(r *int) string {
	if r == nil {
		return "-"
	}
	return strconv.Itoa(*r)
}

// clipText shortens s to n characters, marking the cut with "...".
func clipText(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-3]) + "..."
}

// facetText lists a facet's values, the most frequent first.
func facetText(counts map[string]int) string {
	if len(counts) == 0 {
		return "(none)"
	}
	vals := slices.SortedFunc(maps.Keys(counts), func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
	})
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = fmt.Sprintf("%s %d", v, counts[v])
	}
	return strings.Join(parts, ", ")
}
