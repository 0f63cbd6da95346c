package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// Scenario is one fault under load.
type Scenario struct {
	// Name is the scenario's name on the command line and in the table.
	Name string
	// Fault describes it in the table.
	Fault string
	// NATSNodes is how many standalone nats-server processes it needs (0:
	// use Config.NATSURL or one server).
	NATSNodes int
	// Clients and Descriptions override the steady load when > 0.
	Clients, Descriptions int
	// inject runs the fault; it returns when the fault is over, with a
	// note for the table (e.g. how many requests the killed processor had).
	inject func(ctx context.Context, e *env) (string, error)
}

// Scenarios are the faults of the suite, in the order they run.
var Scenarios = []Scenario{
	{Name: "none", Fault: "none", inject: func(context.Context, *env) (string, error) { return "", nil }},
	{Name: "kill9", Fault: "kill -9 one processor of three, restart it 5 s later", inject: killProcessor},
	{Name: "rolling", Fault: "rolling SIGTERM restart of all three processors", inject: rollingRestart},
	{Name: "nats-restart", Fault: "NATS server restart, 2 s down", NATSNodes: 1, inject: restartNATS},
	{Name: "cluster-node-kill", Fault: "kill -9 one node of a 3-node NATS cluster", NATSNodes: 3, inject: killNATSNode},
	{Name: "overload", Fault: "10x overload: 64 clients x 200 descriptions", Clients: 64, Descriptions: 200,
		inject: func(context.Context, *env) (string, error) { return "", nil }},
}

// killProcessor kills processor 1 with SIGKILL once it has several requests
// in flight (read from its /metrics: 4 or more, waited for up to 5 s, else
// any), so that the kill catches requests of more than one door (the gauge
// counts /predict and embeddings requests, queued or running), and restarts
// it 5 s later.
func killProcessor(ctx context.Context, e *env) (string, error) {
	inFlight := 0.0
	for _, want := range []float64{4, 1} {
		if waitUntil(5*time.Second, "requests in flight at processor 1", func() bool {
			inFlight = gauge("http://"+e.procAddrs[0]+"/metrics", "simmatch_processor_in_flight")
			return inFlight >= want
		}) == nil {
			break
		}
	}
	if err := e.processor[0].signal(syscall.SIGKILL, 10*time.Second); err != nil {
		return "", err
	}
	e.killedInFlight = int(inFlight)
	note := fmt.Sprintf("%.0f requests in flight at the killed processor", inFlight)
	if err := sleep(ctx, 5*time.Second); err != nil {
		return note, err
	}
	return note, e.startProcessor(0)
}

func rollingRestart(ctx context.Context, e *env) (string, error) {
	for i := range e.processor {
		if err := e.processor[i].signal(syscall.SIGTERM, 60*time.Second); err != nil {
			return "", err
		}
		if err := e.startProcessor(i); err != nil {
			return "", err
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
	}
	return "", nil
}

func restartNATS(ctx context.Context, e *env) (string, error) {
	if err := e.nats[0].signal(syscall.SIGTERM, 10*time.Second); err != nil {
		return "", err
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return "", err
	}
	return "", e.restartNATS(0)
}

func killNATSNode(_ context.Context, e *env) (string, error) {
	return "", e.nats[0].signal(syscall.SIGKILL, 10*time.Second)
}

// sumCounter sums every series of a counter in a Prometheus text
// exposition; -1 when it cannot be read.
func sumCounter(url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	total := 0.0
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		var f float64
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if _, err := fmt.Sscan(line[i+1:], &f); err == nil {
				total += f
			}
		}
	}
	return total
}

// gauge reads an unlabelled gauge from a Prometheus text exposition; -1 when
// it cannot.
func gauge(url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// The doors of the steady load: the three ways a caller reaches the model.
const (
	// DoorPredict is POST /predict with inline product descriptions.
	DoorPredict = "predict"
	// DoorSearch is POST /v1/catalogs/{catalog}/search on the catalog the
	// environment fills at start.
	DoorSearch = "search"
	// DoorEmbed is POST /v1/embeddings (OpenAI's shape).
	DoorEmbed = "embed"
)

// Doors are every door, in the order of the table's columns.
var Doors = []string{DoorPredict, DoorSearch, DoorEmbed}

// DoorStats counts one door's requests by outcome.
type DoorStats struct {
	// Requests is every request sent through the door.
	Requests int
	// OK answered 200.
	OK int
	// Refused answered 429 or 503 with Retry-After: the caller was told to
	// come back, so the request is not lost.
	Refused int
	// Lost failed any other way: another 5xx, 504, a 4xx, a connection
	// error or no answer within the client's timeout.
	Lost int
	// LostBy counts the lost requests by status code or "transport".
	LostBy map[string]int
}

// Result is what one scenario's callers saw.
type Result struct {
	Scenario       Scenario
	Requests       int
	Failed         int                   // requests not answered 200 (refused or lost)
	Lost           int                   // requests lost, every door (see DoorStats.Lost)
	FailedBy       map[string]int        // "predict 429", "search 504", "embed transport", ...
	ByDoor         map[string]*DoorStats // by door (DoorPredict, ...); every door of the load has an entry
	P50, P99       time.Duration         // latency of all requests
	P99Extra       time.Duration         // P99 minus the "none" scenario's P99 (0 without it)
	MaxRSS         int64                 // largest processor resident memory seen, bytes
	Err            error                 // the scenario could not run as planned
	Note           string                // what the fault found, e.g. requests in flight at a killed processor
	KilledInFlight int                   // requests in flight at a killed processor (-1: unknown or none killed)
	Retries        int                   // requests the bridge sent again (simmatch_bridge_nats_retries_total; -1: unknown)
	FastRejectP99  time.Duration         // p99 latency of 429 answers, when there were any
}

// Run runs the named scenarios (all when names is empty) one after the other,
// each on fresh processes, and returns their results.
func Run(ctx context.Context, cfg Config, names []string) ([]Result, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = 20 * time.Second
	}
	if cfg.Clients <= 0 {
		cfg.Clients = 8
	}
	if cfg.Descriptions <= 0 {
		cfg.Descriptions = 10
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if len(cfg.Doors) == 0 {
		cfg.Doors = Doors
	}
	for _, d := range cfg.Doors {
		if !slices.Contains(Doors, d) {
			return nil, fmt.Errorf("chaos: unknown door %q (want %s)", d, strings.Join(Doors, ", "))
		}
	}
	var results []Result
	var base time.Duration
	for _, s := range Scenarios {
		if len(names) > 0 && !slices.Contains(names, s.Name) {
			continue
		}
		if s.NATSNodes > 0 && cfg.NATSServer == "" {
			cfg.Log("skipping %s: it needs a nats-server binary (-nats-server)", s.Name)
			continue
		}
		cfg.Log("scenario %s: %s", s.Name, s.Fault)
		r := runOne(ctx, cfg, s)
		if s.Name == "none" && r.Err == nil {
			base = r.P99
		}
		if base > 0 {
			r.P99Extra = max(r.P99-base, 0)
		}
		results = append(results, r)
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
	}
	return results, nil
}

func runOne(ctx context.Context, cfg Config, s Scenario) Result {
	r := Result{Scenario: s, FailedBy: map[string]int{}, ByDoor: map[string]*DoorStats{}}
	for _, d := range cfg.Doors {
		r.ByDoor[d] = &DoorStats{LostBy: map[string]int{}}
	}
	e := &env{cfg: cfg, natsURL: cfg.NATSURL, killedInFlight: -1}
	defer e.close()
	nodes := s.NATSNodes
	if nodes == 0 && cfg.NATSURL == "" {
		nodes = 1
	}
	if nodes > 0 {
		if err := e.startNATS(nodes); err != nil {
			r.Err = err
			return r
		}
	}
	for i := range 3 {
		if err := e.startProcessor(i); err != nil {
			r.Err = err
			return r
		}
	}
	if err := e.startBridge(); err != nil {
		r.Err = err
		return r
	}
	if slices.Contains(cfg.Doors, DoorSearch) {
		if err := e.fillCatalog(); err != nil {
			r.Err = err
			return r
		}
	}
	clients, descs := cfg.Clients, cfg.Descriptions
	if s.Clients > 0 {
		clients, descs = s.Clients, s.Descriptions
	}

	// The load runs for Duration, and at least a third of it after the
	// fault is over, so that the table shows the recovery too. A fault
	// that takes longer than 2 minutes is an error.
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var rssMu sync.Mutex
	go func() { // sample the processors' memory
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
				e.mu.Lock()
				ps := slices.Clone(e.processor)
				e.mu.Unlock()
				for _, p := range ps {
					if p != nil {
						rss := rssBytes(p)
						rssMu.Lock()
						r.MaxRSS = max(r.MaxRSS, rss)
						rssMu.Unlock()
					}
				}
			}
		}
	}()
	start := time.Now()
	load := startLoad(lctx, e.bridgeURL, cfg.Doors, clients, descs)
	if err := sleep(lctx, cfg.Duration/3); err == nil {
		fctx, cancel := context.WithTimeout(lctx, 2*time.Minute)
		note, err := s.inject(fctx, e)
		r.Note, r.Err, r.KilledInFlight = note, err, e.killedInFlight
		cancel()
	}
	_ = sleep(lctx, max(time.Until(start.Add(cfg.Duration)), cfg.Duration/3))
	stop()
	samples := load.wait()
	r.Retries = int(sumCounter(e.bridgeURL+"/metrics", "simmatch_bridge_nats_retries_total"))
	rssMu.Lock()
	defer rssMu.Unlock()
	r.summarize(samples)
	return r
}

type sample struct {
	door    string // DoorPredict, DoorSearch or DoorEmbed
	latency time.Duration
	outcome string // "200", "429", "504", "transport"
	refused bool   // 429 or 503 with Retry-After
}

type loader struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []sample
}

// chaosCatalog is the catalog the search door searches; the environment
// fills it from loadgen's example catalog before the load starts.
const chaosCatalog = "chaos"

// embedModel is the model the embeddings door names.
const embedModel = "all-MiniLM-L6-v2"

// request is one request of the steady load: client c's n-th, through door,
// with descs texts (descriptions to rank, queries or inputs to embed). Its texts are
// its own, so the embedding cache cannot answer it and each one runs the
// model.
func request(base, door string, c, n, descs int) (string, []byte) {
	d := make([]string, descs)
	for i := range d {
		d[i] = fmt.Sprintf("Product %d-%d-%d: cordless drill with two batteries, a charger and a hard case, model %d", c, n, i, i*7)
	}
	query := fmt.Sprintf("drill for wood %d-%d", c, n)
	var body []byte
	var path string
	switch door {
	case DoorSearch:
		path = "/v1/catalogs/" + chaosCatalog + "/search"
		// As many texts to embed as the other doors, within a search's
		// query limit (contracts.DefaultLimits.MaxQueries).
		qs := make([]string, min(descs, contracts.DefaultLimits.MaxQueries))
		for i := range qs {
			qs[i] = fmt.Sprintf("%s, item %d", query, i)
		}
		body, _ = json.Marshal(map[string]any{"query": qs, "top_k": 5})
	case DoorEmbed:
		path = "/v1/embeddings"
		body, _ = json.Marshal(map[string]any{"input": d, "model": embedModel})
	default:
		path = "/predict"
		body, _ = json.Marshal(map[string]any{"query": []string{query}, "product_descriptions": d})
	}
	return base + path, body
}

// startLoad sends requests from clients goroutines until ctx ends, each
// client taking the doors in turn (client c starts at door c), so every door
// carries a steady share of the load; requests in flight when it ends are
// still waited for (their own timeout bounds them), so none is counted as
// failed because the run stopped.
func startLoad(ctx context.Context, url string, doors []string, clients, descs int) *loader {
	l := &loader{}
	hc := &http.Client{Timeout: 30 * time.Second}
	for c := range clients {
		l.wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				door := doors[(c+n)%len(doors)]
				u, body := request(url, door, c, n, descs)
				start := time.Now()
				s := sample{door: door, outcome: "transport"}
				resp, err := hc.Post(u, "application/json", bytes.NewReader(body))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					s.outcome = fmt.Sprint(resp.StatusCode)
					s.refused = (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) &&
						resp.Header.Get("Retry-After") != ""
				}
				s.latency = time.Since(start)
				l.mu.Lock()
				l.samples = append(l.samples, s)
				l.mu.Unlock()
				if s.refused {
					_ = sleep(ctx, 50*time.Millisecond) // a polite client backs off
				}
			}
		})
	}
	return l
}

func (l *loader) wait() []sample {
	l.wg.Wait()
	return l.samples
}

func (r *Result) summarize(samples []sample) {
	var lat, rejected []time.Duration
	for _, s := range samples {
		r.Requests++
		lat = append(lat, s.latency)
		d := r.ByDoor[s.door]
		if d == nil {
			d = &DoorStats{LostBy: map[string]int{}}
			r.ByDoor[s.door] = d
		}
		d.Requests++
		switch {
		case s.outcome == "200":
			d.OK++
		case s.refused:
			d.Refused++
		default:
			d.Lost++
			d.LostBy[s.outcome]++
			r.Lost++
		}
		if s.outcome != "200" {
			r.Failed++
			r.FailedBy[s.door+" "+s.outcome]++
		}
		if s.outcome == "429" {
			rejected = append(rejected, s.latency)
		}
	}
	r.P50, r.P99 = quantile(lat, 0.5), quantile(lat, 0.99)
	r.FastRejectP99 = quantile(rejected, 0.99)
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

// Table writes the results as a Markdown table: lost counts per door
// (predict/search/embed; "-" for a door the load did not use), refused
// (429/503 with Retry-After) and how every failure failed.
func Table(w io.Writer, results []Result) {
	fmt.Fprintln(w, "| fault | requests | lost predict/search/embed | refused predict/search/embed | ok predict/search/embed | how they failed | retries | p50 | p99 | p99 extra | 429 p99 | processor RSS max |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		how := make([]string, 0, len(r.FailedBy))
		for k, v := range r.FailedBy {
			how = append(how, fmt.Sprintf("%d x %s", v, k))
		}
		sort.Strings(how)
		if r.Note != "" {
			how = append(how, "("+r.Note+")")
		}
		if r.Err != nil {
			how = append(how, "SCENARIO ERROR: "+r.Err.Error())
		}
		rej := "-"
		if r.FastRejectP99 > 0 {
			rej = ms(r.FastRejectP99)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %d | %s | %s | %s | %s | %d MB |\n", r.Scenario.Fault, r.Requests,
			perDoor(r, func(d *DoorStats) int { return d.Lost }), perDoor(r, func(d *DoorStats) int { return d.Refused }),
			perDoor(r, func(d *DoorStats) int { return d.OK }),
			strings.Join(how, ", "), r.Retries, ms(r.P50), ms(r.P99), ms(r.P99Extra), rej, r.MaxRSS>>20)
	}
}

// perDoor is f of each door, "/"-separated in the order of Doors.
func perDoor(r Result, f func(*DoorStats) int) string {
	parts := make([]string, len(Doors))
	for i, d := range Doors {
		parts[i] = "-"
		if s := r.ByDoor[d]; s != nil {
			parts[i] = fmt.Sprint(f(s))
		}
	}
	return strings.Join(parts, "/")
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
