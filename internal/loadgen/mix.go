package loadgen

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/simmatch/simmatch/contracts"
)

// Mix makes the requests of a run. Request(i) is the i-th request (from 0);
// it is deterministic, so two runs with the same mix and seed send the same
// requests, and safe for concurrent use.
type Mix interface {
	// Name is the mix's name in reports ("fresh", "catalog", ...).
	Name() string
	// Request returns the i-th request of the run.
	Request(i int64) *contracts.Request
}

// Mix names accepted by NewMix.
const (
	MixFresh    = "fresh"
	MixCatalog  = "catalog"
	MixOverload = "overload"
	MixCustom   = "custom"
)

// FreshDescriptions and OverloadDescriptions are the descriptions per request
// of the fresh and overload mixes.
const (
	FreshDescriptions    = 10
	OverloadDescriptions = 200
)

// NewMix returns the named mix: "fresh" (a new query and 10 new descriptions
// per request), "catalog" (the 46-product example catalog inline and a new
// query), "overload" (a new query and 200 new descriptions) or "custom" (the
// requests in file, a JSON array or JSON lines, sent in turn). seed picks the
// generated sentences; texts never repeat within a run or across requests.
func NewMix(name string, seed uint64, file string) (Mix, error) {
	switch name {
	case MixFresh:
		return &generated{name: name, gen: NewSentences(seed), descriptions: FreshDescriptions}, nil
	case MixOverload:
		return &generated{name: name, gen: NewSentences(seed), descriptions: OverloadDescriptions}, nil
	case MixCatalog:
		return &catalogMix{gen: NewSentences(seed), catalog: Catalog()}, nil
	case MixCustom:
		if file == "" {
			return nil, fmt.Errorf("loadgen: mix %q needs a request file (-requests-file)", name)
		}
		return loadCustom(file)
	}
	return nil, fmt.Errorf("loadgen: unknown mix %q (want %s, %s, %s or %s)", name, MixFresh, MixCatalog, MixOverload, MixCustom)
}

type generated struct {
	name         string
	gen          *Sentences
	descriptions int
}

func (m *generated) Name() string { return m.name }

func (m *generated) Request(i int64) *contracts.Request {
	d := make([]string, m.descriptions)
	for j := range d {
		d[j] = m.gen.Description(i*int64(m.descriptions) + int64(j))
	}
	return &contracts.Request{Query: contracts.Queries{m.gen.Query(i)}, ProductDescriptions: d}
}

//go:embed catalog.json
var catalogJSON []byte

// Catalog returns the 46-product example catalog of the catalog mix: product
// descriptions of the parity corpus (processor/testdata/parity/rankings.json,
// its catalog cases first), the shape of the original service's use: one
// shop's catalog sent inline with every query.
func Catalog() []string {
	var c []string
	if err := json.Unmarshal(catalogJSON, &c); err != nil {
		panic("loadgen: catalog.json: " + err.Error())
	}
	return c
}

type catalogMix struct {
	gen     *Sentences
	catalog []string
}

func (m *catalogMix) Name() string { return MixCatalog }

func (m *catalogMix) Request(i int64) *contracts.Request {
	return &contracts.Request{Query: contracts.Queries{m.gen.Query(i)}, ProductDescriptions: m.catalog}
}

type customMix struct{ reqs []*contracts.Request }

func (m *customMix) Name() string { return MixCustom }

func (m *customMix) Request(i int64) *contracts.Request { return m.reqs[i%int64(len(m.reqs))] }

// loadCustom reads requests (the /predict body) from a JSON array or from
// JSON lines.
func loadCustom(file string) (Mix, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("loadgen: custom requests: %w", err)
	}
	var reqs []*contracts.Request
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(t, &reqs); err != nil {
			return nil, fmt.Errorf("loadgen: %s: a JSON array of requests: %w", file, err)
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			var r contracts.Request
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return nil, fmt.Errorf("loadgen: %s line %d: %w", file, n, err)
			}
			reqs = append(reqs, &r)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("loadgen: %s: %w", file, err)
		}
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("loadgen: %s holds no requests (want a JSON array of /predict bodies or one per line)", file)
	}
	for k, r := range reqs {
		if r == nil || len(r.Query) == 0 || len(r.ProductDescriptions) == 0 {
			return nil, fmt.Errorf("loadgen: %s request %d: needs query and product_descriptions", file, k+1)
		}
	}
	return &customMix{reqs: reqs}, nil
}

// Texts is the number of texts (queries and descriptions) in r.
func Texts(r *contracts.Request) int { return len(r.Query) + len(r.ProductDescriptions) }
