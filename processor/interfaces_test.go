package processor_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
	"github.com/simmatch/simmatch/processor"
)

var interfaceTexts = []string{
	"What can I use to cut wood?",
	"Heavy-duty claw hammer with a non-slip grip handle.",
	"High-performance circular saw with laser guide.",
	"Ünïcödé and emoji 🪚 survive the trip",
}

func cosine32(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(na*nb)
}

// timingHeaders checks the TEI timing headers: whole milliseconds, with
// queue + inference <= total (each truncated).
func timingHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	get := func(h string) int64 {
		v, err := strconv.ParseInt(resp.Header.Get(h), 10, 64)
		if err != nil || v < 0 {
			t.Fatalf("header %s = %q: want a whole number of milliseconds", h, resp.Header.Get(h))
		}
		return v
	}
	q, i, total := get("X-Queue-Time"), get("X-Inference-Time"), get("X-Total-Time")
	if q+i > total+1 {
		t.Errorf("queue %d + inference %d ms > total %d ms", q, i, total)
	}
}

// /v1/embeddings answers in OpenAI's shape with the model's own vectors, in
// float and base64, real token counts and the timing headers.
func TestOpenAIEmbeddings(t *testing.T) {
	ns := startNATS(t)
	m := realModel(t)
	startProcessor(t, ns, nil)
	b := proctest.StartBridge(t, ns, nil)
	want, err := vectors(m.Embed(context.Background(), interfaceTexts))
	if err != nil {
		t.Fatal(err)
	}
	counts, err := m.CountTokens(interfaceTexts)
	if err != nil {
		t.Fatal(err)
	}
	wantTokens := 0
	for _, n := range counts {
		wantTokens += n
	}
	in, _ := json.Marshal(interfaceTexts)
	for _, format := range []string{"float", "base64", ""} {
		t.Run("format="+format, func(t *testing.T) {
			body := `{"model": "sentence-transformers/all-MiniLM-L6-v2", "input": ` + string(in) + `, "user": "u1"`
			if format != "" {
				body += `, "encoding_format": "` + format + `"`
			}
			resp, data := proctest.Post(t, b.URL+"/v1/embeddings", body+"}")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, data)
			}
			timingHeaders(t, resp)
			var got struct {
				Object string `json:"object"`
				Model  string `json:"model"`
				Data   []struct {
					Object    string          `json:"object"`
					Index     int             `json:"index"`
					Embedding json.RawMessage `json:"embedding"`
				} `json:"data"`
				Usage struct {
					PromptTokens int `json:"prompt_tokens"`
					TotalTokens  int `json:"total_tokens"`
				} `json:"usage"`
			}
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			if got.Object != "list" || got.Model != "all-MiniLM-L6-v2" || len(got.Data) != len(interfaceTexts) {
				t.Fatalf("got object %q model %q %d embeddings", got.Object, got.Model, len(got.Data))
			}
			if got.Usage.PromptTokens != wantTokens || got.Usage.TotalTokens != wantTokens {
				t.Errorf("usage %+v, want %d tokens", got.Usage, wantTokens)
			}
			for i, d := range got.Data {
				var vec []float32
				if format == "base64" {
					var s string
					if err := json.Unmarshal(d.Embedding, &s); err != nil {
						t.Fatalf("embedding %d is not a base64 string: %s", i, d.Embedding)
					}
					raw, err := base64.StdEncoding.DecodeString(s)
					if err != nil {
						t.Fatal(err)
					}
					for j := 0; j+4 <= len(raw); j += 4 {
						vec = append(vec, math.Float32frombits(binary.LittleEndian.Uint32(raw[j:])))
					}
				} else if err := json.Unmarshal(d.Embedding, &vec); err != nil {
					t.Fatal(err)
				}
				if d.Object != "embedding" || d.Index != i || len(vec) != 384 {
					t.Fatalf("data[%d]: object %q index %d dims %d", i, d.Object, d.Index, len(vec))
				}
				if c := cosine32(vec, want[i]); c < 0.99999 {
					t.Errorf("text %d: cosine to the model's own embedding %v", i, c)
				}
			}
		})
	}
}

// Bad OpenAI requests get our error model plus OpenAI's type and param.
func TestOpenAIEmbeddingsErrors(t *testing.T) {
	ns := startNATS(t)
	startProcessor(t, ns, nil)
	b := proctest.StartBridge(t, ns, nil)
	tests := []struct {
		name, body string
		status     int
		code       contracts.Code
		param      string
		typ        string
	}{
		{"dimensions", `{"model":"all-MiniLM-L6-v2","input":"x","dimensions":256}`, 422, contracts.CodeInvalidRequest, "dimensions", "invalid_request_error"},
		{"unknown model", `{"model":"text-embedding-3-small","input":"x"}`, 404, contracts.CodeNotFound, "model", "not_found_error"},
		{"no model", `{"input":"x"}`, 422, contracts.CodeInvalidRequest, "model", "invalid_request_error"},
		{"token array outside the vocabulary", `{"model":"all-MiniLM-L6-v2","input":[[1,2,30522]]}`, 422, contracts.CodeInvalidRequest, "input[0][2]", "invalid_request_error"},
		{"empty text", `{"model":"all-MiniLM-L6-v2","input":["ok"," "]}`, 422, contracts.CodeInvalidRequest, "input[1]", "invalid_request_error"},
		{"bad format", `{"model":"all-MiniLM-L6-v2","input":"x","encoding_format":"int8"}`, 422, contracts.CodeInvalidRequest, "encoding_format", "invalid_request_error"},
		{"unknown field", `{"model":"all-MiniLM-L6-v2","input":"x","foo":1}`, 422, contracts.CodeInvalidRequest, "foo", "invalid_request_error"},
		// Past the per-call limit a request is split; past 8x it, refused.
		{"too many", `{"model":"all-MiniLM-L6-v2","input":[` + strings.Repeat(`"a",`, 8*1024) + `"a"]}`, 422, contracts.CodeInvalidRequest, "input", "invalid_request_error"},
		{"bad json", `{"model":`, 400, contracts.CodeMalformedJSON, "", "invalid_request_error"},
		{"bad input_type", `{"model":"all-MiniLM-L6-v2","input":"x","input_type":"passage"}`, 422, contracts.CodeInvalidRequest, "input_type", "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, data := proctest.Post(t, b.URL+"/v1/embeddings", tt.body)
			var got struct {
				Error struct {
					Code    contracts.Code `json:"code"`
					Message string         `json:"message"`
					Type    string         `json:"type"`
					Param   *string        `json:"param"`
				} `json:"error"`
			}
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			e := got.Error
			if resp.StatusCode != tt.status || e.Code != tt.code || e.Type != tt.typ || e.Message == "" {
				t.Fatalf("got %d %.300s", resp.StatusCode, data)
			}
			if (tt.param == "") != (e.Param == nil) || e.Param != nil && *e.Param != tt.param {
				t.Errorf("param: got %s, want %q", data, tt.param)
			}
		})
	}
}

// TEI's /embed and /similarity agree with the model and with /predict.
func TestTEIRoutes(t *testing.T) {
	ns := startNATS(t)
	m := realModel(t)
	startProcessor(t, ns, nil)
	b := proctest.StartBridge(t, ns, nil)
	want, err := vectors(m.Embed(context.Background(), interfaceTexts))
	if err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(interfaceTexts)
	resp, data := proctest.Post(t, b.URL+"/embed", `{"inputs": `+string(in)+`, "normalize": true, "truncate": true}`)
	if resp.StatusCode != 200 {
		t.Fatalf("/embed: %d %s", resp.StatusCode, data)
	}
	timingHeaders(t, resp)
	var vecs [][]float32
	if err := json.Unmarshal(data, &vecs); err != nil || len(vecs) != len(want) {
		t.Fatalf("/embed: %v, %d vectors", err, len(vecs))
	}
	for i := range vecs {
		if c := cosine32(vecs[i], want[i]); c < 0.99999 {
			t.Errorf("/embed text %d: cosine %v", i, c)
		}
	}

	// all-MiniLM-L6-v2 has no prompts: prompt_name query embeds the texts as sent.
	resp, data = proctest.Post(t, b.URL+"/embed", `{"inputs": `+string(in)+`, "prompt_name": "query"}`)
	var asQuery [][]float32
	if err := json.Unmarshal(data, &asQuery); resp.StatusCode != 200 || err != nil || len(asQuery) != len(vecs) {
		t.Fatalf("/embed prompt_name query: %d %s", resp.StatusCode, data)
	}
	for i := range asQuery {
		if !slices.Equal(asQuery[i], vecs[i]) {
			t.Errorf("/embed prompt_name query, text %d: differs from the plain embedding", i)
		}
	}

	sents, _ := json.Marshal(interfaceTexts[1:])
	resp, data = proctest.Post(t, b.URL+"/similarity", `{"inputs": {"source_sentence": "`+interfaceTexts[0]+`", "sentences": `+string(sents)+`}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("/similarity: %d %s", resp.StatusCode, data)
	}
	timingHeaders(t, resp)
	var scores []float64
	if err := json.Unmarshal(data, &scores); err != nil || len(scores) != len(interfaceTexts)-1 {
		t.Fatalf("/similarity: %v %s", err, data)
	}
	resp, data = proctest.Post(t, b.URL+"/predict", `{"query": "`+interfaceTexts[0]+`", "product_descriptions": `+string(sents)+`}`)
	if resp.StatusCode != 200 {
		t.Fatalf("/predict: %d %s", resp.StatusCode, data)
	}
	timingHeaders(t, resp)
	var pr contracts.Response
	if err := json.Unmarshal(data, &pr); err != nil {
		t.Fatal(err)
	}
	for _, mt := range pr.Results[0].Matches {
		if math.Abs(scores[mt.Index]-mt.Score) > 1e-6 {
			t.Errorf("sentence %d: /similarity %v, /predict %v", mt.Index, scores[mt.Index], mt.Score)
		}
	}
	if scores[1] <= scores[0] {
		t.Errorf("saw %v should score above hammer %v", scores[1], scores[0])
	}

	bad := []struct{ name, path, body, field string }{
		{"normalize false", "/embed", `{"inputs": "x", "normalize": false}`, "normalize"},
		{"unknown prompt", "/embed", `{"inputs": "x", "prompt_name": "passage"}`, "prompt_name"},
		{"empty input", "/embed", `{"inputs": ["x", ""]}`, "inputs[1]"},
		{"no sentences", "/similarity", `{"inputs": {"source_sentence": "x", "sentences": []}}`, "inputs.sentences"},
		{"blank sentence", "/similarity", `{"inputs": {"source_sentence": "x", "sentences": ["a", " "]}}`, "inputs.sentences[1]"},
		{"no source", "/similarity", `{"inputs": {"sentences": ["a"]}}`, "inputs.source_sentence"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			resp, data := proctest.Post(t, b.URL+tt.path, tt.body)
			var e contracts.ErrorBody
			if err := json.Unmarshal(data, &e); err != nil || e.Error == nil {
				t.Fatalf("%d %s", resp.StatusCode, data)
			}
			if resp.StatusCode != 422 || e.Error.Field != tt.field || !strings.HasPrefix(e.Error.Message, tt.field+":") {
				t.Fatalf("got %d %s, want 422 on field %s", resp.StatusCode, data, tt.field)
			}
		})
	}
}

// GET /v1/models lists the served model once, in OpenAI's shape, with the
// number of processors serving it.
func TestModelsList(t *testing.T) {
	ns := startNATS(t)
	b := proctest.StartBridge(t, ns, nil)
	resp, data := proctest.Get(t, b.URL+"/v1/models")
	if resp.StatusCode != 503 {
		t.Fatalf("no processor: %d %s", resp.StatusCode, data)
	}
	startProcessor(t, ns, nil)
	startProcessor(t, ns, nil)
	resp, data = proctest.Get(t, b.URL+"/v1/models")
	var got struct {
		Object string `json:"object"`
		Data   []struct {
			ID, Object, OwnedBy string
			Created             int64
			Dimensions          int
			Processors          int
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, data)
	}
	if got.Object != "list" || len(got.Data) != 1 {
		t.Fatalf("%s", data)
	}
	d := got.Data[0]
	if d.ID != "all-MiniLM-L6-v2" || d.Object != "model" || d.Created <= 0 || d.Dimensions != 384 || d.Processors != 2 {
		t.Errorf("%s", data)
	}
}

// The typed client's Embed returns the vectors, token counts and timing,
// and refuses bad input with a field error.
func TestClientEmbed(t *testing.T) {
	ns := startNATS(t)
	m := realModel(t)
	startProcessor(t, ns, nil)
	c := newClient(t, connect(t, ns), nil)
	resp, err := c.Embed(context.Background(), &contracts.EmbedRequest{Input: contracts.Queries{"hello world"}, RequestID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	counts, _ := m.CountTokens([]string{"hello world"})
	if len(resp.Embeddings) != 1 || len(resp.Embeddings[0]) != 384 || resp.Tokens[0] != counts[0] || resp.RequestID != "r1" || !resp.Timing.Known || resp.Timing.Inference <= 0 {
		t.Fatalf("got %d embeddings, tokens %v (want %v), id %q, timing %+v", len(resp.Embeddings), resp.Tokens, counts, resp.RequestID, resp.Timing)
	}
	_, err = c.Embed(context.Background(), &contracts.EmbedRequest{Input: contracts.Queries{strings.Repeat("a", 9000)}})
	var e *contracts.Error
	if !errors.As(err, &e) || !errors.Is(err, contracts.ErrInvalidRequest) || e.Field != "input[0]" || e.Limit != 8192 {
		t.Fatalf("got %v", err)
	}
}

// An embed request that names a model is served by that model, and one the
// processor does not serve is refused before any text is embedded.
func TestEmbedNamesItsModel(t *testing.T) {
	ns := startNATS(t)
	emb := &proctest.CountingEmbedder{Embedder: startScheduler(t, nil)}
	startProcessor(t, ns, func(cfg *processor.Config) { cfg.Embedder = emb })
	c := newClient(t, connect(t, ns), nil)
	_, err := c.Embed(context.Background(), &contracts.EmbedRequest{Input: contracts.Queries{"hello"}, Model: "text-embedding-3-small"})
	var e *contracts.Error
	if !errors.As(err, &e) || !errors.Is(err, contracts.ErrNotFound) || e.Field != "model" || emb.Texts.Load() != 0 {
		t.Fatalf("unknown model: %v after %d texts embedded; want not_found on field model before any", err, emb.Texts.Load())
	}
	resp, err := c.Embed(context.Background(), &contracts.EmbedRequest{Input: contracts.Queries{"hello"}, Model: "all-MiniLM-L6-v2"})
	if err != nil || resp.Model.Name != "all-MiniLM-L6-v2" || emb.Texts.Load() != 1 {
		t.Fatalf("served model: %v, %+v after %d texts", err, resp, emb.Texts.Load())
	}
}

// An answer over the NATS server's max_payload is never lost: the processor
// answers payload_too_large at once (a direct NATS caller sent too many
// texts), and the bridge sends such a request in parts that fit.
func TestEmbedAnswerOverMaxPayload(t *testing.T) {
	ns := startNATS(t)
	startProcessor(t, ns, nil)
	texts := make([]string, 600) // about 3 MB of JSON vectors, over the 1 MiB max_payload
	for i := range texts {
		texts[i] = fmt.Sprintf("item %d", i)
	}
	c, err := contracts.NewClient(testenv.Connect(t, ns), contracts.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Embed(context.Background(), &contracts.EmbedRequest{Input: texts})
	if e := contracts.AsError(err); e == nil || e.Code != contracts.CodePayloadTooLarge || !strings.Contains(e.Message, "max_payload") {
		t.Fatalf("600 texts straight to a processor: %v, want payload_too_large naming max_payload", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("the refusal took %v: it must not wait for a deadline", d)
	}
	b := proctest.StartBridge(t, ns, nil)
	in, _ := json.Marshal(texts)
	resp, data := proctest.Post(t, b.URL+"/v1/embeddings", `{"model":"all-MiniLM-L6-v2","input":`+string(in)+`}`)
	var got struct{ Data []struct{ Index int } }
	if resp.StatusCode != 200 || json.Unmarshal(data, &got) != nil || len(got.Data) != len(texts) || got.Data[599].Index != 599 {
		t.Fatalf("600 texts through the bridge: %d %.300s", resp.StatusCode, data)
	}
}
