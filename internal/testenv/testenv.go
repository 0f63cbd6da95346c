// Package testenv is the one place for test set-up shared by the packages of
// simmatch: real NATS servers (in-process, with JetStream or in a cluster on
// loopback), the paths of the real model and ONNX Runtime, and polling. Tests
// use the real things; helpers take testing.TB, call t.Helper and clean up
// with t.Cleanup.
package testenv

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NATSOption changes a server's options before it starts.
type NATSOption func(*server.Options)

// WithJetStream enables JetStream with its store in dir (a t.TempDir() when
// dir is empty).
func WithJetStream(t testing.TB, dir string) NATSOption {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return func(o *server.Options) { o.JetStream, o.StoreDir = true, dir }
}

// StartNATS runs a real NATS server in-process on a random loopback port and
// shuts it down when the test ends.
func StartNATS(t testing.TB, opts ...NATSOption) *server.Server {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true}
	for _, f := range opts {
		f(o)
	}
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("testenv: nats server not ready after 10s")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// Connect opens a NATS connection to ns, closed when the test ends.
func Connect(t testing.TB, ns *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Cluster is n NATS servers routed together on loopback, each with
// JetStream on its own directory, so streams can have replicas.
type Cluster struct {
	Servers []*server.Server
	opts    []*server.Options
}

// StartCluster starts an n-node cluster named "simmatch-test" and waits until
// JetStream has a meta leader.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	c := &Cluster{}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir(),
		}
		o.Cluster.Name = "simmatch-test"
		o.Cluster.Host = "127.0.0.1"
		o.Cluster.Port = ports[i]
		for j, p := range ports {
			if j != i {
				o.Routes = append(o.Routes, server.RoutesFromStr(fmt.Sprintf("nats://127.0.0.1:%d", p))...)
			}
		}
		c.opts = append(c.opts, o)
	}
	for i := range n {
		c.Servers = append(c.Servers, c.start(t, i))
	}
	t.Cleanup(func() {
		for _, s := range c.Servers {
			if s != nil {
				s.Shutdown()
				s.WaitForShutdown()
			}
		}
	})
	// A meta leader alone is not enough: until it has current stats from
	// every peer, placing an R3 stream fails with "peer offline".
	WaitFor(t, 20*time.Second, "a JetStream meta leader that sees every node", func() bool {
		for _, s := range c.Servers {
			if s != nil && s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == n {
				return true
			}
		}
		return false
	})
	return c
}

func (c *Cluster) start(t testing.TB, i int) *server.Server {
	t.Helper()
	ns, err := server.NewServer(c.opts[i].Clone())
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatalf("testenv: cluster node %d not ready after 10s", i+1)
	}
	return ns
}

// URLs is every node's client URL, comma separated, for nats.Connect.
func (c *Cluster) URLs() string {
	s := ""
	for _, ns := range c.Servers {
		if ns == nil {
			continue
		}
		if s != "" {
			s += ","
		}
		s += ns.ClientURL()
	}
	return s
}

// Kill shuts node i down (a crash as far as clients and routes can tell).
func (c *Cluster) Kill(i int) {
	c.Servers[i].Shutdown()
	c.Servers[i].WaitForShutdown()
}

// Restart starts node i again with its old options and store.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	c.Servers[i] = c.start(t, i)
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ModelPaths returns the real model directory and ONNX Runtime library
// (SIMMATCH_MODEL_DIR, SIMMATCH_ORT_LIB, which `make test` sets), or fails
// the test with what to run.
func ModelPaths(t testing.TB) (dir, lib string) {
	t.Helper()
	dir, lib = os.Getenv("SIMMATCH_MODEL_DIR"), os.Getenv("SIMMATCH_ORT_LIB")
	if dir == "" || lib == "" {
		t.Fatal("SIMMATCH_MODEL_DIR and SIMMATCH_ORT_LIB must point at the real model and ONNX Runtime: run the tests with `make test`")
	}
	if _, err := os.Stat(filepath.Join(dir)); err != nil {
		t.Fatalf("model directory: %v (run `make deps`)", err)
	}
	return dir, lib
}

// FamilyDir returns the directory of version of another model family in the
// model store models/<name>/<version>/ that `make deps` assembles (e.g.
// "bge-small-en-v1.5", "fp32"), or fails the test with what to run.
func FamilyDir(t testing.TB, name, version string) string {
	t.Helper()
	dir, _ := ModelPaths(t)
	d := filepath.Join(filepath.Dir(filepath.Dir(filepath.Clean(dir))), name, version)
	if _, err := os.Stat(filepath.Join(d, "model.onnx")); err != nil {
		t.Fatalf("%s %s: %v (run `make deps`)", name, version, err)
	}
	return d
}

// ModelVersionDir returns the directory of another version of the model in
// the model store models/<name>/<version>/ that `make deps` assembles: the
// sibling of SIMMATCH_MODEL_DIR named version (e.g. "int8"), or fails the test
// with what to run.
func ModelVersionDir(t testing.TB, version string) string {
	t.Helper()
	dir, _ := ModelPaths(t)
	v := filepath.Join(filepath.Dir(filepath.Clean(dir)), version)
	if _, err := os.Stat(filepath.Join(v, "model.onnx")); err != nil {
		t.Fatalf("model version %q: %v (SIMMATCH_MODEL_DIR must be a version of the model store models/<name>/<version>/; run `make deps`)", version, err)
	}
	return v
}

// WaitFor polls cond every 2ms until it holds, or fails the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// Scrape GETs a Prometheus /metrics URL and returns the exposition text.
func Scrape(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

// ModelStore returns the model store `make deps` assembles (models/, holding
// models/<name>/<version>/) and the name of the model in it, from
// SIMMATCH_MODEL_DIR (a version of that store), or fails the test.
func ModelStore(t testing.TB) (root, name string) {
	t.Helper()
	dir, _ := ModelPaths(t)
	model := filepath.Dir(filepath.Clean(dir))
	if _, err := os.Stat(filepath.Join(model, "int8", "model.onnx")); err != nil {
		t.Fatalf("model store: %v (SIMMATCH_MODEL_DIR must be a version of the model store models/<name>/<version>/; run `make deps`)", err)
	}
	return filepath.Dir(model), filepath.Base(model)
}

// RestartNATS shuts ns down and starts a new server on the same loopback
// port with the same opts, as a NATS restart looks to its clients. Their
// connections reconnect to it; what they had in flight is lost.
func RestartNATS(t testing.TB, ns *server.Server, opts ...NATSOption) *server.Server {
	t.Helper()
	port := ns.Addr().(*net.TCPAddr).Port
	ns.Shutdown()
	ns.WaitForShutdown()
	return StartNATS(t, append(opts, func(o *server.Options) { o.Port = port })...)
}
