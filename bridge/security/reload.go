package security

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Reloaded is a value parsed from files, re-read when their content
// changes (Watch) or when asked (Reload, e.g. on SIGHUP), without a
// restart: the API keys, the TLS certificate and the tenants' quotas are
// each one. Content that cannot be read or parsed keeps the previous value
// and is logged once per broken content. It is safe for concurrent use.
type Reloaded[T any] struct {
	what   string // what the files are, for logs: "API keys file"
	paths  []string
	parse  func(data [][]byte) (T, error) // one data per path, in order
	loaded func(T) []any                  // log attributes of a new value
	logger *slog.Logger

	cur atomic.Pointer[T]

	mu       sync.Mutex        // serializes reloads
	sum      [sha256.Size]byte // content of the value in force
	pending  [sha256.Size]byte // a new content Watch saw once
	lastFail [sha256.Size]byte // the content that last failed, logged once
	failing  bool
}

// OpenReloaded reads and parses paths. Unlike a later reload, content that
// cannot be read or parsed now is an error (a service must not start
// without its keys by accident). what names the files in errors and logs;
// loaded gives the log attributes of each value loaded (nil: none). A nil
// logger means slog.Default().
func OpenReloaded[T any](what string, paths []string, parse func(data [][]byte) (T, error), loaded func(T) []any, logger *slog.Logger) (*Reloaded[T], error) {
	if logger == nil {
		logger = slog.Default()
	}
	if loaded == nil {
		loaded = func(T) []any { return nil }
	}
	r := &Reloaded[T]{what: what, paths: paths, parse: parse, loaded: loaded, logger: logger}
	data, sum, err := r.read()
	if err != nil {
		return nil, err
	}
	v, err := parse(data)
	if err != nil {
		return nil, r.parseError(err)
	}
	r.cur.Store(&v)
	r.sum = sum
	logger.Info(what+" loaded", append([]any{"files", paths}, loaded(v)...)...)
	return r, nil
}

// Load is the value in force.
func (r *Reloaded[T]) Load() T { return *r.cur.Load() }

// parseError names the files in an error of parse.
func (r *Reloaded[T]) parseError(err error) error {
	var files []string
	for _, p := range r.paths {
		if p != "" {
			files = append(files, p)
		}
	}
	return fmt.Errorf("bridge: %s %s: %w", r.what, strings.Join(files, ", "), err)
}

// read reads every file and hashes their content together.
func (r *Reloaded[T]) read() ([][]byte, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	h := sha256.New()
	data := make([][]byte, len(r.paths))
	for i, p := range r.paths {
		if p == "" {
			h.Write([]byte{1}) // an optional file left out
			continue
		}
		// The content, not the mtime, decides: a mounted Kubernetes
		// Secret changes by swapping a symlink, which ReadFile follows.
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, sum, fmt.Errorf("bridge: %s: %w", r.what, err)
		}
		data[i] = b
		h.Write(b)
		h.Write([]byte{0})
	}
	copy(sum[:], h.Sum(nil))
	return data, sum, nil
}

// Reload re-reads the files if their content changed. On an error the
// previous value stays in force; the error is logged once per broken
// content and returned.
func (r *Reloaded[T]) Reload() error { return r.reload(false) }

// Watch checks the files every interval until ctx ends, and applies a
// change once it has read the same new content twice in a row.
func (r *Reloaded[T]) Watch(ctx context.Context, interval time.Duration) {
	poll(ctx, interval, func() { _ = r.reload(true) })
}

// reload is Reload; with settled, new content is applied (or reported
// broken) only once two reads in a row saw it, so that polling never loads
// a file caught half written, nor a rotation of several files halfway.
func (r *Reloaded[T]) reload(settled bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	data, sum, err := r.read()
	if err != nil {
		if !r.failing {
			r.logger.Error(r.what+" unreadable; keeping the previous one", "files", r.paths, "err", err)
		}
		r.failing, r.lastFail = true, [sha256.Size]byte{}
		return err
	}
	if sum == r.sum {
		r.failing = false
		return nil
	}
	if settled && sum != r.pending {
		r.pending = sum
		return nil
	}
	v, err := r.parse(data)
	if err != nil {
		err = r.parseError(err)
		if !r.failing || sum != r.lastFail {
			r.logger.Error(r.what+" rejected; keeping the previous one", "files", r.paths, "err", err)
		}
		r.failing, r.lastFail = true, sum
		return err
	}
	r.cur.Store(&v)
	r.sum, r.failing = sum, false
	r.logger.Info(r.what+" reloaded", append([]any{"files", r.paths}, r.loaded(v)...)...)
	return nil
}

// poll calls f every interval until ctx ends; never when interval <= 0.
func poll(ctx context.Context, interval time.Duration, f func()) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
