package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

// Every route with a body answers a body that is not valid UTF-8 with the
// same 400 malformed_json naming the byte, in its door's error shape, before
// anything is sent to a processor.
func TestInvalidUTF8OnEveryBodyRoute(t *testing.T) {
	ns := startNATS(t)
	b := startBridge(t, ns, nil)
	tests := []struct {
		name, method, path, body string
		openAI                   bool
	}{
		{"predict", http.MethodPost, "/predict", "{\"query\":[\"\xff\"],\"product_descriptions\":[\"b\"]}", false},
		{"v1 predict", http.MethodPost, "/v1/predict", "{\"query\":[\"\xff\"],\"product_descriptions\":[\"b\"]}", false},
		{"catalog upsert", http.MethodPost, "/v1/catalogs/shop/products", "{\"products\":[{\"id\":\"p\",\"description\":\"a\xfe\"}]}", false},
		{"catalog put", http.MethodPut, "/v1/catalogs/shop/products/p1", "{\"description\":\"\xc3\x28\"}", false},
		{"catalog search", http.MethodPost, "/v1/catalogs/shop/search", "{\"query\":[\"\xff\"]}", false},
		{"openai embeddings", http.MethodPost, "/v1/embeddings", "{\"model\":\"m\",\"input\":[\"\xff\"]}", true},
		{"tei embed", http.MethodPost, "/embed", "{\"inputs\":[\"\xff\"]}", false},
		{"tei similarity", http.MethodPost, "/similarity", "{\"inputs\":{\"source_sentence\":\"\xff\",\"sentences\":[\"b\"]}}", false},
		{"jobs", http.MethodPost, "/v1/jobs", "{\"query\":[\"\xff\"],\"product_descriptions\":[\"b\"]}", false},
		{"models load", http.MethodPost, "/v1/models/load", "{\"model\":\"m@\xff\"}", false},
		{"models switch", http.MethodPost, "/v1/models/switch", "{\"model\":\"m@\xff\"}", false},
		{"models unload", http.MethodPost, "/v1/models/unload", "{\"model\":\"m@\xff\"}", false},
		{"load-model", http.MethodPost, "/load-model", "{\"model\":\"m@\xff\"}", false},
		{"switch-model", http.MethodPost, "/switch-model", "{\"model\":\"m@\xff\"}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, b.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, body := do(t, req)
			var eb struct {
				Error *contracts.Error `json:"error"`
			}
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil {
				t.Fatalf("got %d, not an error body: %s", resp.StatusCode, clip(body))
			}
			e := eb.Error
			if !tt.openAI {
				e = decodeError(t, resp, body) // exactly simmatch's shape
			}
			if resp.StatusCode != http.StatusBadRequest || e.Code != contracts.CodeMalformedJSON {
				t.Fatalf("got %d %s, want 400 malformed_json", resp.StatusCode, clip(body))
			}
			at := bytes.IndexFunc([]byte(tt.body), func(r rune) bool { return r == '\uFFFD' })
			if want := fmt.Sprintf("not valid UTF-8 (at byte %d)", at); !strings.Contains(e.Message, want) {
				t.Errorf("message %q, want it to name the byte: %q", e.Message, want)
			}
			if tt.openAI {
				var oe struct {
					Error struct {
						Type string `json:"type"`
					} `json:"error"`
				}
				if err := json.Unmarshal(body, &oe); err != nil || oe.Error.Type != "invalid_request_error" {
					t.Errorf("OpenAI route: error type %q, want invalid_request_error: %s", oe.Error.Type, clip(body))
				}
			}
		})
	}
}

// respondTimed answers m with v and the processor timing headers.
func respondTimed(t testing.TB, m *nats.Msg, v any, timing contracts.Timing) {
	data, err := json.Marshal(v)
	if err != nil {
		t.Errorf("fake processor: %v", err)
		return
	}
	reply := nats.NewMsg(m.Reply)
	contracts.SetTiming(reply.Header, timing)
	reply.Data = data
	if err := m.RespondMsg(reply); err != nil {
		t.Errorf("fake processor: respond: %v", err)
	}
}

// serve answers subject with handle on its own connection, in the
// processors' queue group.
func serve(t testing.TB, nc *nats.Conn, subject string, handle func(*nats.Msg)) {
	t.Helper()
	if _, err := nc.QueueSubscribe(subject, contracts.DefaultQueueGroup, handle); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// Routes other than /predict answer the timing headers too: a catalog
// search and an embeddings call relay the processor's queue and inference
// times and the bridge's total.
func TestTimingHeadersOnEveryRelayedRoute(t *testing.T) {
	ns := startNATS(t)
	b := startBridge(t, ns, nil)
	nc := connect(t, ns)
	timing := contracts.Timing{Queue: 7 * time.Millisecond, Inference: 12 * time.Millisecond, Known: true}
	model := contracts.ModelInfo{Name: "fake", Version: "test", Dimensions: 2}
	serve(t, nc, contracts.SubjectEmbed, func(m *nats.Msg) {
		var req contracts.EmbedRequest
		_ = json.Unmarshal(m.Data, &req)
		resp := contracts.EmbedResponse{Model: model, RequestID: req.RequestID}
		for range req.Input {
			resp.Embeddings = append(resp.Embeddings, []float32{0.6, 0.8})
			resp.Tokens = append(resp.Tokens, 3)
		}
		respondTimed(t, m, resp, timing)
	})
	serve(t, nc, contracts.SubjectCatalogSearch, func(m *nats.Msg) {
		respondTimed(t, m, contracts.SearchResponse{Model: model, Results: []contracts.CatalogResult{{Query: "a", Matches: []contracts.CatalogMatch{}}}}, timing)
	})
	tests := []struct{ name, path, body string }{
		{"catalog search", "/v1/catalogs/shop/search", `{"query": "a"}`},
		{"openai embeddings", "/v1/embeddings", `{"model": "fake", "input": "a"}`},
		{"tei embed", "/embed", `{"inputs": "a"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := b.post(t, tt.path, "application/json", tt.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s", resp.StatusCode, clip(body))
			}
			for h, want := range map[string]string{headerQueueTime: "7", headerInferenceTime: "12"} {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			if total, err := strconv.Atoi(resp.Header.Get(headerTotalTime)); err != nil || total < 0 {
				t.Errorf("%s = %q, want whole milliseconds", headerTotalTime, resp.Header.Get(headerTotalTime))
			}
		})
	}
}

// fakeModels stands in for a processor under model control: fp32 is its
// default until a switch.
type fakeModels struct {
	mu      sync.Mutex
	version string
}

func (f *fakeModels) status() contracts.ProcessorModels {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := contracts.ProcessorModels{Processor: "p1", DesiredState: "local"}
	for _, v := range []string{"fp32", "int8"} {
		p.Models = append(p.Models, contracts.ModelVersionStatus{Name: "all-MiniLM-L6-v2", Version: v, Dimensions: 384,
			State: contracts.ModelServing, Default: v == f.version})
	}
	return p
}

// GET /v1/models shows the default version the processors serve now: after
// /v1/models/switch it names the new version, never a remembered one.
func TestModelsListFollowsSwitch(t *testing.T) {
	ns := startNATS(t)
	b := startBridge(t, ns, nil)
	nc := connect(t, ns)
	f := &fakeModels{version: "fp32"}
	// Its micro stats keep the version it started with, as a real processor's do.
	if _, err := nc.Subscribe("$SRV.STATS."+contracts.ServiceName, func(m *nats.Msg) {
		data, _ := json.Marshal(serviceStats{ID: "p1", Started: time.Now(), Metadata: map[string]string{
			"model.name": "all-MiniLM-L6-v2", "model.version": "fp32", "model.dimensions": "384"}})
		_ = m.Respond(data)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe(contracts.SubjectModelsStatus, func(m *nats.Msg) {
		data, _ := json.Marshal(f.status())
		_ = m.Respond(data)
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, nc, contracts.SubjectModelsSwitch, func(m *nats.Msg) {
		var req contracts.ModelRequest
		_ = json.Unmarshal(m.Data, &req)
		_, ver, _ := contracts.ParseModelRef(req.Model)
		f.mu.Lock()
		f.version = ver
		f.mu.Unlock()
		data, _ := json.Marshal(f.status())
		_ = m.Respond(data)
	})
	version := func() string {
		t.Helper()
		resp, body := b.get(t, "/v1/models")
		var list openAIModelList
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list.Data) != 1 {
			t.Fatalf("GET /v1/models: %d %s, want one model", resp.StatusCode, clip(body))
		}
		if m := list.Data[0]; m.ID != "all-MiniLM-L6-v2" || m.Dimensions != 384 || m.Processors != 1 || m.Object != "model" || m.Created <= 0 {
			t.Fatalf("GET /v1/models: %+v", m)
		}
		if resp.Header.Get(headerTotalTime) == "" {
			t.Errorf("GET /v1/models: no %s", headerTotalTime)
		}
		return list.Data[0].Version
	}
	if v := version(); v != "fp32" {
		t.Fatalf("before the switch: version %q, want fp32", v)
	}
	resp, body := b.post(t, "/v1/models/switch", "application/json", `{"model": "all-MiniLM-L6-v2@int8"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("switch: %d %s", resp.StatusCode, clip(body))
	}
	if v := version(); v != "int8" {
		t.Fatalf("after the switch: version %q, want int8", v)
	}
}

// The one decoder answers the same faults alike on every door: an unknown
// field names itself and the known ones, data after the object and an empty
// body are malformed_json.
func TestDecodeFaultsAlike(t *testing.T) {
	ns := startNATS(t)
	b := startBridge(t, ns, nil)
	doors := []struct{ path, known string }{
		{"/predict", "query, product_descriptions, catalog, top_k, threshold, request_id, model"},
		{"/v1/catalogs/shop/search", "catalog, query, top_k, threshold, mode, fusion, rrf_k, alpha, candidates, explain, filter, offset, count, facets, group_by, request_id"},
		{"/v1/embeddings", "input, model, encoding_format, dimensions, user, input_type"},
		{"/embed", "inputs, normalize, truncate, truncation_direction, prompt_name"},
		{"/similarity", "inputs"},
		{"/v1/jobs", "query, product_descriptions, catalog, match, dedupe, top_k, threshold, notify"},
		{"/v1/models/switch", "model"},
	}
	for _, d := range doors {
		t.Run(d.path, func(t *testing.T) {
			resp, body := b.post(t, d.path, "application/json", `{"zz": 1}`)
			var eb struct{ Error *contracts.Error }
			if json.Unmarshal(body, &eb) != nil || eb.Error == nil || resp.StatusCode != 422 || eb.Error.Field != "zz" ||
				!strings.Contains(eb.Error.Message, "known fields are "+d.known) {
				t.Errorf("unknown field: %d %s", resp.StatusCode, clip(body))
			}
			for _, bad := range []string{`{} {}`, ``} {
				resp, body = b.post(t, d.path, "application/json", bad)
				if json.Unmarshal(body, &eb) != nil || eb.Error == nil || resp.StatusCode != 400 || eb.Error.Code != contracts.CodeMalformedJSON {
					t.Errorf("body %q: %d %s", bad, resp.StatusCode, clip(body))
				}
			}
		})
	}
}
