package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

// Target sends one request and reports how it ended.
type Target interface {
	// Do sends r and returns "" when it succeeded, else an outcome such as
	// "429 overloaded" (HTTP status and error code) or "nats timeout", and
	// how long the service asked to wait before the next request (0: it did
	// not say).
	Do(ctx context.Context, r *contracts.Request) (outcome string, retryAfter time.Duration)
	// Close releases the target's connections.
	Close() error
}

// ErrNotLoopback is returned for a target outside the loopback range when
// remote targets are not allowed.
var ErrNotLoopback = errors.New("loadgen: target is not a loopback address")

// CheckLoopback accepts URLs whose every host is localhost or a loopback IP
// (127.0.0.0/8, ::1). Names other than localhost are refused: they could
// resolve anywhere.
func CheckLoopback(target string) error {
	for _, u := range strings.Split(target, ",") {
		pu, err := url.Parse(strings.TrimSpace(u))
		if err != nil {
			return fmt.Errorf("loadgen: target %q: %w", u, err)
		}
		h := pu.Hostname()
		if h == "localhost" {
			continue
		}
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%w: %q (only 127.0.0.0/8, ::1 and localhost are allowed unless remote targets are enabled)", ErrNotLoopback, u)
		}
	}
	return nil
}

// NewTarget returns an HTTP target for http(s):// URLs (POST <url>/predict;
// give the full path to send elsewhere), sending apiKey as a bearer token
// when set, and a NATS target, over the typed client in contracts/, for
// nats:// URLs.
func NewTarget(target string, timeout time.Duration, concurrency int, apiKey string) (Target, error) {
	switch {
	case strings.HasPrefix(target, "http://"), strings.HasPrefix(target, "https://"):
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("loadgen: target %q: %w", target, err)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/predict"
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = max(concurrency, 2)
		tr.MaxConnsPerHost = 0
		return &httpTarget{url: u.String(), apiKey: apiKey, client: &http.Client{Transport: tr, Timeout: timeout}}, nil
	case strings.HasPrefix(target, "nats://"):
		nc, err := nats.Connect(target, nats.Name("simmatch-load"))
		if err != nil {
			return nil, fmt.Errorf("loadgen: connect to %s: %w", target, err)
		}
		c, err := contracts.NewClient(nc, contracts.WithTimeout(timeout))
		if err != nil {
			nc.Close()
			return nil, err
		}
		return &natsTarget{nc: nc, client: c}, nil
	}
	return nil, fmt.Errorf("loadgen: target %q: want an http://, https:// or nats:// URL", target)
}

type httpTarget struct {
	url    string
	apiKey string // sent as a bearer token when set
	client *http.Client
}

func (t *httpTarget) Do(ctx context.Context, r *contracts.Request) (string, time.Duration) {
	body, err := json.Marshal(r)
	if err != nil {
		return "marshal", 0
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return "bad request", 0
	}
	req.Header.Set("Content-Type", "application/json")
	if t.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+t.apiKey)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return outcomeCancelled, 0
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "client timeout", 0
		}
		return "transport error", 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return outcomeCancelled, 0
		}
		return "read error", 0
	}
	if resp.StatusCode == http.StatusOK {
		return "", 0
	}
	wait := retryAfter(resp.Header)
	var eb contracts.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil {
		return strconv.Itoa(resp.StatusCode) + " " + string(eb.Error.Code), wait
	}
	return strconv.Itoa(resp.StatusCode), wait
}

// retryAfter reads the wait a 429 or 503 asks for as the OpenAI SDKs do:
// Retry-After-Ms (milliseconds) first, else Retry-After (whole seconds);
// 0 when neither is there or valid, or the wait is over a minute.
func retryAfter(h http.Header) time.Duration {
	var d time.Duration
	if ms, err := strconv.ParseFloat(h.Get("Retry-After-Ms"), 64); err == nil {
		d = time.Duration(ms * float64(time.Millisecond))
	} else if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil {
		d = time.Duration(s) * time.Second
	}
	if d <= 0 || d > time.Minute {
		return 0
	}
	return d
}

func (t *httpTarget) Close() error { t.client.CloseIdleConnections(); return nil }

type natsTarget struct {
	nc     *nats.Conn
	client *contracts.Client
}

func (t *natsTarget) Do(ctx context.Context, r *contracts.Request) (string, time.Duration) {
	_, err := t.client.Match(ctx, r)
	if err == nil {
		return "", 0
	}
	if ctx.Err() != nil {
		return outcomeCancelled, 0
	}
	e := contracts.AsError(err)
	return "nats " + string(e.Code), time.Duration(e.RetryAfterMs) * time.Millisecond
}

func (t *natsTarget) Close() error { t.nc.Close(); return nil }

// outcomeCancelled marks a request cut off by the end of the run: it is
// neither counted nor timed.
const outcomeCancelled = "cancelled"
