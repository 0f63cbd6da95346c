package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

// A processor with the real model and a bridge, each logged in to a NATS
// server run from deploy/nats/nats-server.conf with its own least-privilege
// user: /ready (the $SRV ping) and an authenticated /predict work end to
// end, and a processor with the bridge's credentials is refused.
func TestProcessorWithDeployNATSConfig(t *testing.T) {
	const procPW, bridgePW, key = "proc-pw-e2e", "bridge-pw-e2e", "sk-e2e-4b6d8f0a2c4e6a8c"
	t.Setenv("NATS_BRIDGE_PASSWORD", bridgePW)
	t.Setenv("NATS_PROCESSOR_PASSWORD", procPW)
	ns := testenv.StartNATSFromConfig(t, filepath.Join("..", "..", "deploy", "nats", "nats-server.conf"))

	env := map[string]string{
		"NATS_URL":           ns.ClientURL(),
		"NATS_USER":          "processor",
		"NATS_PASSWORD":      procPW,
		"SIMMATCH_MODEL_DIR": os.Getenv("SIMMATCH_MODEL_DIR"),
		"SIMMATCH_ORT_LIB":   os.Getenv("SIMMATCH_ORT_LIB"),
	}
	args := []string{"-metrics-addr", "", "-log-level", "warn", "-workers", "1"}

	// Wrong credentials: run fails at once and says what to check.
	wrong := map[string]string{}
	for k, v := range env {
		wrong[k] = v
	}
	wrong["NATS_PASSWORD"] = bridgePW
	err := run(t.Context(), args, func(k string) string { return wrong[k] }, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "NATS_USER/NATS_PASSWORD") || strings.Contains(err.Error(), bridgePW) {
		t.Fatalf("err %v, want a clear credentials error without the password", err)
	}

	_, stop := testenv.RunCommand(t, func(ctx context.Context, ready func(string)) error {
		return run(ctx, args, func(k string) string { return env[k] }, io.Discard, ready)
	})

	logger := slog.New(slog.DiscardHandler)
	nc, err := cli.ConnectNATS(cli.Common{NATSURL: ns.ClientURL(), NATS: cli.NATSAuth{User: "bridge", Password: bridgePW}}, "bridge", logger)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	keys := filepath.Join(t.TempDir(), "keys")
	testenv.WriteFile(t, keys, []byte("app "+bridge.HashKey(key)+" predict\n"))
	ks, err := bridge.OpenKeyStore(keys, logger)
	if err != nil {
		t.Fatal(err)
	}
	h, err := bridge.New(bridge.Config{NATS: nc, Keys: ks, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/ready: %d, want 200 (the bridge user may ping $SRV)", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/predict", strings.NewReader(
		`{"query": ["What can I use to cut wood?"], "product_descriptions": ["Heavy-duty claw hammer with a non-slip grip handle.", "High-performance circular saw with laser guide."]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", key)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got contracts.Response
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/predict: %d %v", resp.StatusCode, err)
	}
	if got.Results[0].Matches[0].Index != 1 {
		t.Fatalf("matches %+v, want the saw first", got.Results[0].Matches)
	}
	stop()
}
