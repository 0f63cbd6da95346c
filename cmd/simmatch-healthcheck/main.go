// Command simmatch-healthcheck is the container HEALTHCHECK for images
// without curl: it GETs one URL and exits 0 on HTTP 200, else 1.
//
//	simmatch-healthcheck [URL]
//
// Without URL it uses $SIMMATCH_HEALTHCHECK_URL, else
// http://127.0.0.1:8000/health (the bridge and the all-in-one). For a
// processor, point it at its metrics listener, e.g.
// SIMMATCH_HEALTHCHECK_URL=http://127.0.0.1:9091/health. It builds with
// CGO_ENABLED=0 and needs nothing in the image.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

const defaultURL = "http://127.0.0.1:8000/health"

func main() {
	url := os.Getenv("SIMMATCH_HEALTHCHECK_URL")
	switch len(os.Args) {
	case 1:
	case 2:
		url = os.Args[1]
	default:
		fmt.Fprintln(os.Stderr, "usage: simmatch-healthcheck [URL]")
		os.Exit(2)
	}
	if url == "" {
		url = defaultURL
	}
	timeout := 5 * time.Second
	if v := os.Getenv("SIMMATCH_HEALTHCHECK_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			fmt.Fprintf(os.Stderr, "simmatch-healthcheck: $SIMMATCH_HEALTHCHECK_TIMEOUT=%q: want a duration such as 5s\n", v)
			os.Exit(2)
		}
		timeout = d
	}
	if err := check(url, timeout); err != nil {
		fmt.Fprintln(os.Stderr, "simmatch-healthcheck:", err)
		os.Exit(1)
	}
}

func check(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// No proxy: the target is this container's own listener.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
