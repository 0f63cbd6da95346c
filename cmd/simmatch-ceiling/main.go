// Command simmatch-ceiling measures raw ONNX Runtime's best batched
// throughput (sentences/s) for a model on this machine, on the texts of the
// load generator's fresh mix: what simmatch end to end could reach at most.
// It tries one session with every core as intra-op threads and one
// single-threaded session shared by one goroutine per core, at each batch
// size, and reports the best. `make bench-compare` runs it for fp32 and int8.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/simmatch/simmatch/internal/loadgen"
	"github.com/simmatch/simmatch/processor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "simmatch-ceiling:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("simmatch-ceiling", flag.ContinueOnError)
	fs.SetOutput(stdout)
	dir := fs.String("model-dir", getenv("SIMMATCH_MODEL_DIR"), "model directory [$SIMMATCH_MODEL_DIR]")
	lib := fs.String("ort-lib", getenv("SIMMATCH_ORT_LIB"), "path of libonnxruntime.so [$SIMMATCH_ORT_LIB]")
	model := fs.String("model", "", "model name in the JSON (default: the model directory's base name)")
	batches := fs.String("batch-sizes", "4,8,16,32,64", "batch sizes to try, comma-separated")
	cores := fs.Int("cores", runtime.GOMAXPROCS(0), "cores to use")
	perConfig := fs.Duration("duration", 5*time.Second, "how long each configuration runs")
	texts := fs.Int("texts", 1100, "distinct texts of the fresh mix (11 per request: a query and 10 descriptions)")
	jsonFile := fs.String("json", "", "write the best figure (loadgen.Ceiling) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *lib == "" {
		return fmt.Errorf("set -model-dir and -ort-lib (or SIMMATCH_MODEL_DIR, SIMMATCH_ORT_LIB; `make deps` fetches both)")
	}
	if *model == "" {
		*model = filepath.Base(filepath.Clean(*dir))
	}
	var sizes []int
	for _, s := range strings.Split(*batches, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-batch-sizes %q: want positive integers", *batches)
		}
		sizes = append(sizes, n)
	}
	mix, err := loadgen.NewMix(loadgen.MixFresh, 9001, "")
	if err != nil {
		return err
	}
	var corpus []string
	for i := int64(0); len(corpus) < *texts; i++ {
		r := mix.Request(i)
		corpus = append(corpus, r.Query...)
		corpus = append(corpus, r.ProductDescriptions...)
	}

	best := loadgen.Ceiling{Model: *model}
	for _, layout := range []struct {
		name              string
		sessions, threads int
	}{
		{fmt.Sprintf("1 session x %d intra-op threads", *cores), 1, *cores},
		{fmt.Sprintf("%d goroutines on 1 single-threaded session", *cores), *cores, 1},
	} {
		for _, bs := range sizes {
			m, err := processor.LoadModel(processor.ModelOptions{Dir: *dir, Library: *lib, IntraOpThreads: layout.threads, BatchSize: bs})
			if err != nil {
				return err
			}
			rate, err := measure(ctx, m, corpus, bs, layout.sessions, *perConfig)
			m.Close()
			if err != nil {
				return err
			}
			cfg := fmt.Sprintf("%s, batch %d", layout.name, bs)
			fmt.Fprintf(stdout, "%-6s %-48s %8.1f sentences/s\n", *model, cfg, rate)
			if rate > best.SentencesPerSecond {
				best.SentencesPerSecond, best.Config = rate, cfg
			}
		}
	}
	fmt.Fprintf(stdout, "%-6s best: %.1f sentences/s (%s)\n", *model, best.SentencesPerSecond, best.Config)
	if *jsonFile != "" {
		return loadgen.WriteJSON(*jsonFile, best)
	}
	return nil
}

// measure embeds corpus in batches of bs from workers goroutines, round
// after round, for d (after one warm-up batch each), and returns sentences/s.
func measure(ctx context.Context, m *processor.Model, corpus []string, bs, workers int, d time.Duration) (float64, error) {
	if _, err := m.Embed(ctx, corpus[:bs]); err != nil {
		return 0, err
	}
	var (
		mu    sync.Mutex
		done  int
		first error
		wg    sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for i := w * bs; time.Now().Before(deadline) && ctx.Err() == nil; i += workers * bs {
				lo := i % len(corpus)
				hi := min(lo+bs, len(corpus))
				if _, err := m.Embed(ctx, corpus[lo:hi]); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
				mu.Lock()
				done += hi - lo
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		return 0, first
	}
	return float64(done) / time.Since(start).Seconds(), ctx.Err()
}
