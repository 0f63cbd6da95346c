package processor_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
)

// The official OpenAI Python SDK (pinned in clients/requirements.txt, in a
// venv that clients/venv.sh makes and caches) gets the model's own
// embeddings from /v1/embeddings, in its default (base64) and float
// encodings, and their dot products are /predict's scores.
func TestOpenAISDK(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	py, err := exec.CommandContext(ctx, "../clients/venv.sh").Output()
	if err != nil {
		t.Fatalf("clients/venv.sh (makes the venv with the openai package): %v", err)
	}
	ns := startNATS(t)
	startProcessor(t, ns, nil)
	b := proctest.StartBridge(t, ns, nil)
	m := realModel(t)

	texts := []string{"What can I use to cut wood?", hammer, saw, "A cordless drill 🔩 with two batteries"}
	in, _ := json.Marshal(texts)
	cmd := exec.CommandContext(ctx, strings.TrimSpace(string(py)), "../clients/openai_check.py", b.URL)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outJSON, err := cmd.Output()
	if err != nil {
		t.Fatalf("openai_check.py: %v\n%s", err, stderr.String())
	}
	var out struct {
		Default, Float [][]float64
		Base64         []string
		Indexes        []int
		Usage          struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		}
		Model  string
		Models []string
		Error  *struct {
			Class, Code, Param, Type, Message string
			Status                            int
		}
	}
	dec := json.NewDecoder(bytes.NewReader(outJSON))
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("decode %s: %v", outJSON, err)
	}

	want, err := vectors(m.Embed(context.Background(), texts))
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got [][]float64) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d embeddings, want %d", name, len(got), len(want))
		}
		for i := range got {
			if c := cosine64(got[i], want[i]); c < 0.99999 {
				t.Errorf("%s: text %d: cosine to the processor's embedding %v", name, i, c)
			}
		}
	}
	check("default (base64 decoded by the SDK)", out.Default)
	check("float", out.Float)
	raw, err := base64.StdEncoding.DecodeString(out.Base64[0])
	if err != nil || len(raw) != 4*384 {
		t.Fatalf("base64: %v, %d bytes", err, len(raw))
	}
	vec := make([]float64, 384)
	for i := range vec {
		vec[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
	}
	check("base64 (raw)", [][]float64{vec, out.Float[1], out.Float[2], out.Float[3]})

	for i, ix := range out.Indexes {
		if ix != i {
			t.Errorf("index %d is %d", i, ix)
		}
	}
	counts, err := m.CountTokens(texts)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if out.Usage.PromptTokens != total || out.Usage.TotalTokens != total || out.Model != "all-MiniLM-L6-v2" {
		t.Errorf("usage %+v model %q, want %d tokens", out.Usage, out.Model, total)
	}
	if len(out.Models) != 1 || out.Models[0] != "all-MiniLM-L6-v2" {
		t.Errorf("models.list: %v", out.Models)
	}
	e := out.Error
	if e == nil || e.Class != "UnprocessableEntityError" || e.Status != 422 || e.Code != string(contracts.CodeInvalidRequest) ||
		e.Param != "dimensions" || e.Type != "invalid_request_error" || !strings.Contains(e.Message, "384-dimensional") {
		t.Errorf("dimensions=8: the SDK raised %+v", e)
	}

	// The SDK's vectors are the ones /predict ranks with.
	resp, data := proctest.Post(t, b.URL+"/predict", `{"query": "`+texts[0]+`", "product_descriptions": `+mustJSON(texts[1:])+`}`)
	if resp.StatusCode != 200 {
		t.Fatalf("/predict: %d %s", resp.StatusCode, data)
	}
	var pr contracts.Response
	if err := json.Unmarshal(data, &pr); err != nil {
		t.Fatal(err)
	}
	for _, mt := range pr.Results[0].Matches {
		if s := cosine64(out.Default[0], out.Default[1+mt.Index]); math.Abs(s-mt.Score) > 1e-5 {
			t.Errorf("description %d: SDK cosine %v, /predict score %v", mt.Index, s, mt.Score)
		}
	}
}

func cosine64[T float32 | float64, U float32 | float64](a []T, b []U) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(na*nb)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
