package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// DefaultShutdownTimeout bounds how long ListenAndServe and Serve wait for
// in-flight requests once their context ends, when the caller gives no
// timeout. It is longer than DefaultRequestTimeout, so a /predict that is
// waiting for a processor still gets its answer.
const DefaultShutdownTimeout = 15 * time.Second

// ListenAndServe listens on addr and serves h until ctx ends, then shuts down
// gracefully; see Serve.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, shutdownTimeout time.Duration, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bridge: listen on %s: %w", addr, err)
	}
	return Serve(ctx, ln, h, shutdownTimeout, logger)
}

// Serve serves h on ln until ctx ends. Then it stops accepting connections and
// waits up to shutdownTimeout (0: DefaultShutdownTimeout) for in-flight requests to be answered; it
// returns nil after a clean shutdown. ln is closed when Serve returns. A nil
// logger means slog.Default().
func Serve(ctx context.Context, ln net.Listener, h http.Handler, shutdownTimeout time.Duration, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	if shutdownTimeout <= 0 {
		shutdownTimeout = DefaultShutdownTimeout
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		// Bounds a slow upload of a body of up to a few MiB.
		ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// Request contexts do not derive from ctx: a shutdown lets in-flight
		// requests finish instead of canceling them.
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("bridge: serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("http server shutting down", "addr", ln.Addr().String())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("bridge: serve: %w", serr)
	}
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("bridge: shutdown: %w", err)
	}
	return nil
}
