package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
)

// api calls a running simmatch bridge over HTTP.
type api struct {
	base string
	hc   *http.Client
}

func newAPI(base string) (*api, error) {
	base = strings.TrimRight(base, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, usageError(fmt.Errorf("-url %q: want http://host:port or https://host:port", base))
	}
	return &api{base: base, hc: &http.Client{}}, nil
}

// do sends body (JSON-encoded unless nil) and decodes a 2xx answer into
// out; other answers become the *contracts.Error of their body.
func (a *api) do(ctx context.Context, method, path string, body, out any) error {
	rc, err := a.open(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// open sends the request and returns the body of a 2xx answer, which the
// caller closes.
func (a *api) open(ctx context.Context, method, path string, body any) (io.ReadCloser, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (is simmatch running there? set -url or SIMMATCH_URL)", method, a.base+path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, decodeHTTPError(resp)
	}
	return resp.Body, nil
}

func decodeHTTPError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body contracts.ErrorBody
	if json.Unmarshal(data, &body) == nil && body.Error != nil {
		return body.Error
	}
	return fmt.Errorf("HTTP %s: %s", resp.Status, bytes.TrimSpace(data))
}

// apiFlags are the flags every client command has.
type apiFlags struct {
	url  string
	json bool
}

func (c *apiFlags) register(f *cli.Flags) {
	f.String(&c.url, "url", "SIMMATCH_URL", "http://localhost:8000", "base URL of the simmatch HTTP API")
	f.Bool(&c.json, "json", "", false, "print JSON instead of text")
}

// readLines reads the non-empty lines of path ("-" is stdin).
func readLines(path string, stdin io.Reader) ([]string, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := strings.TrimRight(sc.Text(), "\r"); strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// parseThreshold reads an optional -threshold.
func parseThreshold(s string) (*float64, error) {
	if s == "" {
		return nil, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, usageError(fmt.Errorf("-threshold %q: want a number between -1 and 1", s))
	}
	return &v, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
