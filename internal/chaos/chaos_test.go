package chaos_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/internal/chaos"
	"github.com/simmatch/simmatch/internal/testenv"
)

// TestChaosShort is the short chaos suite of `make test`: the real processor
// and bridge binaries against a real NATS server (with JetStream, for the
// catalog), under steady load from 8 clients that take the three doors in
// turn (POST /predict, catalog search, POST /v1/embeddings); one processor
// of three is killed with kill -9 in the middle of a catalog match job (300
// feed items against a 300-product shop, in chunks of 2), with requests in
// flight, and restarted 5 s later: the job must end done with one row per
// feed item and the planted product first for 95% or more; then, in a
// fresh set-up, all three are restarted one by one with SIGTERM. Per door,
// not one request may be lost, nor even refused (two processors of three
// are always up). `make chaos` runs the full suite.
func TestChaosShort(t *testing.T) {
	modelDir, ortLib := testenv.ModelPaths(t)
	bin := t.TempDir()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	build := exec.Command("go", "build", "-o", bin, "./cmd/simmatch-processor", "./cmd/simmatch-bridge")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the binaries: %v\n%s", err, out)
	}
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	cfg := chaos.Config{
		BinDir: bin, NATSURL: ns.ClientURL(), ModelDir: modelDir, ORTLib: ortLib,
		WorkDir: t.TempDir(), Duration: 10 * time.Second, Clients: 8, Descriptions: 10, Log: t.Logf,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	results, err := chaos.Run(ctx, cfg, []string{"kill9", "rolling"})
	var table strings.Builder
	chaos.Table(&table, results)
	t.Logf("\n%s", table.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("%d scenarios ran, want 2", len(results))
	}
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("%s: %v (logs in %s)", r.Scenario.Name, r.Err, cfg.WorkDir)
		}
		for _, door := range chaos.Doors {
			d := r.ByDoor[door]
			switch {
			case d == nil:
				t.Errorf("%s: no request went through the %s door", r.Scenario.Name, door)
			case d.Lost != 0:
				t.Errorf("%s: %s door: %d of %d requests lost (%v); want none", r.Scenario.Name, door, d.Lost, d.Requests, d.LostBy)
			case d.Refused != 0:
				t.Errorf("%s: %s door: %d of %d requests refused; want none (two processors of three are up)", r.Scenario.Name, door, d.Refused, d.Requests)
			case d.OK < 5:
				t.Errorf("%s: %s door: %d of %d requests answered 200; want at least 5", r.Scenario.Name, door, d.OK, d.Requests)
			}
		}
	}
	if k := results[0].KilledInFlight; k < 1 {
		t.Errorf("kill9: the killed processor had %d requests in flight, want some", k)
	}
	// The match job run across the kill (its checks are the scenario's:
	// an error above when a row is missing or doubled, the planted
	// product first for less than 95%, or the job done before the kill).
	switch m := results[0].MatchJob; {
	case m == nil:
		t.Errorf("kill9: no match job ran across the kill")
	case m.DoneAtKill <= 0 || m.DoneAtKill >= m.TotalAtKill:
		t.Errorf("kill9: the kill came at %d/%d of the match job, want in the middle", m.DoneAtKill, m.TotalAtKill)
	case m.Rows != m.Items || m.Missing != 0 || m.Doubled != 0:
		t.Errorf("kill9: %s", m)
	default:
		t.Logf("kill9: %s", m)
	}
	if t.Failed() {
		dumpLogs(t, cfg.WorkDir)
	}
}

func dumpLogs(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("%s:\n%s", filepath.Base(l), b)
	}
}
