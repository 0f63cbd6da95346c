package models_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/simmatch/simmatch/bridge"
	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

// TestModelRoutes drives model control through the bridge's admin routes
// and /predict: load and switch (and the original's aliases), the status of
// every processor, requests naming a model, unknown models answered 404
// with the list.
func TestModelRoutes(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	r, name := newRegistry(t, prometheus.NewRegistry(), "fp32")
	p := startProcessor(t, ns, r)
	startControl(t, ns, r, p)
	h, err := bridge.New(bridge.Config{NATS: testenv.Connect(t, ns)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	post := func(path, body string) (int, string) {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	predict := func(model string) (int, string) {
		t.Helper()
		m := ""
		if model != "" {
			m = `, "model": "` + model + `"`
		}
		return post("/predict", `{"query": "cut wood", "product_descriptions": ["a saw", "a hammer"]`+m+`}`)
	}
	version := func(body string) string {
		t.Helper()
		var resp contracts.Response
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return resp.Model.Version
	}

	if code, body := post("/load-model", `{"model": "`+name+`@int8"}`); code != 200 || !strings.Contains(body, `"version":"int8"`) {
		t.Fatalf("POST /load-model: %d %s", code, body)
	}
	if code, body := predict(""); code != 200 || version(body) != "fp32" {
		t.Fatalf("predict after load: %d %s; want fp32 still the default", code, body)
	}
	if code, body := predict(name + "@int8"); code != 200 || version(body) != "int8" {
		t.Fatalf("predict naming int8: %d %s", code, body)
	}
	if code, body := post("/v1/models/switch", `{"model": "`+name+`@int8"}`); code != 200 {
		t.Fatalf("POST /v1/models/switch: %d %s", code, body)
	}
	if code, body := predict(""); code != 200 || version(body) != "int8" {
		t.Fatalf("predict after switch: %d %s; want int8", code, body)
	}
	// GET /v1/models reads the live default, not the version the processor started with.
	if code, body := get("/v1/models"); code != 200 || !strings.Contains(body, `"version":"int8"`) || strings.Contains(body, `"version":"fp32"`) {
		t.Fatalf("GET /v1/models after the switch: %d %s; want int8", code, body)
	}
	if code, body := post("/switch-model", `{"model": "`+name+`@fp32"}`); code != 200 {
		t.Fatalf("POST /switch-model: %d %s", code, body)
	}
	if code, body := predict(name); code != 200 || version(body) != "fp32" {
		t.Fatalf("predict naming the model after switching back: %d %s; want fp32", code, body)
	}
	code, body := predict("gpt-4")
	if code != 404 || !strings.Contains(body, `"code":"not_found"`) || !strings.Contains(body, name+"@int8") {
		t.Fatalf("predict naming an unknown model: %d %s; want 404 not_found listing the models", code, body)
	}
	if code, body := post("/v1/models/load", `{"model": "`+name+`"}`); code != 422 || !strings.Contains(body, `"field":"model"`) {
		t.Fatalf("load without a version: %d %s; want 422 on field model", code, body)
	}
	if code, body := post("/v1/models/unload", `{"model": "`+name+`@int8"}`); code != 200 {
		t.Fatalf("POST /v1/models/unload: %d %s", code, body)
	}

	resp, err := http.Get(srv.URL + "/v1/models/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st contracts.ModelsStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/models/status: %d %v", resp.StatusCode, err)
	}
	if len(st.Processors) != 1 || st.Processors[0].Processor != p.Info().ID || st.Processors[0].DesiredState != "jetstream" || defaultOf(st.Processors[0], name) != "fp32" {
		t.Fatalf("status %+v: want processor p1 on jetstream, fp32 the default", st)
	}
}
