package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
)

// stdin is where commands read "-" from; tests replace it.
var stdin io.Reader = os.Stdin

// descFlags name the product descriptions of match and jobs submit.
type descFlags struct {
	descs     []string
	descsFile string
	topK      int
	threshold string
}

func (d *descFlags) register(f *cli.Flags) {
	f.Strings(&d.descs, "d", "a product description")
	f.String(&d.descsFile, "descriptions-file", "", "", "file of product descriptions, one per line (- for stdin)")
	f.Int(&d.topK, "top-k", "", 0, "keep the K best matches per query (0: all)")
	f.String(&d.threshold, "threshold", "", "", "drop matches scoring below this cosine similarity")
}

func (d *descFlags) load() ([]string, *int, *float64, error) {
	descs := d.descs
	if d.descsFile != "" {
		more, err := readLines(d.descsFile, stdin)
		if err != nil {
			return nil, nil, nil, err
		}
		descs = append(descs, more...)
	}
	if len(descs) == 0 {
		return nil, nil, nil, usageError(errors.New("no product descriptions: give -d TEXT (repeatable) or -descriptions-file FILE"))
	}
	th, err := parseThreshold(d.threshold)
	if err != nil {
		return nil, nil, nil, err
	}
	var topK *int
	if d.topK > 0 {
		topK = &d.topK
	}
	return descs, topK, th, nil
}

// postRanking loads the product descriptions, opens the API and POSTs to
// path the request req makes of them, decoding the answer into out; match
// and jobs submit send their queries this way.
func postRanking(ctx context.Context, af apiFlags, df *descFlags, path string, req func(descs []string, topK *int, th *float64) any, out any) (*api, error) {
	descs, topK, th, err := df.load()
	if err != nil {
		return nil, err
	}
	a, err := newAPI(af)
	if err != nil {
		return nil, err
	}
	return a, a.do(ctx, "POST", path, req(descs, topK, th), out)
}

const matchUsage = `Usage: simmatch match [flags] QUERY...
       simmatch match -source CATALOG -target CATALOG [flags]

Ranks the product descriptions for each query, best first, with their cosine
similarity. Example:

  simmatch match -d "Claw hammer" -d "Circular saw" "What can I use to cut wood?"

With -source and -target, matches every product of one stored catalog
against another as a job, with a progress line on stderr, and writes the
results as JSON lines or CSV (-format, -o). Example:

  simmatch match -source feed -target shop -top-k 3 -threshold 0.8 -block-on brand -mutual-best
`

func runMatch(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var (
		af apiFlags
		df descFlags
		mf matchJobFlags
	)
	f := cli.NewFlags("simmatch match", getenv, stdout)
	af.register(f)
	df.register(f)
	mf.register(f)
	f.SetUsage(matchUsage)
	queries, err := f.ParseInterleaved(args)
	if err != nil {
		return err
	}
	if mf.source != "" || mf.target != "" {
		if len(queries) > 0 || len(df.descs) > 0 || df.descsFile != "" {
			return usageError(errors.New("match: -source/-target match two catalogs; they take no QUERY, -d or -descriptions-file"))
		}
		mj, err := mf.job(df.topK, df.threshold)
		if err != nil {
			return err
		}
		return runCatalogMatch(ctx, af, mj, mf.out, stdout)
	}
	if len(queries) == 0 {
		return usageError(errors.New("match: no query; give one or more QUERY arguments"))
	}
	var resp contracts.Response
	if _, err := postRanking(ctx, af, &df, "/v1/predict", func(descs []string, topK *int, th *float64) any {
		return contracts.Request{Query: queries, ProductDescriptions: descs, TopK: topK, Threshold: th}
	}, &resp); err != nil {
		return err
	}
	if af.json {
		return writeJSON(stdout, resp)
	}
	for i, r := range resp.Results {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintln(stdout, r.Query)
		for k, m := range r.Matches {
			fmt.Fprintf(stdout, "  %2d. %.4f  %s\n", k+1, m.Score, m.Description)
		}
	}
	return nil
}
