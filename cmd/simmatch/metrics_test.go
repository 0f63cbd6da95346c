package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"go.yaml.in/yaml/v3"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/internal/testenv"
)

// repoRoot is where deploy/ is, seen from this package's directory.
const repoRoot = "../.."

// The all-in-one serves the bridge's and the processor's metrics on one
// /metrics, exactly as docs/metrics.md names them, and every metric the
// dashboards and alert rules query exists there. Its JSON logs carry the
// trace and span ids.
func TestAllInOneMetrics(t *testing.T) {
	base, logs := startAllInOne(t)
	req, err := http.NewRequest("POST", base+"/predict", strings.NewReader(
		`{"query": ["What can I use to cut wood?"], "product_descriptions": ["Heavy-duty claw hammer.", "Circular saw with laser guide."]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", metricsTestKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/predict: status %d", resp.StatusCode)
	}
	fams := testenv.Families(t, base)

	t.Run("build info", func(t *testing.T) {
		f := fams["simmatch_build_info"]
		if f == nil || len(f.GetMetric()) != 1 || label(f.GetMetric()[0], "component") != "all-in-one" {
			t.Fatalf("simmatch_build_info = %v, want one series with component all-in-one", f)
		}
	})

	t.Run("metrics.md", func(t *testing.T) {
		documented := readMetricsDoc(t, filepath.Join(repoRoot, "docs", "metrics.md"))
		for name, doc := range documented {
			f, ok := fams[name]
			if !ok {
				t.Errorf("%s is in metrics.md but not exposed", name)
				continue
			}
			if got := strings.ToLower(f.GetType().String()); got != doc.typ {
				t.Errorf("%s is a %s, metrics.md says %s", name, got, doc.typ)
			}
			for _, m := range f.GetMetric() {
				var got []string
				for _, l := range m.GetLabel() {
					got = append(got, l.GetName())
				}
				slices.Sort(got)
				if !slices.Equal(got, doc.labels) {
					t.Errorf("%s has labels %v, metrics.md says %v", name, got, doc.labels)
					break
				}
			}
		}
		for name := range fams {
			if _, ok := documented[name]; strings.HasPrefix(name, "simmatch_") && !ok {
				t.Errorf("%s is exposed but not in metrics.md", name)
			}
		}
	})

	t.Run("dashboards and alert rules", func(t *testing.T) {
		exposed := map[string]bool{}
		for name, f := range fams {
			exposed[name] = true
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				exposed[name+"_bucket"], exposed[name+"_sum"], exposed[name+"_count"] = true, true, true
			case dto.MetricType_SUMMARY:
				exposed[name+"_sum"], exposed[name+"_count"] = true, true
			}
		}
		used := map[string][]string{} // metric name -> files that query it
		for _, g := range []struct {
			glob  string
			parse func(testing.TB, []byte) (exprs, recorded []string)
		}{
			{filepath.Join(repoRoot, "deploy", "grafana", "dashboards", "*.json"), dashboardExprs},
			{filepath.Join(repoRoot, "deploy", "prometheus", "*.yml"), ruleExprs},
		} {
			files, err := filepath.Glob(g.glob)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) == 0 {
				t.Errorf("no file matches %s: the dashboards and alert rules must exist, and this test checks the metric names they use", g.glob)
				continue
			}
			for _, file := range files {
				data, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				exprs, recorded := g.parse(t, data)
				for _, e := range exprs {
					for _, name := range metricNames(e) {
						if !slices.Contains(recorded, name) {
							used[name] = append(used[name], filepath.Base(file))
						}
					}
				}
			}
		}
		for name, files := range used {
			if !exposed[name] {
				t.Errorf("%s (queried in %s) is not exposed by the all-in-one", name, strings.Join(slices.Compact(files), ", "))
			}
		}
		names := slices.Sorted(maps.Keys(used))
		t.Logf("the dashboards and rules query %d metrics: %s", len(names), strings.Join(names, " "))
		if len(used) == 0 && !t.Failed() {
			t.Error("the dashboards and rules query no simmatch_, go_ or process_ metric")
		}
	})

	t.Run("logs carry trace and span ids", func(t *testing.T) {
		var found bool
		sc := bufio.NewScanner(bytes.NewReader(logs.Bytes()))
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil || line["msg"] != "http request" || line["route"] != "/predict" {
				continue
			}
			found = true
			if line["trace_id"] == nil || line["span_id"] == nil || line["request_id"] == nil {
				t.Errorf("access log line without trace_id, span_id or request_id: %s", sc.Bytes())
			}
			if line["api_key"] != "metrics-test" {
				t.Errorf("access log line without the API key's name: %s", sc.Bytes())
			}
		}
		if !found {
			t.Errorf("no access log line for /predict in:\n%s", logs.Bytes())
		}
		if bytes.Contains(logs.Bytes(), []byte(metricsTestKey)) || bytes.Contains(logs.Bytes(), []byte("Circular saw")) {
			t.Error("the logs hold the API key or a request text")
		}
	})
}

// metricsTestKey is the API key startAllInOne's bridge accepts, so that the
// per-key metrics are exposed too.
const metricsTestKey = "sk-metrics-7a9c1e3b5d7f9a1c"

// startAllInOne runs the command, with API keys on, until the test ends and
// returns the bridge's base URL and the JSON logs it writes.
func startAllInOne(t *testing.T) (string, *testenv.LogBuffer) {
	t.Helper()
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("metrics-test "+bridge.HashKey(metricsTestKey)+" predict\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	args := []string{"-http-addr", "127.0.0.1:0", "-nats-listen", "", "-log-level", "info", "-data-dir", t.TempDir()}
	base, _, _ := runServe(t, args, func(k string) string {
		if k == "SIMMATCH_MODEL_DIR" || k == "SIMMATCH_ORT_LIB" {
			return os.Getenv(k)
		}
		if k == "SIMMATCH_API_KEYS_FILE" {
			return keys
		}
		return ""
	}, logs)
	return base, logs
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// documentedMetric is one row of metrics.md's tables.
type documentedMetric struct {
	typ    string   // counter, gauge or histogram
	labels []string // sorted
}

var backticked = regexp.MustCompile("`([^`]+)`")

// readMetricsDoc reads the simmatch_* rows of metrics.md's tables:
// | `name` | type | `label`, `label` = values | meaning |
func readMetricsDoc(t testing.TB, path string) map[string]documentedMetric {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]documentedMetric{}
	for line := range strings.Lines(string(data)) {
		if !strings.HasPrefix(line, "| `simmatch_") {
			continue
		}
		// An escaped \| separates label values inside a cell.
		cells := strings.Split(strings.ReplaceAll(line, `\|`, "/"), "|")
		if len(cells) < 5 {
			t.Fatalf("metrics.md: cannot read row %q", line)
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		d := documentedMetric{typ: strings.Fields(cells[2])[0]}
		for seg := range strings.SplitSeq(cells[3], ",") {
			if m := backticked.FindStringSubmatch(seg); m != nil {
				d.labels = append(d.labels, m[1])
			}
		}
		slices.Sort(d.labels)
		out[name] = d
	}
	if len(out) == 0 {
		t.Fatalf("no simmatch_ metric rows in %s", path)
	}
	return out
}

// dashboardExprs returns every query of a Grafana dashboard: the "expr" of
// panel targets and the "query" of template variables, wherever they nest.
func dashboardExprs(t testing.TB, data []byte) (exprs, recorded []string) {
	t.Helper()
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	walk(doc, func(key, value string) {
		if key == "expr" || key == "query" {
			exprs = append(exprs, value)
		}
	})
	return exprs, nil
}

// ruleExprs returns the "expr" of every Prometheus rule in a YAML file, and
// the names its recording rules define (which no component exposes).
func ruleExprs(t testing.TB, data []byte) (exprs, recorded []string) {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("rules: %v", err)
	}
	walk(doc, func(key, value string) {
		switch key {
		case "expr":
			exprs = append(exprs, value)
		case "record":
			recorded = append(recorded, value)
		}
	})
	return exprs, recorded
}

// walk calls f with every string value in a decoded JSON or YAML document and its key.
func walk(v any, f func(key, value string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok {
				f(k, s)
			} else {
				walk(x, f)
			}
		}
	case []any:
		for _, x := range v {
			walk(x, f)
		}
	}
}

var (
	// Removed before looking for metric names: strings (label values),
	// label matchers, ranges, and the label lists of by/without/on/ignoring/group_*.
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promMetric   = regexp.MustCompile(`\b(?:simmatch|go|process)_[a-zA-Z0-9_:]*`)
)

// metricNames returns the simmatch_, go_ and process_ metric names a PromQL
// expression (or a Grafana variable query) uses.
func metricNames(expr string) []string {
	for _, re := range []*regexp.Regexp{promStrings, promMatchers, promMatchers, promRanges, promGrouping} {
		expr = re.ReplaceAllString(expr, " ")
	}
	return promMetric.FindAllString(expr, -1)
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		name, expr string
		want       []string
	}{
		{"rate with matchers", `sum by (route, status) (rate(simmatch_http_requests_total{route!="/metrics", outcome=~"go_.*"}[$__rate_interval]))`,
			[]string{"simmatch_http_requests_total"}},
		{"quantile of buckets", `histogram_quantile(0.99, sum by (le, stage) (rate(simmatch_processor_stage_duration_seconds_bucket[5m])))`,
			[]string{"simmatch_processor_stage_duration_seconds_bucket"}},
		{"ratio and join", `simmatch_processor_queue_depth / on(instance) group_left(go_version) simmatch_processor_queue_capacity > 0.8`,
			[]string{"simmatch_processor_queue_depth", "simmatch_processor_queue_capacity"}},
		{"variable query", `label_values(simmatch_build_info{component="$component"}, version)`, []string{"simmatch_build_info"}},
		{"standard collectors", `go_goroutines + process_resident_memory_bytes and up == 1`, []string{"go_goroutines", "process_resident_memory_bytes"}},
		{"grafana variable in range", `rate(process_cpu_seconds_total[${__rate_interval}])`, []string{"process_cpu_seconds_total"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metricNames(tt.expr); !slices.Equal(got, tt.want) {
				t.Fatalf("metricNames(%q) = %v, want %v", tt.expr, got, tt.want)
			}
		})
	}
}
