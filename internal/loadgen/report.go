package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
)

// Ceiling is raw ONNX Runtime's best batched throughput for a model on this
// machine (cmd/simmatch-ceiling measures it): what the service
// around the model could reach at most.
type Ceiling struct {
	Model              string  `json:"model"`
	SentencesPerSecond float64 `json:"sentences_per_second"`
	// Config is how the best figure was reached, e.g. "2 sessions x 1 thread, batch 32".
	Config string `json:"config"`
}

// WriteJSON writes v, indented, to file.
func WriteJSON(file string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

// ReadResults reads the results that WriteJSON wrote (a JSON array) from each file.
func ReadResults(files ...string) ([]*Result, error) {
	var all []*Result
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		var rs []*Result
		if err := json.Unmarshal(b, &rs); err != nil {
			return nil, fmt.Errorf("loadgen: %s: %w", f, err)
		}
		all = append(all, rs...)
	}
	return all, nil
}

// PrintResult writes one line per result: throughput, errors, latencies.
func PrintResult(w io.Writer, r *Result) {
	fmt.Fprintf(w, "%-16s %-8s c=%-3d %7.2f req/s %8.1f texts/s  ok %d  p50 %.1f  p95 %.1f  p99 %.1f  max %.1f ms  errors %d",
		r.Label, r.Mix, r.Concurrency, r.RequestsPerSecond, r.TextsPerSecond, r.OK,
		r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Latency.Max, r.ErrorCount())
	if r.ErrorCount() > 0 {
		fmt.Fprintf(w, " %v (p50 %.1f, p99 %.1f ms)", r.Errors, r.ErrorLatency.P50, r.ErrorLatency.P99)
	}
	if r.Requests == 0 {
		fmt.Fprint(w, "  (no request finished within the duration: run longer)")
	}
	fmt.Fprintln(w)
}

// Workload is one row of the comparison table: a mix at a concurrency and
// the figure compared.
type Workload struct {
	Name        string
	Mix         string
	Concurrency int
	// P50 compares the median latency (lower is better) instead of the
	// successful requests per second.
	P50 bool
	// Target is the ratio to reach against the baseline (issue 6), as text.
	Target string
}

// Workloads are the rows of issue 6's targets that `make bench-compare` measures.
var Workloads = []Workload{
	{Name: "fresh texts, 16 clients", Mix: MixFresh, Concurrency: 16, Target: ">= 2.3x fp32, >= 5x int8"},
	{Name: "catalog inline, 16 clients", Mix: MixCatalog, Concurrency: 16, Target: ">= 20x"},
	{Name: "one client p50, catalog", Mix: MixCatalog, Concurrency: 1, P50: true, Target: "<= 0.5x"},
	{Name: "one client p50, fresh", Mix: MixFresh, Concurrency: 1, P50: true, Target: "<= 0.75x"},
	{Name: "overload 64 clients x 200", Mix: MixOverload, Concurrency: 64, Target: ">= 0.9 of best concurrency"},
}

// find returns the result of label for mix at concurrency c, or nil;
// clients honouring Retry-After unless ignoring.
func find(rs []*Result, label, mix string, c int, ignoring ...bool) *Result {
	ign := len(ignoring) > 0 && ignoring[0]
	i := slices.IndexFunc(rs, func(r *Result) bool {
		return r.Label == label && r.Mix == mix && r.Concurrency == c && r.IgnoreRetryAfter == ign
	})
	if i < 0 {
		return nil
	}
	return rs[i]
}

// CompareTable prints issue 6's workloads for each label against baseline:
// the figure of each and its ratio to the baseline's, then for the fresh mix
// the end-to-end sentences/s against the runtime's ceiling, then the
// overload row's details (rejections, their p99, timeouts, answered rate
// against the same mix at its best lower concurrency), with clients that
// honour Retry-After and, when measured, clients that ignore it.
func CompareTable(w io.Writer, rs []*Result, baseline string, labels []string, ceilings map[string]Ceiling) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "workload\t%s", baseline)
	for _, l := range labels {
		fmt.Fprintf(tw, "\t%s\tratio", l)
	}
	fmt.Fprintln(tw, "\ttarget")
	cell := func(r *Result, p50 bool) (string, float64) {
		switch {
		case r == nil:
			return "-", 0
		case p50:
			return fmt.Sprintf("%.1f ms", r.Latency.P50), r.Latency.P50
		}
		return fmt.Sprintf("%.2f req/s", r.RequestsPerSecond), r.RequestsPerSecond
	}
	for _, wl := range Workloads {
		bs, bv := cell(find(rs, baseline, wl.Mix, wl.Concurrency), wl.P50)
		fmt.Fprintf(tw, "%s\t%s", wl.Name, bs)
		for _, l := range labels {
			s, v := cell(find(rs, l, wl.Mix, wl.Concurrency), wl.P50)
			ratio := "-"
			if bv > 0 && v > 0 {
				ratio = fmt.Sprintf("%.2fx", v/bv)
			}
			fmt.Fprintf(tw, "\t%s\t%s", s, ratio)
		}
		fmt.Fprintf(tw, "\t%s\n", wl.Target)
	}
	tw.Flush()

	fmt.Fprintln(w)
	for _, l := range append([]string{baseline}, labels...) {
		if r := find(rs, l, MixFresh, 16); r != nil {
			fmt.Fprintf(w, "%-16s fresh 16 clients: %.1f texts/s end to end", l, r.TextsPerSecond)
			for model, c := range ceilings {
				if c.SentencesPerSecond > 0 && (l == "simmatch-"+model) {
					fmt.Fprintf(w, "; raw ONNX Runtime %s ceiling %.1f sentences/s (%s): %.2f of it (target >= 0.95)",
						model, c.SentencesPerSecond, c.Config, r.TextsPerSecond/c.SentencesPerSecond)
				}
			}
			fmt.Fprintln(w)
		}
	}
	for _, l := range append([]string{baseline}, labels...) {
		for _, ignoring := range []bool{false, true} {
			r := find(rs, l, MixOverload, 64, ignoring)
			if r == nil {
				continue
			}
			var best *Result
			for _, x := range rs {
				if x.Label == l && x.Mix == MixOverload && x.Concurrency < 64 && (best == nil || x.RequestsPerSecond > best.RequestsPerSecond) {
					best = x
				}
			}
			clients := "clients honour Retry-After"
			if ignoring {
				clients = "clients ignore Retry-After"
			}
			fmt.Fprintf(w, "%-16s overload 64x200 (%s): answered %.2f req/s, errors %v, error p99 %.1f ms", l, clients, r.RequestsPerSecond, r.Errors, r.ErrorLatency.P99)
			if best != nil && best.RequestsPerSecond > 0 {
				fmt.Fprintf(w, "; %.2f of the same mix at %d clients (%.2f req/s)", r.RequestsPerSecond/best.RequestsPerSecond, best.Concurrency, best.RequestsPerSecond)
			}
			fmt.Fprintln(w)
		}
	}
}

// ReadJSON decodes the JSON in file into v.
func ReadJSON(file string, v any) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("loadgen: %s: %w", file, err)
	}
	return nil
}
