package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
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
	// Flood makes the scenario a flood (see runFlood): Clients clients
	// that resend at once after every refusal, ignoring Retry-After,
	// beside Polite well-behaved clients of the steady load's shape, for
	// FloodDuration (the -duration flag when zero).
	Flood         bool
	Polite        int
	FloodDuration time.Duration
	// MatchJob runs a catalog match job across the fault (see
	// fillMatchCatalogs and killProcessor): the fault must find it
	// running, and it must end done with every row once.
	MatchJob bool
	// inject runs the fault; it returns when the fault is over, with a
	// note for the table (e.g. how many requests the killed processor had).
	inject func(ctx context.Context, e *env) (string, error)
}

// Scenarios are the faults of the suite, in the order they run.
var Scenarios = []Scenario{
	{Name: "none", Fault: "none", inject: func(context.Context, *env) (string, error) { return "", nil }},
	{Name: "kill9", Fault: "kill -9 one processor of three mid match job, restart it 5 s later", MatchJob: true, inject: killProcessor},
	{Name: "rolling", Fault: "rolling SIGTERM restart of all three processors", inject: rollingRestart},
	{Name: "nats-restart", Fault: "NATS server restart, 2 s down", NATSNodes: 1, inject: restartNATS},
	{Name: "cluster-node-kill", Fault: "kill -9 one node of a 3-node NATS cluster", NATSNodes: 3, inject: killNATSNode},
	{Name: "overload", Fault: "flood: 64 clients x 200 descriptions resending at once after every 429, beside 2 polite clients",
		Clients: 64, Descriptions: 200, Flood: true, Polite: 2, FloodDuration: 15 * time.Second,
		inject: func(context.Context, *env) (string, error) { return "", nil }},
}

// killProcessor kills processor 1 with SIGKILL once it has several requests
// in flight (read from its /metrics: 4 or more, waited for up to 5 s, else
// any), so that the kill catches requests of more than one door (the gauge
// counts /predict and embeddings requests, queued or running), and restarts
// it 5 s later. With a match job (Scenario.MatchJob) the job is submitted
// first and the kill waits for it to be part done (an error when it is
// done first); after the restart the job must end done with one result
// line per feed item and the planted products first.
func killProcessor(ctx context.Context, e *env) (string, error) {
	var job *MatchJobStats
	var submitted time.Time
	if e.matchJob {
		var err error
		submitted = time.Now()
		if job, err = e.submitMatchJob(); err != nil {
			return "", err
		}
		e.job = job
		if err := e.waitMidJob(ctx, job); err != nil {
			return "", err
		}
	}
	inFlight := 0.0
	var waited time.Duration
	if job != nil {
		// The job is under way: kill as soon as a request is in flight
		// too (a fast machine can be between requests), while the job
		// still runs (its progress is read again just before the kill).
		t0 := time.Now()
		_ = waitUntil(2*time.Second, "a request in flight at processor 1", func() bool {
			inFlight = gauge("http://"+e.procAddrs[0]+"/metrics", "simmatch_processor_in_flight")
			return inFlight >= 1
		})
		waited = time.Since(t0)
	}
	for _, want := range []float64{4, 1} {
		if job != nil {
			break
		}
		if waitUntil(5*time.Second, "requests in flight at processor 1", func() bool {
			inFlight = gauge("http://"+e.procAddrs[0]+"/metrics", "simmatch_processor_in_flight")
			return inFlight >= want
		}) == nil {
			break
		}
	}
	if job != nil { // still part done, just before the kill
		if err := e.progressAtKill(job); err != nil {
			return "", err
		}
	}
	if err := e.processor[0].signal(syscall.SIGKILL, 10*time.Second); err != nil {
		return "", err
	}
	e.killedInFlight = int(inFlight)
	note := fmt.Sprintf("%.0f requests in flight at the killed processor", inFlight)
	if job != nil {
		note += fmt.Sprintf(" (waited %v for one)", waited.Round(time.Millisecond))
	}
	if err := sleep(ctx, 5*time.Second); err != nil {
		return note, err
	}
	if err := e.startProcessor(0); err != nil || job == nil {
		return note, err
	}
	err := e.finishMatchJob(ctx, job, submitted)
	return note + "; " + job.String(), err
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
	// Flood is what a flood scenario measured (nil for the others).
	Flood *FloodStats
	// MatchJob is what the match job run across the fault found (nil
	// without Scenario.MatchJob, or when it could not be submitted).
	MatchJob *MatchJobStats
}

// FloodStats is what a flood scenario measured: the polite clients'
// goodput alone and beside the flood, the admitted requests that timed out,
// how fast refusals were and the load generator's share of the CPU.
type FloodStats struct {
	// PoliteAlone and PoliteFlood are the polite clients' answered
	// requests per second, alone (before the flood) and during it.
	PoliteAlone, PoliteFlood float64
	// Answered is every 200 during the flood (both kinds of client).
	Answered int
	// Timeouts counts 504 answers, every client: admitted requests that
	// missed their deadline.
	Timeouts int
	// Refused counts 429s during the flood; Tarpitted those the bridge
	// delayed on purpose (Simmatch-Tarpit-Ms), Cut the flooders' requests
	// whose connection the bridge closed.
	Refused, Tarpitted, Cut int
	// RefusedP99 is the p99 latency of the 429s not delayed on purpose;
	// TarpitP99 of the delayed ones; PoliteRefusedP99 of the polite
	// clients' 429s.
	RefusedP99, TarpitP99, PoliteRefusedP99 time.Duration
	// LoadCPU is the load generator's (this process's) CPU share of all the
	// CPU used by it and the processes of the scenario during the flood.
	LoadCPU float64
	// BridgeCPU is the bridge's share of the same.
	BridgeCPU float64
}

// Goodput is the polite clients' goodput beside the flood as a fraction of
// their goodput alone (0 when not measured).
func (f *FloodStats) Goodput() float64 {
	if f == nil || f.PoliteAlone <= 0 {
		return 0
	}
	return f.PoliteFlood / f.PoliteAlone
}

// Flood scenario targets: no admitted request times out, the polite clients
// keep at least half their goodput, refusals stay fast.
const (
	FloodMinGoodput    = 0.5
	FloodMaxRefusedP99 = 50 * time.Millisecond
)

// Misses lists the flood targets a result missed (none for other scenarios).
func (r Result) Misses() []string {
	f := r.Flood
	if f == nil {
		return nil
	}
	var m []string
	if f.Timeouts > 0 {
		m = append(m, fmt.Sprintf("%d admitted requests timed out (504), want 0", f.Timeouts))
	}
	if g := f.Goodput(); g < FloodMinGoodput {
		m = append(m, fmt.Sprintf("polite goodput %.2f of alone (%.1f of %.1f req/s), want >= %.1f", g, f.PoliteFlood, f.PoliteAlone, FloodMinGoodput))
	}
	if f.RefusedP99 > FloodMaxRefusedP99 {
		m = append(m, fmt.Sprintf("429 p99 %v, want <= %v", f.RefusedP99, FloodMaxRefusedP99))
	}
	return m
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
	e := &env{cfg: cfg, natsURL: cfg.NATSURL, killedInFlight: -1, matchJob: s.MatchJob}
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
	if s.MatchJob {
		t0 := time.Now()
		if err := e.fillMatchCatalogs(); err != nil {
			r.Err = err
			return r
		}
		cfg.Log("%s: the match job's catalogs (2 x %d products) filled in %v", s.Name, matchItems, time.Since(t0).Round(10*time.Millisecond))
	}
	if s.Flood {
		runFlood(ctx, cfg, s, e, &r)
		return r
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
		r.Note, r.Err, r.KilledInFlight, r.MatchJob = note, err, e.killedInFlight, e.job
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
	at      time.Time     // when it was sent
	polite  bool          // sent by a polite client of a flood scenario
	tarpit  bool          // a 429 the bridge delayed on purpose (Simmatch-Tarpit-Ms)
	code    string        // the error's code, for answers other than 200
	wait    time.Duration // the wait a refusal asked for
	door    string        // DoorPredict, DoorSearch or DoorEmbed
	latency time.Duration
	conn    time.Duration // until the client had a connection to send on (a new one is dialled)
	outcome string        // "200", "429", "504", "transport"
	refused bool          // 429 or 503 with Retry-After
}

type loader struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []sample
	// first holds each client's first request (by client number), built
	// before the clients start (runFlood): 64 clients building 20 KB bodies
	// at once took the load generator's cores for some 25 ms, and every
	// first request's clock (dial included) ran meanwhile.
	first map[int]prepared
}

// prepared is a request built ahead: its door, URL and body.
type prepared struct {
	door, url string
	body      []byte
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
// failed because the run stopped. After a refusal each client waits 50 ms.
func startLoad(ctx context.Context, url string, doors []string, clients, descs int) *loader {
	l := &loader{}
	hc := &http.Client{Timeout: 30 * time.Second}
	for c := range clients {
		l.wg.Go(func() { l.client(ctx, hc, url, doors, c, descs, backoffFixed) })
	}
	return l
}

// How a client of the load waits after a refusal.
const (
	backoffFixed  = iota // 50 ms, whatever the answer says
	backoffHonour        // Retry-After-Ms, else Retry-After (a polite client)
	backoffNone          // resend at once (a flooder)
)

// client is load client c: it sends until ctx ends.
func (l *loader) client(ctx context.Context, hc *http.Client, url string, doors []string, c, descs, backoff int) {
	for n := 0; ctx.Err() == nil; n++ {
		door := doors[(c+n)%len(doors)]
		var u string
		var body []byte
		if p, ok := l.first[c]; ok && n == 0 {
			door, u, body = p.door, p.url, p.body
		} else {
			u, body = request(url, door, c, n, descs)
		}
		start := time.Now()
		s := sample{at: start, door: door, outcome: "transport", polite: backoff == backoffHonour}
		var wait time.Duration
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(httptrace.GotConnInfo) { s.conn = time.Since(start) },
		}), http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			panic(err) // a URL of our own making
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err == nil {
			if resp.StatusCode != http.StatusOK {
				var e struct {
					Error struct {
						Code string `json:"code"`
					} `json:"error"`
				}
				_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
				s.code = e.Error.Code
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			s.outcome = fmt.Sprint(resp.StatusCode)
			s.refused = (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) &&
				resp.Header.Get("Retry-After") != ""
			s.tarpit = resp.Header.Get("Simmatch-Tarpit-Ms") != ""
			if ms, err := strconv.Atoi(resp.Header.Get("Retry-After-Ms")); err == nil {
				wait = time.Duration(ms) * time.Millisecond
			} else if sec, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				wait = time.Duration(sec) * time.Second
			}
		}
		s.latency, s.wait = time.Since(start), wait
		l.mu.Lock()
		l.samples = append(l.samples, s)
		l.mu.Unlock()
		if !s.refused {
			continue
		}
		switch backoff {
		case backoffFixed:
			_ = sleep(ctx, 50*time.Millisecond)
		case backoffHonour:
			_ = sleep(ctx, wait)
		}
	}
}

// runFlood runs a flood scenario: s.Polite polite clients alone for a
// third of the flood's duration (their goodput alone), then s.Clients
// flooders beside them for s.FloodDuration. Each client has a connection of
// its own, kept alive, like an SDK's client.
func runFlood(ctx context.Context, cfg Config, s Scenario, e *env, r *Result) {
	dur := s.FloodDuration
	if dur <= 0 {
		dur = cfg.Duration
	}
	newClient := func() *http.Client {
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	}
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	polite, flood := &loader{}, &loader{}
	for c := range s.Polite {
		hc := newClient()
		polite.wg.Go(func() { polite.client(lctx, hc, e.bridgeURL, cfg.Doors, 1000+c, cfg.Descriptions, backoffHonour) })
	}
	aloneStart := time.Now()
	if sleep(lctx, dur/3) != nil {
		r.Err = lctx.Err()
		return
	}
	floodStart := time.Now()
	cpu0 := e.cpuTicks()
	fctx, fstop := context.WithCancel(lctx)
	flood.first = map[int]prepared{}
	for c := range s.Clients {
		door := cfg.Doors[c%len(cfg.Doors)]
		u, body := request(e.bridgeURL, door, c, 0, s.Descriptions)
		flood.first[c] = prepared{door, u, body}
	}
	for c := range s.Clients {
		hc := newClient()
		flood.wg.Go(func() { flood.client(fctx, hc, e.bridgeURL, cfg.Doors, c, s.Descriptions, backoffNone) })
	}
	_ = sleep(lctx, dur)
	floodEnd := time.Now()
	cpu1 := e.cpuTicks()
	fstop()
	stop()
	samples := append(polite.wait(), flood.wait()...)
	writeSamples(filepath.Join(cfg.WorkDir, s.Name+"-samples.csv"), aloneStart, samples)
	r.Retries = int(sumCounter(e.bridgeURL+"/metrics", "simmatch_bridge_nats_retries_total"))
	r.summarize(samples)

	f := &FloodStats{}
	var refused, tarpit, politeRefused []time.Duration
	aloneOK, floodOK := 0, 0
	for _, x := range samples {
		if x.outcome == "504" {
			f.Timeouts++
		}
		done := x.at.Add(x.latency)
		if x.polite && x.outcome == "200" {
			switch {
			case done.Before(floodStart):
				aloneOK++
			case !x.at.Before(floodStart) && !done.After(floodEnd):
				floodOK++
			}
		}
		if x.at.Before(floodStart) {
			continue
		}
		switch {
		case x.outcome == "200":
			f.Answered++
		case x.outcome == "transport" && !x.polite:
			f.Cut++
		case x.outcome == "429":
			f.Refused++
			if x.tarpit {
				f.Tarpitted++
				tarpit = append(tarpit, x.latency)
			} else {
				refused = append(refused, x.latency)
			}
			if x.polite {
				politeRefused = append(politeRefused, x.latency)
			}
		}
	}
	f.PoliteAlone = float64(aloneOK) / floodStart.Sub(aloneStart).Seconds()
	f.PoliteFlood = float64(floodOK) / floodEnd.Sub(floodStart).Seconds()
	f.RefusedP99, f.TarpitP99, f.PoliteRefusedP99 = quantile(refused, 0.99), quantile(tarpit, 0.99), quantile(politeRefused, 0.99)
	if total := cpu1.total() - cpu0.total(); total > 0 {
		f.LoadCPU = float64(cpu1.self-cpu0.self) / float64(total)
		f.BridgeCPU = float64(cpu1.bridge-cpu0.bridge) / float64(total)
	}
	r.Flood = f
	r.FastRejectP99 = f.RefusedP99
}

func (l *loader) wait() []sample {
	l.wg.Wait()
	return l.samples
}

// writeSamples writes every request of a flood scenario to path, for a
// closer look: seconds since the start, client kind, door, outcome,
// latency in ms, ms until it had a connection (a dial when new), tarpitted,
// error code, wait asked for; best effort.
func writeSamples(path string, start time.Time, samples []sample) {
	var b strings.Builder
	b.WriteString("t_s,client,door,outcome,latency_ms,conn_ms,tarpit,code,wait_ms\n")
	for _, x := range samples {
		kind := "flood"
		if x.polite {
			kind = "polite"
		}
		fmt.Fprintf(&b, "%.3f,%s,%s,%s,%.1f,%.1f,%t,%s,%d\n", x.at.Sub(start).Seconds(), kind, x.door, x.outcome,
			float64(x.latency.Microseconds())/1000, float64(x.conn.Microseconds())/1000, x.tarpit, x.code, x.wait.Milliseconds())
	}
	_ = os.WriteFile(path, []byte(b.String()), 0o644)
}

// FloodTable writes the flood scenarios' figures as a Markdown table.
func FloodTable(w io.Writer, results []Result) {
	header := false
	for _, r := range results {
		f := r.Flood
		if f == nil {
			continue
		}
		if !header {
			fmt.Fprintln(w, "| flood | polite goodput alone | beside the flood | ratio | answered | admitted then 504 | 429s (tarpitted) | cut | 429 p99 (not tarpitted) | tarpit p99 | polite 429 p99 | CPU share: load generator, bridge |")
			fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
			header = true
		}
		fmt.Fprintf(w, "| %s | %.1f req/s | %.1f req/s | %.2f | %d | %d | %d (%d) | %d | %s | %s | %s | %.0f%%, %.0f%% |\n", r.Scenario.Name,
			f.PoliteAlone, f.PoliteFlood, f.Goodput(), f.Answered, f.Timeouts, f.Refused, f.Tarpitted, f.Cut,
			ms(f.RefusedP99), ms(f.TarpitP99), ms(f.PoliteRefusedP99), 100*f.LoadCPU, 100*f.BridgeCPU)
	}
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
