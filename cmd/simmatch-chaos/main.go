// Command simmatch-chaos runs the chaos suite (internal/chaos): the real
// processor and bridge binaries and standalone nats-server processes on
// loopback, faults under steady load through the three doors (POST /predict,
// catalog search, POST /v1/embeddings), a Markdown table of what callers saw
// per door. It exits non-zero when a scenario could not run or lost a request
// (a failure other than 429/503 with Retry-After), or when a flood scenario
// missed a target (chaos.Result.Misses).
// `make chaos` builds everything and runs it; every scenario is bounded by
// -duration, and every process it starts is killed when it ends.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/internal/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "simmatch-chaos:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var (
		cfg       chaos.Config
		scenarios string
		doors     string
	)
	names := make([]string, 0, len(chaos.Scenarios))
	for _, s := range chaos.Scenarios {
		names = append(names, s.Name)
	}
	f := cli.NewFlags("simmatch-chaos", getenv, stdout)
	f.String(&cfg.BinDir, "bin", "SIMMATCH_CHAOS_BIN", "bin", "directory holding simmatch-processor and simmatch-bridge")
	f.String(&cfg.NATSServer, "nats-server", "SIMMATCH_CHAOS_NATS_SERVER", "", "nats-server binary (v2.15.2); empty: skip the NATS scenarios")
	f.String(&cfg.ModelDir, "model-dir", "SIMMATCH_MODEL_DIR", "models/all-MiniLM-L6-v2/fp32", "model directory for the processors (a version of the model store)")
	f.String(&cfg.ORTLib, "ort-lib", "SIMMATCH_ORT_LIB", "", "libonnxruntime.so for the processors")
	f.String(&cfg.WorkDir, "work-dir", "SIMMATCH_CHAOS_WORK_DIR", "", "where the processes' logs go (default: a new temporary directory)")
	f.Duration(&cfg.Duration, "duration", "SIMMATCH_CHAOS_DURATION", 20*time.Second, "load time per scenario; the fault comes after a third of it")
	f.Int(&cfg.Clients, "clients", "SIMMATCH_CHAOS_CLIENTS", 8, "concurrent HTTP clients of the steady load")
	f.Int(&cfg.Descriptions, "descriptions", "SIMMATCH_CHAOS_DESCRIPTIONS", 10, "product descriptions per request of the steady load")
	f.String(&scenarios, "scenarios", "SIMMATCH_CHAOS_SCENARIOS", "", "comma-separated scenarios to run (default all): "+strings.Join(names, ", "))
	f.String(&doors, "doors", "SIMMATCH_CHAOS_DOORS", strings.Join(chaos.Doors, ","), "comma-separated doors the steady load takes in turn: "+strings.Join(chaos.Doors, ", ")+" (POST /predict, catalog search, /v1/embeddings)")
	if err := f.Parse(args); err != nil {
		return err
	}
	if cfg.WorkDir == "" {
		dir, err := os.MkdirTemp("", "simmatch-chaos-")
		if err != nil {
			return err
		}
		cfg.WorkDir = dir
	} else if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return fmt.Errorf("work directory (SIMMATCH_CHAOS_WORK_DIR): %w", err)
	}
	cfg.Log = func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", a...)
	}
	cfg.Log("logs of every process in %s", cfg.WorkDir)
	cfg.Doors = strings.Split(doors, ",")
	var only []string
	if scenarios != "" {
		only = strings.Split(scenarios, ",")
	}
	results, err := chaos.Run(ctx, cfg, only)
	chaos.Table(stdout, results)
	fmt.Fprintln(stdout)
	chaos.FloodTable(stdout, results)
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.Err != nil {
			return fmt.Errorf("scenario %s could not run as planned: %w (logs in %s)", r.Scenario.Name, r.Err, cfg.WorkDir)
		}
	}
	var lost []string
	for _, r := range results {
		for _, d := range chaos.Doors {
			if s := r.ByDoor[d]; s != nil && s.Lost > 0 {
				lost = append(lost, fmt.Sprintf("%s: %d of %d %s requests lost %v", r.Scenario.Name, s.Lost, s.Requests, d, s.LostBy))
			}
		}
		for _, m := range r.Misses() {
			lost = append(lost, r.Scenario.Name+": "+m)
		}
	}
	if len(lost) > 0 {
		return fmt.Errorf("requests lost or targets missed (logs in %s):\n  %s", cfg.WorkDir, strings.Join(lost, "\n  "))
	}
	return nil
}
