//go:build docker

// Package dockertest_test runs the images the Dockerfile builds, as users
// would: a NATS server, a processor and a bridge, each in its own container,
// all on the host network (this machine has no other), with every listener on
// a free loopback port. `make test-docker` builds the images and sets
//
//	SIMMATCH_IMAGE       the runtime image (every simmatch binary)
//	SIMMATCH_NATS_IMAGE  the Dockerfile's nats target
//	SIMMATCH_BAKED_MODEL 1 when the runtime image was built with BAKE_MODEL=1;
//	                     else the repo's model store models/all-MiniLM-L6-v2 (`make deps`)
//	                     is mounted read-only
package dockertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

const modelInImage = "/models/all-MiniLM-L6-v2"

func TestMain(m *testing.M) {
	// Ryuk (the reaper container) would be pulled from a registry; the tests
	// remove their own containers with t.Cleanup instead.
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	os.Exit(m.Run())
}

// TestImagesEndToEnd runs NATS, a processor and a bridge as three containers,
// as a deployment would, and sends one request through them.
func TestImagesEndToEnd(t *testing.T) {
	image := requireEnv(t, "SIMMATCH_IMAGE")
	natsImage := requireEnv(t, "SIMMATCH_NATS_IMAGE")
	modelBind := modelBind(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	natsPort := freePort(t)
	natsURL := "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	start(ctx, t, "nats", testcontainers.ContainerRequest{
		Image:      natsImage,
		Cmd:        []string{"-a", "127.0.0.1", "-p", strconv.Itoa(natsPort)},
		WaitingFor: wait.ForLog("Server is ready").WithStartupTimeout(time.Minute),
	})

	metricsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	start(ctx, t, "processor", testcontainers.ContainerRequest{
		Image: image,
		Cmd:   []string{"simmatch-processor"},
		Env: map[string]string{
			"NATS_URL":                 natsURL,
			"SIMMATCH_METRICS_ADDR":    metricsAddr,
			"SIMMATCH_HEALTHCHECK_URL": "http://" + metricsAddr + "/health",
			"SIMMATCH_LOG_FORMAT":      "json",
		},
		HostConfigModifier: func(hc *container.HostConfig) {
			if modelBind != "" {
				hc.Binds = append(hc.Binds, modelBind)
			}
		},
		// Loading ONNX Runtime and the model takes a few seconds; the image's
		// HEALTHCHECK (simmatch-healthcheck) must then pass too.
		WaitingFor: wait.ForAll(
			wait.ForLog("processor started"),
			wait.ForHealthCheck(),
		).WithDeadline(2 * time.Minute),
	})

	httpAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	base := "http://" + httpAddr
	start(ctx, t, "bridge", testcontainers.ContainerRequest{
		Image: image,
		Cmd:   []string{"simmatch-bridge"},
		Env: map[string]string{
			"NATS_URL":                 natsURL,
			"SIMMATCH_HTTP_ADDR":       httpAddr,
			"SIMMATCH_HEALTHCHECK_URL": base + "/health",
			"SIMMATCH_LOG_FORMAT":      "json",
		},
		WaitingFor: wait.ForAll(
			wait.ForLog("bridge listening"),
			wait.ForHealthCheck(),
		).WithDeadline(time.Minute),
	})

	// The processor's metrics listener answers too.
	if code, body := get(ctx, t, "http://"+metricsAddr+"/health"); code != http.StatusOK {
		t.Errorf("processor GET /health: %d %s", code, body)
	}

	assertServes(ctx, t, base)
}

// TestAllInOneImage runs the image's default command, the all-in-one
// (embedded NATS + processor + bridge), with its HEALTHCHECK.
func TestAllInOneImage(t *testing.T) {
	image := requireEnv(t, "SIMMATCH_IMAGE")
	modelBind := modelBind(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	httpAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	base := "http://" + httpAddr
	start(ctx, t, "all-in-one", testcontainers.ContainerRequest{
		Image: image, // no Cmd: the image's default, simmatch
		Env: map[string]string{
			"SIMMATCH_HTTP_ADDR":       httpAddr,
			"SIMMATCH_NATS_LISTEN":     "", // in-process only
			"SIMMATCH_HEALTHCHECK_URL": base + "/health",
		},
		HostConfigModifier: func(hc *container.HostConfig) {
			if modelBind != "" {
				hc.Binds = append(hc.Binds, modelBind)
			}
		},
		WaitingFor: wait.ForAll(
			wait.ForLog("simmatch ready"),
			wait.ForHealthCheck(),
		).WithDeadline(2 * time.Minute),
	})
	assertServes(ctx, t, base)
}

// assertServes checks that the HTTP API at base is ready and ranks the saw
// first for the classic request.
func assertServes(ctx context.Context, t *testing.T, base string) {
	t.Helper()
	// /ready: NATS is connected and a processor answers a ping.
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		code, body := get(ctx, t, base+"/ready")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /ready: %d %s (wanted 200 within 30s)", code, body)
		}
		<-tick.C
	}

	reqBody := `{"query": ["What can I use to cut wood?"], "product_descriptions": ["Heavy-duty claw hammer with a non-slip grip handle.", "High-performance circular saw with laser guide."]}`
	code, body := post(ctx, t, base+"/predict", reqBody)
	if code != http.StatusOK {
		t.Fatalf("POST /predict: %d %s", code, body)
	}
	var resp struct {
		Results []struct {
			Query   string `json:"query"`
			Matches []struct {
				Index int     `json:"index"`
				Score float64 `json:"score"`
			} `json:"matches"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("POST /predict: %v in %s", err, body)
	}
	if len(resp.Results) != 1 || len(resp.Results[0].Matches) != 2 {
		t.Fatalf("POST /predict: want one result with two matches, got %s", body)
	}
	if m := resp.Results[0].Matches; m[0].Index != 1 {
		t.Fatalf("POST /predict: want the circular saw (index 1) first, got %s", body)
	}
	t.Logf("POST /predict: %s", bytes.TrimSpace(body))
}

// modelBind returns the bind mount of the repo's model into the image, or ""
// when the image has the model baked in.
func modelBind(t *testing.T) string {
	t.Helper()
	if os.Getenv("SIMMATCH_BAKED_MODEL") == "1" {
		return ""
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "models", "all-MiniLM-L6-v2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "fp32", "model.onnx")); err != nil {
		t.Fatalf("the model is not in %s (run `make deps`, or build the image with BAKE_MODEL=1 and set SIMMATCH_BAKED_MODEL=1): %v", dir, err)
	}
	return dir + ":" + modelInImage + ":ro"
}

func requireEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("$%s is not set: run `make test-docker`, which builds the images and sets it", name)
	}
	return v
}

// start runs req on the host network (NetworkMode host: this machine has no
// other network, and Docker's default bridge must not be created) and
// removes the container when the test ends. On failure it prints the
// container's log.
func start(ctx context.Context, t *testing.T, name string, req testcontainers.ContainerRequest) testcontainers.Container {
	t.Helper()
	// One provider per container: CreateContainer closes its client.
	provider, err := testcontainers.NewDockerProvider(testcontainers.WithDefaultBridgeNetwork("host"))
	if err != nil {
		t.Fatalf("%s: docker provider: %v", name, err)
	}
	t.Cleanup(func() { provider.Close() })
	modify := req.HostConfigModifier
	req.HostConfigModifier = func(hc *container.HostConfig) {
		hc.NetworkMode = "host"
		if modify != nil {
			modify(hc)
		}
	}
	// Probe the image's HEALTHCHECK every second (the image's own interval
	// is for production); Test stays empty, so the image's command is used.
	req.ConfigModifier = func(c *container.Config) {
		c.Healthcheck = &container.HealthConfig{Interval: time.Second, Timeout: 5 * time.Second, Retries: 3}
	}
	ctr, err := provider.CreateContainer(ctx, req)
	if ctr != nil {
		t.Cleanup(func() {
			if t.Failed() {
				dumpLogs(t, name, ctr)
			}
			if err := testcontainers.TerminateContainer(ctr); err != nil {
				t.Errorf("%s: remove container: %v", name, err)
			}
		})
	}
	if err != nil {
		t.Fatalf("%s: create container from %s: %v", name, req.Image, err)
	}
	if err := ctr.Start(ctx); err != nil {
		t.Fatalf("%s: start container from %s: %v", name, req.Image, err)
	}
	return ctr
}

func dumpLogs(t *testing.T, name string, ctr testcontainers.Container) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := ctr.Logs(ctx)
	if err != nil {
		t.Logf("%s: logs: %v", name, err)
		return
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	t.Logf("%s container log:\n%s", name, strings.TrimSpace(string(b)))
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func get(ctx context.Context, t *testing.T, url string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func post(ctx context.Context, t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, []byte(fmt.Sprint(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, b
}
