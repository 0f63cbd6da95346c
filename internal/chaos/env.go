// Package chaos runs the real simmatch binaries (processors, bridge, and
// optionally standalone nats-server processes) on loopback, injects faults
// (kill -9, rolling SIGTERM restarts, NATS restarts, cluster node loss,
// overload) under steady HTTP load through the three doors (POST /predict,
// catalog search, POST /v1/embeddings), and reports what the callers saw,
// per door: answered, refused (429/503 with Retry-After) or lost. The
// simmatch-chaos command and `make chaos` run the full suite; a short
// version runs in `make test`.
package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/simmatch/simmatch/internal/loadgen"
)

// Config says where the binaries are and how hard to push.
type Config struct {
	// BinDir holds simmatch-processor and simmatch-bridge.
	BinDir string
	// NATSServer is the nats-server binary; empty means NATSURL must be set
	// and the scenarios that restart NATS are skipped.
	NATSServer string
	// NATSURL is an already running NATS server to use instead of starting one.
	NATSURL string
	// ModelDir and ORTLib are passed to the processors.
	ModelDir, ORTLib string
	// WorkDir receives the processes' logs.
	WorkDir string
	// Duration is how long each scenario's load runs; the fault comes at a third of it.
	Duration time.Duration
	// Clients and Descriptions shape the steady load (8 and 10 by default).
	Clients, Descriptions int
	// Doors are the doors the steady load goes through, in turn (Doors,
	// all three, by default). The search door needs JetStream on the NATS
	// server (NATSURL's, or the one started here, which has it).
	Doors []string
	// Log receives progress lines; nil means none.
	Log func(format string, args ...any)
}

// proc is one child process.
type proc struct {
	name string
	args []string
	env  []string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// env is one scenario's set of processes.
type env struct {
	cfg       Config
	mu        sync.Mutex // guards procs and processor
	procs     []*proc    // every process started, for the final clean-up
	nats      []*proc    // standalone servers, when started here
	natsArgs  [][]string
	natsMon   []string // monitoring address of each standalone server
	natsURL   string
	processor []*proc
	procAddrs []string // metrics address of each processor slot
	bridge    *proc
	bridgeURL string
	// killedInFlight is what the killed processor had in flight (-1: unknown).
	killedInFlight int
	// replicas of the processors' JetStream assets (0: their default, 1).
	replicas int
	// matchJob: the fault runs a match job (Scenario.MatchJob); job is it
	// once submitted.
	matchJob bool
	job      *MatchJobStats
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (e *env) start(name string, bin string, args []string, extraEnv []string) (*proc, error) {
	p := &proc{name: name, args: args, env: extraEnv, done: make(chan struct{})}
	logf, err := os.OpenFile(filepath.Join(e.cfg.WorkDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), extraEnv...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("chaos: start %s: %w", name, err)
	}
	go func() { p.err = p.cmd.Wait(); logf.Close(); close(p.done) }()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// signal sends sig and waits up to timeout for the process to exit.
func (p *proc) signal(sig syscall.Signal, timeout time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("chaos: %s did not exit within %v of %v; killed", p.name, timeout, sig)
	}
}

// close kills whatever is still running.
func (e *env) close() {
	e.mu.Lock()
	procs := e.procs
	e.mu.Unlock()
	for _, p := range procs {
		_ = p.signal(syscall.SIGKILL, 10*time.Second)
	}
}

// startNATS starts n standalone servers (a cluster when n > 1), with
// JetStream (catalogs live there) on a store of their own that survives a
// restart; a cluster is ready once JetStream has a meta leader.
func (e *env) startNATS(n int) error {
	ports := make([]int, n)
	cports := make([]int, n)
	for i := range n {
		var err error
		if ports[i], err = freePort(); err != nil {
			return err
		}
		if cports[i], err = freePort(); err != nil {
			return err
		}
	}
	var urls []string
	for i := range n {
		mport, err := freePort()
		if err != nil {
			return err
		}
		store, err := os.MkdirTemp(e.cfg.WorkDir, fmt.Sprintf("jetstream-n%d-", i+1))
		if err != nil {
			return err
		}
		args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(ports[i]), "-n", fmt.Sprintf("chaos-n%d", i+1),
			"-js", "-sd", store, "-m", strconv.Itoa(mport)}
		e.natsMon = append(e.natsMon, fmt.Sprintf("127.0.0.1:%d", mport))
		if n > 1 {
			var routes []string
			for j := range n {
				if j != i {
					routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", cports[j]))
				}
			}
			args = append(args, "--cluster_name", "chaos", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", cports[i]),
				"--routes", strings.Join(routes, ","))
		}
		e.natsArgs = append(e.natsArgs, args)
		e.nats = append(e.nats, nil)
		if err := e.restartNATS(i); err != nil {
			return err
		}
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	e.natsURL = strings.Join(urls, ",")
	if n > 1 {
		e.replicas = n
		return waitUntil(30*time.Second, "a JetStream meta leader", func() bool {
			var jsz struct {
				Meta struct {
					Leader string `json:"leader"`
				} `json:"meta_cluster"`
			}
			return getJSON("http://"+e.natsMon[0]+"/jsz", &jsz) == nil && jsz.Meta.Leader != ""
		})
	}
	return nil
}

// getJSON decodes a GET of url that answers 200 into v.
func getJSON(url string, v any) error {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("chaos: GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (e *env) restartNATS(i int) error {
	p, err := e.start(fmt.Sprintf("nats-%d", i+1), e.cfg.NATSServer, e.natsArgs[i], nil)
	if err != nil {
		return err
	}
	e.nats[i] = p
	port := e.natsArgs[i][3]
	return waitUntil(10*time.Second, "nats-server on port "+port, func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// startProcessor starts processor slot i (a new slot when i == len) and
// waits until it is ready.
func (e *env) startProcessor(i int) error {
	if i == len(e.processor) {
		port, err := freePort()
		if err != nil {
			return err
		}
		e.mu.Lock() // the memory sampler reads e.processor
		e.processor = append(e.processor, nil)
		e.procAddrs = append(e.procAddrs, fmt.Sprintf("127.0.0.1:%d", port))
		e.mu.Unlock()
	}
	p, err := e.start(fmt.Sprintf("processor-%d", i+1), filepath.Join(e.cfg.BinDir, "simmatch-processor"), nil, []string{
		"NATS_URL=" + e.natsURL, "SIMMATCH_METRICS_ADDR=" + e.procAddrs[i], "SIMMATCH_MODEL_DIR=" + e.cfg.ModelDir,
		"SIMMATCH_ORT_LIB=" + e.cfg.ORTLib, "SIMMATCH_WORKERS=1", "SIMMATCH_LOG_LEVEL=warn",
		"SIMMATCH_JETSTREAM_REPLICAS=" + strconv.Itoa(max(e.replicas, 1)),
		"SIMMATCH_JOB_ACK_WAIT=" + jobAckWait.String(), "SIMMATCH_JOB_MATCH_CHUNK_SIZE=" + strconv.Itoa(matchChunkSize),
	})
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.processor[i] = p
	e.mu.Unlock()
	return waitReady(p, "http://"+e.procAddrs[i]+"/ready")
}

func (e *env) startBridge() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := e.start("bridge", filepath.Join(e.cfg.BinDir, "simmatch-bridge"), nil, []string{
		"NATS_URL=" + e.natsURL, "SIMMATCH_HTTP_ADDR=" + addr, "SIMMATCH_LOG_LEVEL=warn",
	})
	if err != nil {
		return err
	}
	e.bridge, e.bridgeURL = p, "http://"+addr
	return waitReady(p, e.bridgeURL+"/ready")
}

// fillCatalog upserts loadgen's example catalog into the search door's
// catalog through the bridge and waits until it is searchable
// (storeCatalog).
func (e *env) fillCatalog() error {
	descs := loadgen.Catalog()
	products := make([]map[string]string, len(descs))
	for i, d := range descs {
		products[i] = map[string]string{"id": fmt.Sprintf("p%02d", i), "description": d}
	}
	return e.storeCatalog(chaosCatalog, products, 30*time.Second, func(i int) []byte {
		_, q := request(e.bridgeURL, DoorSearch, -1, i, 1)
		return q
	})
}

// storeCatalog upserts products into catalog name through the bridge until
// it answers 200 (bounded by upsertWait), then waits (30 s at most) until
// searches of it, with the bodies query(i) gives, answer 200 six times in a
// row: every processor follows the catalog's stream.
func (e *env) storeCatalog(name string, products any, upsertWait time.Duration, query func(i int) []byte) error {
	body, err := json.Marshal(map[string]any{"products": products})
	if err != nil {
		return err
	}
	var last string
	if err := waitUntil(upsertWait, "the upsert of catalog "+name, func() bool {
		code, msg := e.call(http.MethodPost, "/v1/catalogs/"+name+"/products", body, upsertWait)
		last = fmt.Sprintf("%d %s", code, msg)
		return code == http.StatusOK
	}); err != nil {
		return fmt.Errorf("%w (last answer: %s)", err, last)
	}
	ok := 0
	if err := waitUntil(30*time.Second, "searches of catalog "+name, func() bool {
		code, msg := e.call(http.MethodPost, "/v1/catalogs/"+name+"/search", query(ok), 10*time.Second)
		last = fmt.Sprintf("%d %s", code, msg)
		if code != http.StatusOK {
			ok = 0
			return false
		}
		ok++
		return ok >= 6
	}); err != nil {
		return fmt.Errorf("%w (last answer: %s)", err, last)
	}
	return nil
}

func waitReady(p *proc, url string) error {
	return waitUntil(60*time.Second, p.name+" ready at "+url, func() bool {
		select {
		case <-p.done:
			return true // reported below
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, func() error {
		select {
		case <-p.done:
			return fmt.Errorf("chaos: %s exited: %v (see its log)", p.name, p.err)
		default:
			return nil
		}
	})
}

// waitUntil polls cond every 20 ms for at most timeout; check, when given,
// turns a met condition into an error (a process that died instead).
func waitUntil(timeout time.Duration, what string, cond func() bool, check ...func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return errors.New("chaos: timed out waiting for " + what)
		case <-tick.C:
		}
	}
	for _, c := range check {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}

// rssBytes is the resident memory of a running process, 0 when unknown.
func rssBytes(p *proc) int64 {
	select {
	case <-p.done:
		return 0
	default:
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuSample is CPU time in clock ticks: this process's and its children's
// (every process of the scenario still running).
type cpuSample struct{ self, others, bridge int64 }

func (c cpuSample) total() int64 { return c.self + c.others }

// cpuTicks reads the CPU time (user + system) of this process and of every
// process the scenario started that is still running.
func (e *env) cpuTicks() cpuSample {
	c := cpuSample{self: procTicks("self")}
	e.mu.Lock()
	procs := e.procs
	e.mu.Unlock()
	for _, p := range procs {
		select {
		case <-p.done:
			continue
		default:
		}
		t := procTicks(strconv.Itoa(p.cmd.Process.Pid))
		c.others += t
		if p == e.bridge {
			c.bridge += t
		}
	}
	return c
}

// procTicks is utime + stime of /proc/<pid>/stat; 0 when unreadable.
func procTicks(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}
