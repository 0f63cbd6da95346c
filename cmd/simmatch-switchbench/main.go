// Command simmatch-switchbench measures model switching under load, in one
// process: an in-process NATS server with JetStream, a processor serving the
// model registry (processor/models) and model control, and -clients clients
// sending steady requests that name no version. In one run it measures, side
// by side:
//
//  1. baseline (after a warm-up): p99 with one version loaded, and the
//     process's RSS;
//  2. loading the other version while serving: p99 of the requests in
//     flight during the load (its impact is the ratio to the baseline) and
//     the RSS with both loaded;
//  3. switching the default back and forth -switches times: non-OK answers,
//     answers by version, p99 during the switches.
//
// `make bench-switch` runs it with 16 clients and 10 switches.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/models"
	"github.com/simmatch/simmatch/processor/scheduler"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "simmatch-switchbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("simmatch-switchbench", flag.ContinueOnError)
	fs.SetOutput(stdout)
	dir := fs.String("model-dir", getenv("SIMMATCH_MODEL_DIR"), "a version of the model store models/<name>/<version>/ [$SIMMATCH_MODEL_DIR]")
	lib := fs.String("ort-lib", getenv("SIMMATCH_ORT_LIB"), "path of libonnxruntime.so [$SIMMATCH_ORT_LIB]")
	from := fs.String("from", "fp32", "version serving first")
	to := fs.String("to", "int8", "version loaded while serving, then switched to and back")
	clients := fs.Int("clients", 16, "concurrent clients")
	switches := fs.Int("switches", 10, "switches of the default version")
	every := fs.Duration("every", 2*time.Second, "time between switches; also the length of the baseline")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *lib == "" {
		return fmt.Errorf("set -model-dir and -ort-lib (or SIMMATCH_MODEL_DIR, SIMMATCH_ORT_LIB; `make deps` fetches both)")
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	modelDir := filepath.Dir(filepath.Clean(*dir))
	root, name := filepath.Dir(modelDir), filepath.Base(modelDir)

	store, err := os.MkdirTemp("", "simmatch-switchbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(store)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: store})
	if err != nil {
		return err
	}
	ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("nats server not ready")
	}
	connect := func() (*nats.Conn, error) { return nats.Connect(ns.ClientURL()) }

	reg, err := models.New(models.Config{Root: root, Library: *lib, Scheduler: scheduler.Config{Pool: scheduler.NewPool(0)}})
	if err != nil {
		return err
	}
	defer reg.Close(context.Background())
	if err := reg.Load(ctx, contracts.ModelRef(name, *from)); err != nil {
		return err
	}
	pnc, err := connect()
	if err != nil {
		return err
	}
	defer pnc.Close()
	p, err := processor.Start(processor.Config{NATS: pnc, Embedder: reg, Models: reg})
	if err != nil {
		return err
	}
	defer p.Stop(context.Background())
	ctl, err := models.StartControl(ctx, models.ControlConfig{NATS: pnc, Registry: reg, Processor: p})
	if err != nil {
		return err
	}
	defer ctl.Stop()
	cnc, err := connect()
	if err != nil {
		return err
	}
	defer cnc.Close()
	client, err := contracts.NewClient(cnc, contracts.WithTimeout(60*time.Second))
	if err != nil {
		return err
	}
	control := contracts.NewModelControl(cnc)

	rec := &recorder{versions: map[string]int{}}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; loadCtx.Err() == nil; n++ {
				req := &contracts.Request{Query: contracts.Queries{fmt.Sprintf("what can I use to cut wood, client %d request %d", i, n)},
					ProductDescriptions: []string{"Heavy-duty claw hammer.", "Circular saw with laser guide.", "Cordless drill with two batteries.", "Wood chisel set."}}
				start := time.Now()
				resp, err := client.Match(context.Background(), req) // not loadCtx: a request sent is answered
				rec.add(start, time.Since(start), resp, err)
			}
		}()
	}
	mark := func() time.Time { return time.Now() }

	fmt.Fprintf(stdout, "switchbench: %s, %d clients, %d switches %v apart (%s <-> %s)\n", name, *clients, *switches, *every, *from, *to)
	// A warm-up, then the baseline, each -every long.
	timer := time.NewTimer(*every)
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	t0 := mark()
	timer.Reset(*every)
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	rssOne := models.RSS()
	t0end := mark()

	t1 := mark()
	if _, err := control.Load(ctx, contracts.ModelRef(name, *to)); err != nil {
		stopLoad()
		wg.Wait()
		return fmt.Errorf("load %s: %w", *to, err)
	}
	t1end := mark()
	loadTime := t1end.Sub(t1)
	rssTwo := models.RSS()

	t2 := mark()
	for i := range *switches {
		v := []string{*to, *from}[i%2]
		if _, err := control.Switch(ctx, contracts.ModelRef(name, v)); err != nil {
			stopLoad()
			wg.Wait()
			return fmt.Errorf("switch to %s: %w", v, err)
		}
		timer.Reset(*every)
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	t2end := mark()
	stopLoad()
	wg.Wait()
	// Every request is answered by now.
	baseline, loading, switching := rec.window(t0, t0end), rec.window(t1, t1end), rec.window(t2, t2end)

	fmt.Fprintf(stdout, "baseline (%s alone):        %s\n", *from, baseline)
	fmt.Fprintf(stdout, "while loading %s (%v): %s; p99 impact x%.2f\n", *to, loadTime.Round(time.Millisecond), loading, ratio(loading.p99, baseline.p99))
	fmt.Fprintf(stdout, "during %d switches:         %s; p99 x%.2f of baseline\n", *switches, switching, ratio(switching.p99, baseline.p99))
	fmt.Fprintf(stdout, "RSS: %s with one version, %s with two (+%s)\n", mib(rssOne), mib(rssTwo), mib(rssTwo-rssOne))
	fmt.Fprintf(stdout, "all answers: %d, non-OK %d; answers by version: %v\n", rec.total(), rec.failed(), rec.byVersion())
	if rec.failed() > 0 {
		return fmt.Errorf("%d requests failed; first: %v", rec.failed(), rec.firstErr)
	}
	return nil
}

type sample struct {
	at      time.Time
	latency time.Duration
	ok      bool
}

type recorder struct {
	mu       sync.Mutex
	samples  []sample
	versions map[string]int
	fails    int
	firstErr error
}

func (r *recorder) add(start time.Time, d time.Duration, resp *contracts.Response, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, sample{start, d, err == nil})
	if err != nil {
		r.fails++
		if r.firstErr == nil {
			r.firstErr = err
		}
		return
	}
	r.versions[resp.Model.Version]++
}

type stats struct {
	n, failed     int
	p50, p99, max time.Duration
}

func (s stats) String() string {
	return fmt.Sprintf("%5d answers, %d non-OK, p50 %6.1f ms, p99 %6.1f ms, max %6.1f ms", s.n, s.failed,
		ms(s.p50), ms(s.p99), ms(s.max))
}

// window is the figures of the requests in flight at some time in
// [from, to): a request that waited through a load counts for the load.
func (r *recorder) window(from, to time.Time) stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	var l []time.Duration
	var s stats
	for _, x := range r.samples {
		if x.at.Before(to) && x.at.Add(x.latency).After(from) {
			l = append(l, x.latency)
			if !x.ok {
				s.failed++
			}
		}
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	s.n = len(l)
	if s.n > 0 {
		s.p50, s.p99, s.max = l[s.n/2], l[min(s.n-1, s.n*99/100)], l[s.n-1]
	}
	return s
}

func (r *recorder) total() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.samples) }

func (r *recorder) failed() int { r.mu.Lock(); defer r.mu.Unlock(); return r.fails }

func (r *recorder) byVersion() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var l []string
	for v, n := range r.versions {
		l = append(l, fmt.Sprintf("%s=%d", v, n))
	}
	slices.Sort(l)
	return strings.Join(l, " ")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
