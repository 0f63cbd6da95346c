package jobs_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/loadgen"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor/jobs"
	"github.com/simmatch/simmatch/processor/jobs/jobstore"
	"github.com/simmatch/simmatch/processor/scheduler"
)

// BenchmarkJob runs one job of $SIMMATCH_JOB_BENCH_QUERIES queries
// (default 2,000, so `make bench` stays short; `make bench-jobs` runs
// 100,000) against the 46-product example catalog
// (loadgen.Catalog, the load generator's catalog mix), with 1 and 3
// processors pulling its chunks, and reports queries/s and the job's time.
// `make bench-jobs` runs it; the two sub-benchmarks run side by side, so
// their ratio is the figure to quote. In one process the processors split
// the machine's cores, so the ratio shows the cost of spreading a job over
// processors; the speed-up needs processors on separate machines.
func BenchmarkJob(b *testing.B) {
	n := 2_000
	if v := os.Getenv("SIMMATCH_JOB_BENCH_QUERIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("SIMMATCH_JOB_BENCH_QUERIES=%q: want a positive integer", v)
		}
	}
	catalog := loadgen.Catalog()
	if len(catalog) != 46 {
		b.Fatalf("loadgen.Catalog has %d products, want 46", len(catalog))
	}
	templates := []string{"What can I use to cut wood?", "a gift for a coffee lover", "waterproof gear for hiking",
		"something to charge my phone", "kitchen tools for a small flat", "toys for a two-year-old"}
	queries := make([]string, n)
	for i := range queries {
		queries[i] = fmt.Sprintf("%s (%d)", templates[i%len(templates)], i)
	}
	topK := 5
	for _, procs := range []int{1, 3} {
		b.Run(fmt.Sprintf("processors=%d", procs), func(b *testing.B) {
			ns := testenv.StartNATS(b, testenv.WithJetStream(b, ""))
			// The processors share this machine's cores: each gets its share
			// of model threads, so 3 in-process processors do not
			// oversubscribe what 1 uses. Across machines each has its own.
			share := max(1, runtime.GOMAXPROCS(0)/procs)
			for range procs {
				startProcessor(b, ns, func(c *scheduler.Config) { c.Pool = scheduler.NewPool(share) }, jobs.Config{})
			}
			store, err := jobstore.NewJobs(connect(b, ns), 0)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var elapsed time.Duration
			for b.Loop() {
				start := time.Now()
				st, err := store.Submit(ctx, &contracts.JobRequest{Query: queries, ProductDescriptions: catalog, TopK: &topK})
				if err != nil {
					b.Fatal(err)
				}
				wctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
				st, err = store.Wait(wctx, st.ID, 200*time.Millisecond, nil)
				cancel()
				if err != nil || st.State != contracts.JobDone {
					b.Fatalf("job %+v: %v", st, err)
				}
				elapsed += time.Since(start)
			}
			per := elapsed / time.Duration(b.N)
			b.ReportMetric(float64(n)/per.Seconds(), "queries/s")
			b.ReportMetric(per.Seconds(), "s/job")
			b.Logf("%d queries x %d products, %d processor(s): %.1fs per job", n, len(catalog), procs, per.Seconds())
		})
	}
}
