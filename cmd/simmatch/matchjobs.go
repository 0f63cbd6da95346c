package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
)

// stderr gets the progress lines of match and dedupe; tests replace it.
var stderr io.Writer = os.Stderr

const catalogMatchUsage = `Usage: simmatch match -source CATALOG -target CATALOG [flags]

Matches every product of the source catalog against the target catalog as
a job (worked through by every processor), showing its progress on stderr,
then writes one line per source product: JSON {"source_id", "matches"} or
CSV source_id,rank,id,score. Example:

  simmatch match -source feed -target shop -top-k 3 -threshold 0.8 -block-on brand -o matches.jsonl
`

const dedupeUsage = `Usage: simmatch dedupe -catalog CATALOG -threshold T [flags]

Finds the near-duplicates of a catalog as a job, showing its progress on
stderr, then writes one cluster per line: JSON {"cluster", "pairs"} or CSV
cluster,a,b,score (cluster numbered from 1). Example:

  simmatch dedupe -catalog shop -threshold 0.9 -block-on brand -format csv -o dupes.csv
`

// outFlags say where and how match and dedupe write their results.
type outFlags struct {
	format string
	out    string
}

func (o *outFlags) register(f *cli.Flags) {
	f.String(&o.format, "format", "", "jsonl", "output format: jsonl or csv")
	f.String(&o.out, "o", "", "", "write the results to this file instead of stdout")
}

func (o *outFlags) check() error {
	if o.format != "jsonl" && o.format != "csv" {
		return usageError(fmt.Errorf("-format %q: want jsonl or csv", o.format))
	}
	return nil
}

// runCatalogMatch is `simmatch match -source ... -target ...`.
func runCatalogMatch(ctx context.Context, af apiFlags, mj *contracts.MatchJob, of outFlags, stdout io.Writer) error {
	if err := of.check(); err != nil {
		return err
	}
	return runPlannedJob(ctx, af, contracts.JobRequest{Match: mj}, of, stdout)
}

// runDedupe is `simmatch dedupe`.
func runDedupe(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var (
		af              apiFlags
		of              outFlags
		name, threshold string
		blockOn         []string
		maxNeighbors    int
	)
	f := cli.NewFlags("simmatch dedupe", getenv, stdout)
	af.register(f)
	of.register(f)
	f.String(&name, "catalog", "", "", "the catalog to deduplicate")
	f.String(&threshold, "threshold", "", "", "the cosine similarity from which two products are duplicates (required)")
	f.Strings(&blockOn, "block-on", "compare only products with equal values of this metadata key")
	f.Int(&maxNeighbors, "max-neighbors", "", 0, "the most duplicates kept per product (0: the service's default, 50)")
	f.SetUsage(dedupeUsage)
	pos, err := f.ParseInterleaved(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError(fmt.Errorf("dedupe: unexpected arguments %q", pos))
	}
	if name == "" || threshold == "" {
		return usageError(errors.New("dedupe: give -catalog CATALOG and -threshold T"))
	}
	th, err := parseThreshold(threshold)
	if err != nil {
		return err
	}
	if err := of.check(); err != nil {
		return err
	}
	d := &contracts.DedupeJob{Catalog: name, Threshold: th, BlockOn: blockOn}
	if maxNeighbors > 0 {
		d.MaxNeighbors = &maxNeighbors
	}
	return runPlannedJob(ctx, af, contracts.JobRequest{Dedupe: d}, of, stdout)
}

// runPlannedJob submits a match or dedupe job, follows it with a progress
// line on stderr and writes its results.
func runPlannedJob(ctx context.Context, af apiFlags, req contracts.JobRequest, of outFlags, stdout io.Writer) error {
	a, err := newAPI(af)
	if err != nil {
		return err
	}
	var st contracts.JobStatus
	if err := a.do(ctx, http.MethodPost, "/v1/jobs", req, &st); err != nil {
		return err
	}
	if err := followJob(ctx, a, st.ID, 500*time.Millisecond); err != nil {
		return err
	}
	w := stdout
	if of.out != "" {
		f, err := os.Create(of.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	rc, err := a.open(ctx, http.MethodGet, "/v1/jobs/"+st.ID+"/results", nil)
	if err != nil {
		return err
	}
	defer rc.Close()
	if of.format == "jsonl" {
		_, err = io.Copy(w, rc)
	} else {
		err = writeCSV(w, rc, req.Kind())
	}
	if err != nil {
		return fmt.Errorf("job %s: results: %w (they are incomplete)", st.ID, err)
	}
	if f, ok := w.(*os.File); ok && of.out != "" {
		return f.Close()
	}
	return nil
}

// followJob polls the job until it ends, redrawing a progress line on
// stderr (rows done, rate, ETA); a failed or cancelled job is an error.
func followJob(ctx context.Context, a *api, id string, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	for {
		var st contracts.JobStatus
		if err := a.do(ctx, http.MethodGet, "/v1/jobs/"+id, nil, &st); err != nil {
			return err
		}
		fmt.Fprint(stderr, "\r"+progressLine(&st, time.Since(start)))
		switch st.State {
		case contracts.JobDone:
			fmt.Fprintln(stderr)
			return nil
		case contracts.JobFailed, contracts.JobCancelled:
			fmt.Fprintln(stderr)
			return fmt.Errorf("job %s %s: %s", id, st.State, st.Error)
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(stderr)
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// progressLine is "job ID  state  done/total rows  rate rows/s  ETA d".
func progressLine(st *contracts.JobStatus, elapsed time.Duration) string {
	if st.Total == 0 && st.State == contracts.JobQueued {
		return fmt.Sprintf("job %s  %-9s planning...", st.ID, st.State)
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(st.Done) / s
	}
	eta := "?"
	switch {
	case st.Done >= st.Total:
		eta = "0s"
	case rate > 0:
		eta = (time.Duration(float64(st.Total-st.Done)/rate) * time.Second).Round(time.Second).String()
	}
	pct := 100.0
	if st.Total > 0 {
		pct = 100 * float64(st.Done) / float64(st.Total)
	}
	return fmt.Sprintf("job %s  %-9s %d/%d rows (%3.0f%%)  %.0f rows/s  ETA %s   ", st.ID, st.State, st.Done, st.Total, pct, rate, eta)
}

// writeCSV turns the JSON lines of a match job (source_id,rank,id,score;
// a source without matches gets one row with rank 0) or a dedupe job
// (cluster,a,b,score) into CSV.
func writeCSV(w io.Writer, r io.Reader, kind contracts.JobKind) error {
	cw := csv.NewWriter(w)
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 64<<20)
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }
	if kind == contracts.JobKindDedupe {
		_ = cw.Write([]string{"cluster", "a", "b", "score"})
		for n := 1; sc.Scan(); n++ {
			var c contracts.DedupeCluster
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				return err
			}
			for _, p := range c.Pairs {
				_ = cw.Write([]string{strconv.Itoa(n), p.A, p.B, f(p.Score)})
			}
		}
	} else {
		_ = cw.Write([]string{"source_id", "rank", "id", "score"})
		for sc.Scan() {
			var m contracts.MatchResult
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				return err
			}
			if len(m.Matches) == 0 {
				_ = cw.Write([]string{m.SourceID, "0", "", ""})
			}
			for k, x := range m.Matches {
				_ = cw.Write([]string{m.SourceID, strconv.Itoa(k + 1), x.ID, f(x.Score)})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// matchJobFlags are the flags of `simmatch match` that make it a job
// between two catalogs.
type matchJobFlags struct {
	source, target, mode string
	blockOn              []string
	mutualBest           bool
	out                  outFlags
}

func (m *matchJobFlags) register(f *cli.Flags) {
	f.String(&m.source, "source", "", "", "match every product of this catalog (with -target: a job between two catalogs)")
	f.String(&m.target, "target", "", "", "against this catalog's products")
	f.String(&m.mode, "mode", "", "", "with -source: dense (default), keyword or hybrid")
	f.Strings(&m.blockOn, "block-on", "with -source: compare only products with equal values of this metadata key")
	f.Bool(&m.mutualBest, "mutual-best", "", false, "with -source: keep a pair only when each is the other's best")
	m.out.register(f)
}

// job is the MatchJob the flags describe (topK 0: the default).
func (m *matchJobFlags) job(topK int, threshold string) (*contracts.MatchJob, error) {
	if m.source == "" || m.target == "" {
		return nil, usageError(errors.New("match: give both -source and -target"))
	}
	th, err := parseThreshold(threshold)
	if err != nil {
		return nil, err
	}
	mj := &contracts.MatchJob{Source: m.source, Target: m.target, Threshold: th, BlockOn: m.blockOn, MutualBest: m.mutualBest, Mode: strings.TrimSpace(m.mode)}
	if topK > 0 {
		mj.TopK = &topK
	}
	return mj, nil
}
