package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
)

const jobsUsage = `Usage: simmatch jobs COMMAND [flags]

Asynchronous jobs: many queries ranked against one set of product
descriptions, worked through by every processor, results fetched later.

Commands:
  submit [flags] [QUERY...]   submit a job (queries from -queries-file or arguments);
                              prints its id, or waits with a progress bar (-wait)
  status [-wait] ID           the job's state and progress
  results ID                  the results as JSON lines, one per query, in order
  cancel ID                   cancel the job

Example:
  simmatch jobs submit -queries-file queries.txt -descriptions-file products.txt -top-k 5 -wait
`

func runJobs(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stdout, jobsUsage)
		if len(args) == 0 {
			return usageError(errors.New("jobs: which command? submit, status, results or cancel"))
		}
		return nil
	}
	switch args[0] {
	case "submit":
		return jobsSubmit(ctx, args[1:], getenv, stdout)
	case "status":
		return jobsStatus(ctx, args[1:], getenv, stdout)
	case "results":
		return jobsResults(ctx, args[1:], getenv, stdout)
	case "cancel":
		return jobsCancel(ctx, args[1:], getenv, stdout)
	}
	return usageError(fmt.Errorf("jobs: no command %q; want submit, status, results or cancel", args[0]))
}

func jobsSubmit(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var (
		af          apiFlags
		df          descFlags
		queriesFile string
		wait        bool
	)
	f := cli.NewFlags("simmatch jobs submit", getenv, stdout)
	af.register(f)
	df.register(f)
	f.String(&queriesFile, "queries-file", "", "", "file of queries, one per line (- for stdin)")
	f.Bool(&wait, "wait", "", false, "wait for the job to finish, showing its progress")
	f.SetUsage("Usage: simmatch jobs submit [flags] [QUERY...]\n\nSubmits a job and prints its id (-json: its status).\n")
	queries, err := f.ParseInterleaved(args)
	if err != nil {
		return err
	}
	if queriesFile != "" {
		more, err := readLines(queriesFile, stdin)
		if err != nil {
			return err
		}
		queries = append(queries, more...)
	}
	if len(queries) == 0 {
		return usageError(errors.New("jobs submit: no queries; give -queries-file FILE or QUERY arguments"))
	}
	var st contracts.JobStatus
	a, err := postRanking(ctx, af, &df, "/v1/jobs", func(descs []string, topK *int, th *float64) any {
		return contracts.JobRequest{Query: queries, ProductDescriptions: descs, TopK: topK, Threshold: th}
	}, &st)
	if err != nil {
		return err
	}
	if wait {
		return waitJob(ctx, a, st.ID, af.json, stdout)
	}
	if af.json {
		return writeJSON(stdout, st)
	}
	_, err = fmt.Fprintln(stdout, st.ID)
	return err
}

// openJob parses the flags of a command that takes one job ID (more adds
// the command's own flags) and opens the API.
func openJob(cmd, usage string, args []string, getenv func(string) string, stdout io.Writer, more func(*cli.Flags)) (a *api, id string, af apiFlags, err error) {
	f := cli.NewFlags("simmatch jobs "+cmd, getenv, stdout)
	af.register(f)
	if more != nil {
		more(f)
	}
	f.SetUsage(usage)
	pos, err := f.ParseInterleaved(args)
	if err != nil {
		return nil, "", af, err
	}
	if len(pos) != 1 {
		return nil, "", af, usageError(fmt.Errorf("jobs %s: want one job ID, got %d arguments", cmd, len(pos)))
	}
	a, err = newAPI(af)
	return a, pos[0], af, err
}

// printStatus prints st as JSON or as its status line.
func printStatus(stdout io.Writer, st *contracts.JobStatus, asJSON bool) error {
	if asJSON {
		return writeJSON(stdout, st)
	}
	_, err := fmt.Fprintln(stdout, statusLine(st))
	return err
}

func jobsStatus(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var wait bool
	a, id, af, err := openJob("status", "Usage: simmatch jobs status [flags] ID\n\nPrints the job's state and progress.\n", args, getenv, stdout, func(f *cli.Flags) {
		f.Bool(&wait, "wait", "", false, "wait for the job to finish, showing its progress")
	})
	if err != nil {
		return err
	}
	if wait {
		return waitJob(ctx, a, id, af.json, stdout)
	}
	var st contracts.JobStatus
	if err := a.do(ctx, "GET", "/v1/jobs/"+id, nil, &st); err != nil {
		return err
	}
	return printStatus(stdout, &st, af.json)
}

func statusLine(st *contracts.JobStatus) string {
	s := fmt.Sprintf("%s  %-9s %d/%d queries", st.ID, st.State, st.Done, st.Total)
	if st.Error != "" {
		s += "  " + st.Error
	}
	return s
}

// progressBar draws st as a one-line bar, redrawn in place with \r.
func progressBar(st *contracts.JobStatus) string {
	const width = 30
	frac := 0.0
	if st.Total > 0 {
		frac = float64(st.Done) / float64(st.Total)
	}
	n := int(frac * width)
	return fmt.Sprintf("\r[%s%s] %3.0f%%  %d/%d queries  %-9s", strings.Repeat("#", n), strings.Repeat(".", width-n),
		100*frac, st.Done, st.Total, st.State)
}

// waitJob polls the job until it ends, drawing a progress bar (text mode);
// a failed or cancelled job is an error.
func waitJob(ctx context.Context, a *api, id string, asJSON bool, stdout io.Writer) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for {
		var st contracts.JobStatus
		if err := a.do(ctx, "GET", "/v1/jobs/"+id, nil, &st); err != nil {
			return err
		}
		if !asJSON {
			fmt.Fprint(stdout, progressBar(&st))
		}
		if st.State == contracts.JobDone || st.State == contracts.JobFailed || st.State == contracts.JobCancelled {
			if asJSON {
				if err := writeJSON(stdout, st); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(stdout, "\n%s  in %.1fs\n", statusLine(&st), time.Since(start).Seconds())
			}
			if st.State != contracts.JobDone {
				return fmt.Errorf("job %s %s", id, st.State)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if !asJSON {
				fmt.Fprintln(stdout)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func jobsResults(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	a, id, _, err := openJob("results", "Usage: simmatch jobs results [flags] ID\n\nPrints a finished job's results: one JSON line {\"query\", \"matches\"} per query, in order.\n", args, getenv, stdout, nil)
	if err != nil {
		return err
	}
	rc, err := a.open(ctx, http.MethodGet, "/v1/jobs/"+id+"/results", nil)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(stdout, rc); err != nil {
		return fmt.Errorf("jobs results: %w (the results are incomplete)", err)
	}
	return nil
}

func jobsCancel(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	a, id, af, err := openJob("cancel", "Usage: simmatch jobs cancel [flags] ID\n\nCancels a job; its finished chunks' progress stays visible.\n", args, getenv, stdout, nil)
	if err != nil {
		return err
	}
	var st contracts.JobStatus
	if err := a.do(ctx, http.MethodDelete, "/v1/jobs/"+id, nil, &st); err != nil {
		return err
	}
	return printStatus(stdout, &st, af.json)
}
