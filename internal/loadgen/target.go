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
	// "429 overloaded" (HTTP status and error code) or "nats timeout".
	Do(ctx context.Context, r *contracts.Request) (outcome string)
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
// give the full path to send elsewhere) and a NATS target, over the typed
// client in contracts/, for nats:// URLs.
func NewTarget(target string, timeout time.Duration, concurrency int) (Target, error) {
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
		return &httpTarget{url: u.String(), client: &http.Client{Transport: tr, Timeout: timeout}}, nil
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
	client *http.Client
}

func (t *httpTarget) Do(ctx context.Context, r *contracts.Request) string {
	body, err := json.Marshal(r)
	if err != nil {
		return "marshal"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return "bad request"
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return outcomeCancelled
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "client timeout"
		}
		return "transport error"
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return outcomeCancelled
		}
		return "read error"
	}
	if resp.StatusCode == http.StatusOK {
		return ""
	}
	var eb contracts.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil {
		return strconv.Itoa(resp.StatusCode) + " " + string(eb.Error.Code)
	}
	return strconv.Itoa(resp.StatusCode)
}

func (t *httpTarget) Close() error { t.client.CloseIdleConnections(); return nil }

type natsTarget struct {
	nc     *nats.Conn
	client *contracts.Client
}

func (t *natsTarget) Do(ctx context.Context, r *contracts.Request) string {
	_, err := t.client.Match(ctx, r)
	if err == nil {
		return ""
	}
	if ctx.Err() != nil {
		return outcomeCancelled
	}
	return "nats " + string(contracts.AsError(err).Code)
}

func (t *natsTarget) Close() error { t.nc.Close(); return nil }

// outcomeCancelled marks a request cut off by the end of the run: it is
// neither counted nor timed.
const outcomeCancelled = "cancelled"
