// Package loadcmd is the command line of the load generator (internal/loadgen),
// shared by cmd/simmatch-load and any command that embeds it.
package loadcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/internal/loadgen"
)

// Run runs the load generator with args (flags, see -help), or with
// "report FILES..." prints the comparison table of earlier runs' JSON.
// It returns an error when the run fails, or when it saw errors and
// -fail-on-error is set.
func Run(ctx context.Context, name string, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "report" {
		return report(name+" report", args[1:], getenv, stdout)
	}
	var (
		target, mixName, concurrency, requestsFile, label, jsonFile, pngFile, apiKey string
		rate                                                                         float64
		duration, timeout, warmup                                                    time.Duration
		requests, seed                                                               int
		allowRemote, failOnError, ignoreRetryAfter                                   bool
	)
	f := cli.NewFlags(name, getenv, stdout)
	f.String(&target, "target", "SIMMATCH_LOAD_TARGET", "http://127.0.0.1:8000", "what to load: the bridge (http://host:port, POST /predict) or the processors (nats://host:port)")
	f.String(&mixName, "mix", "SIMMATCH_LOAD_MIX", loadgen.MixFresh, "request mix: fresh (a new query + 10 new descriptions), catalog (46 products inline + a new query), overload (a new query + 200 new descriptions) or custom (-requests-file)")
	f.String(&concurrency, "concurrency", "SIMMATCH_LOAD_CONCURRENCY", "16", "clients, or a comma-separated list of levels run one after the other (e.g. 1,4,16); with -rate, the most requests in flight")
	f.Float64(&rate, "rate", "SIMMATCH_LOAD_RATE", 0, "requests per second, open loop (0: closed loop, each client sends when answered)")
	f.Duration(&duration, "duration", "SIMMATCH_LOAD_DURATION", 10*time.Second, "how long each level runs (0: until -requests)")
	f.Int(&requests, "requests", "SIMMATCH_LOAD_REQUESTS", 0, "most requests per level (0: no limit, bounded by -duration)")
	f.Duration(&warmup, "warmup", "SIMMATCH_LOAD_WARMUP", 0, "load sent before each level is measured, by the same clients without a break (not counted)")
	f.Duration(&timeout, "timeout", "SIMMATCH_LOAD_TIMEOUT", 30*time.Second, "client-side limit per request")
	f.Int(&seed, "seed", "SIMMATCH_LOAD_SEED", 1, "seed of the generated texts (runs with different seeds share no text)")
	f.String(&requestsFile, "requests-file", "SIMMATCH_LOAD_REQUESTS_FILE", "", "the custom mix's requests: a JSON array of /predict bodies, or one per line")
	f.String(&label, "label", "SIMMATCH_LOAD_LABEL", "", "name of the run in reports (default: the target)")
	f.String(&jsonFile, "json", "SIMMATCH_LOAD_JSON", "", "write the results (a JSON array, one per level) to this file")
	f.String(&pngFile, "png", "SIMMATCH_LOAD_PNG", "", "write a plot of latency against throughput (one point per level) to this PNG file")
	f.Bool(&allowRemote, "allow-remote", "SIMMATCH_LOAD_ALLOW_REMOTE", false, "allow a target outside the loopback range (127.0.0.0/8, ::1, localhost)")
	f.Bool(&ignoreRetryAfter, "ignore-retry-after", "SIMMATCH_LOAD_IGNORE_RETRY_AFTER", false, "closed loop: after a refusal send the next request at once (default: wait what Retry-After-Ms or Retry-After asks, as the OpenAI SDKs do)")
	f.String(&apiKey, "api-key", "SIMMATCH_API_KEY", "", "API key sent as a bearer token to an http(s) target (a bridge with keys)")
	f.Bool(&failOnError, "fail-on-error", "SIMMATCH_LOAD_FAIL_ON_ERROR", false, "exit non-zero when any request failed")
	if err := f.Parse(args); err != nil {
		return err
	}
	if len(f.Args()) > 0 {
		return fmt.Errorf("unexpected arguments %q (flags come first; the only subcommand is report)", f.Args())
	}
	var levels []int
	for _, s := range strings.Split(concurrency, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			return fmt.Errorf("-concurrency %q: want positive integers separated by commas", concurrency)
		}
		levels = append(levels, c)
	}
	if duration <= 0 && requests <= 0 {
		return errors.New("bound the run: set -duration or -requests")
	}
	mix, err := loadgen.NewMix(mixName, uint64(seed), requestsFile)
	if err != nil {
		return err
	}
	if label == "" {
		label = target
	}

	var results []*loadgen.Result
	var next int64
	for _, c := range levels {
		cfg := loadgen.Config{Target: target, Mix: mix, Concurrency: c, Rate: rate, Timeout: timeout,
			AllowRemote: allowRemote, Label: label, APIKey: apiKey, FirstRequest: next, IgnoreRetryAfter: ignoreRetryAfter,
			Warmup: warmup, Duration: duration, Requests: int64(requests)}
		res, err := loadgen.Run(ctx, cfg)
		if res != nil {
			loadgen.PrintResult(stdout, res)
			results = append(results, res)
			next = res.NextRequest
		}
		if err != nil {
			return err
		}
	}
	if jsonFile != "" {
		if err := loadgen.WriteJSON(jsonFile, results); err != nil {
			return err
		}
	}
	if pngFile != "" {
		if err := writePlot(pngFile, label+": "+mixName, results); err != nil {
			return err
		}
	}
	if failOnError {
		for _, r := range results {
			if r.ErrorCount() > 0 {
				return fmt.Errorf("%d of %d requests failed at concurrency %d: %v", r.ErrorCount(), r.Requests, r.Concurrency, r.Errors)
			}
			if r.OK == 0 {
				return fmt.Errorf("no request succeeded at concurrency %d", r.Concurrency)
			}
		}
	}
	return nil
}

func writePlot(file, title string, results []*loadgen.Result) error {
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := loadgen.PlotLatency(out, title, results); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// report prints the comparison table of results files (issue 6's workloads,
// ratios against the baseline) and plots them.
func report(name string, args []string, getenv func(string) string, stdout io.Writer) error {
	var baseline, labels, ceilings, pngFile string
	f := cli.NewFlags(name, getenv, stdout)
	f.String(&baseline, "baseline", "", "replica", "label of the runs the others are compared with")
	f.String(&labels, "labels", "", "simmatch-fp32,simmatch-int8", "labels of the compared runs, comma-separated")
	f.String(&ceilings, "ceiling", "", "", "JSON files of raw ONNX Runtime ceilings (simmatch-ceiling -json), comma-separated")
	f.String(&pngFile, "png", "", "", "write a plot of latency against throughput of every run to this PNG file")
	if err := f.Parse(args); err != nil {
		return err
	}
	if len(f.Args()) == 0 {
		return errors.New("report: give the results JSON files (written by -json)")
	}
	rs, err := loadgen.ReadResults(f.Args()...)
	if err != nil {
		return err
	}
	cs := map[string]loadgen.Ceiling{}
	for _, file := range strings.Split(ceilings, ",") {
		if file == "" {
			continue
		}
		var c loadgen.Ceiling
		if err := loadgen.ReadJSON(file, &c); err != nil {
			return err
		}
		cs[c.Model] = c
	}
	loadgen.CompareTable(stdout, rs, baseline, strings.Split(labels, ","), cs)
	if pngFile != "" {
		var fresh []*loadgen.Result
		for _, r := range rs {
			if r.Mix == loadgen.MixFresh {
				fresh = append(fresh, r)
			}
		}
		return writePlot(pngFile, "fresh mix: latency against throughput by concurrency", fresh)
	}
	return nil
}
