package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/simmatch/simmatch/bridge"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Version is the simmatch version in simmatch_build_info. Release builds set
// it with -ldflags "-X github.com/simmatch/simmatch/cmd/internal/cli.Version=v1.2.3";
// when empty, the main module's version from the build info is used.
var Version string

// started approximates the process's start: package variables are
// initialized before main runs.
var started = time.Now()

// NewRegistry returns the registry a command serves on /metrics, holding
// what every component exposes: simmatch_build_info{component,version,
// go_version}, simmatch_uptime_seconds and the standard go_* and process_*
// collectors. The components register their own metrics on it
// (bridge.Config.Metrics, processor.Config.Metrics). component is bridge,
// processor or all-in-one.
func NewRegistry(component string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "simmatch_build_info",
		Help: "What runs: the component, its version and the Go version it was built with (always 1).",
		ConstLabels: prometheus.Labels{"component": component, "version": version(),
			"go_version": runtime.Version()},
	})
	info.Set(1)
	reg.MustRegister(
		info,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "simmatch_uptime_seconds",
			Help: "Seconds since the process started.",
		}, func() float64 { return time.Since(started).Seconds() }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// MetricsHandler serves g on GET /metrics, a liveness answer on GET /health
// and, on GET /ready, 200 while ready reports true (503 otherwise, or if
// ready is nil). A collector that fails is logged and left out of the scrape
// rather than failing it.
func MetricsHandler(g prometheus.Gatherer, ready func() bool, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if ready == nil || !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"not ready"}` + "\n"))
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
	})
	return mux
}

// metricsShutdownTimeout bounds how long ServeMetrics waits for a scrape in
// progress when its context ends.
const metricsShutdownTimeout = 5 * time.Second

// ServeMetrics serves MetricsHandler(g) on ln until ctx ends, then shuts
// down gracefully; it returns nil after a clean shutdown and closes ln.
func ServeMetrics(ctx context.Context, ln net.Listener, g prometheus.Gatherer, ready func() bool, logger *slog.Logger) error {
	if err := bridge.Serve(ctx, ln, MetricsHandler(g, ready, logger), metricsShutdownTimeout, logger); err != nil {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}
