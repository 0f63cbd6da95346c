package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
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
	key  string // sent as Authorization: Bearer <key> when not empty
}

// newAPI opens the API that af points to: its URL, API key and TLS files.
func newAPI(af apiFlags) (*api, error) {
	base := strings.TrimRight(af.url, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, usageError(fmt.Errorf("-url %q: want http://host:port or https://host:port", base))
	}
	tlsCfg, err := af.tlsConfig()
	if err != nil {
		return nil, err
	}
	hc := &http.Client{}
	if tlsCfg != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tlsCfg
		hc.Transport = tr
	}
	return &api{base: base, hc: hc, key: strings.TrimSpace(af.apiKey)}, nil
}

// tlsConfig is the client TLS configuration of -ca-file, -cert-file and
// -key-file, or nil when none is set (the system's CAs).
func (c apiFlags) tlsConfig() (*tls.Config, error) {
	if c.caFile == "" && c.certFile == "" && c.keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, usageError(fmt.Errorf("SIMMATCH_CA_FILE (-ca-file): %w", err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageError(fmt.Errorf("SIMMATCH_CA_FILE (-ca-file) %s: no PEM certificate in it", c.caFile))
		}
		cfg.RootCAs = pool
	}
	if (c.certFile == "") != (c.keyFile == "") {
		return nil, usageError(errors.New("SIMMATCH_CLIENT_CERT_FILE and SIMMATCH_CLIENT_KEY_FILE (-cert-file, -key-file) go together: set both or neither"))
	}
	if c.certFile != "" {
		cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
		if err != nil {
			return nil, usageError(fmt.Errorf("client certificate (-cert-file, -key-file): %w", err))
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
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
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		var unknownCA x509.UnknownAuthorityError
		if errors.As(err, &unknownCA) || strings.Contains(err.Error(), "x509:") || strings.Contains(err.Error(), "tls:") {
			return nil, fmt.Errorf("%s %s: %w (TLS failed: set SIMMATCH_CA_FILE or -ca-file to the CA that signed the server's certificate)", method, a.base+path, err)
		}
		return nil, fmt.Errorf("%s %s: %w (is simmatch running there? set -url or SIMMATCH_URL)", method, a.base+path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, a.authHint(resp.StatusCode, decodeHTTPError(resp))
	}
	return resp.Body, nil
}

// authHint adds to a 401 or 403 what to set.
func (a *api) authHint(status int, err error) error {
	switch {
	case status == http.StatusUnauthorized && a.key == "":
		return fmt.Errorf("%w (no API key sent: set SIMMATCH_API_KEY or -api-key)", err)
	case status == http.StatusUnauthorized:
		return fmt.Errorf("%w (check SIMMATCH_API_KEY or -api-key)", err)
	case status == http.StatusForbidden:
		return fmt.Errorf("%w (the API key lacks the scope this command needs)", err)
	}
	return err
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
	url    string
	apiKey string
	// caFile verifies https servers; certFile and keyFile are a client
	// certificate for mutual TLS.
	caFile, certFile, keyFile string
	json                      bool
}

func (c *apiFlags) register(f *cli.Flags) {
	f.String(&c.url, "url", "SIMMATCH_URL", "http://localhost:8000", "base URL of the simmatch HTTP API")
	f.String(&c.apiKey, "api-key", "SIMMATCH_API_KEY", "", "API key, sent as Authorization: Bearer; prefer the environment variable, which ps does not show")
	f.String(&c.caFile, "ca-file", "SIMMATCH_CA_FILE", "", "PEM CA certificates to verify an https -url with (default: the system's)")
	f.String(&c.certFile, "cert-file", "SIMMATCH_CLIENT_CERT_FILE", "", "PEM client certificate for mutual TLS (with -key-file)")
	f.String(&c.keyFile, "key-file", "SIMMATCH_CLIENT_KEY_FILE", "", "PEM private key of -cert-file")
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
