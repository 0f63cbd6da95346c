package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
)

type embeddingsAnswer struct {
	Data []struct {
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
	} `json:"usage"`
	Truncated []int `json:"truncated"`
	Chunked   []int `json:"chunked"`
}

func postEmbeddings(t *testing.T, url, input, extra string) (*http.Response, embeddingsAnswer, []byte) {
	t.Helper()
	resp, body := proctest.Post(t, url+"/v1/embeddings", `{"model": "all-MiniLM-L6-v2", "input": `+input+extra+`}`)
	var out embeddingsAnswer
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
	}
	return resp, out, body
}

// filler is a text of about n tokens about nothing in particular.
func filler(n int) string {
	words := strings.Fields("the garden soil was turned over with compost before the spring planting of beans and tomatoes")
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(words[i%len(words)])
		b.WriteByte(' ')
	}
	return b.String()
}

// Token arrays (with or without the special tokens, one list or several)
// embed as the texts they are the ids of; ids outside the vocabulary are
// refused naming them.
func TestEmbeddingsTokenArrays(t *testing.T) {
	ns := startNATS(t)
	m := realModel(t)
	startProcessor(t, ns, nil)
	b := proctest.StartBridge(t, ns, nil)
	texts := interfaceTexts
	want, err := vectors(m.Embed(context.Background(), texts))
	if err != nil {
		t.Fatal(err)
	}
	withSpecials := make([][]int64, len(texts))
	without := make([][]int64, len(texts))
	for i, text := range texts {
		enc, err := m.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		withSpecials[i] = enc.IDs
		if without[i], err = m.Tokenizer().ContentIDs(text); err != nil {
			t.Fatal(err)
		}
	}
	for name, ids := range map[string][][]int64{"with special tokens": withSpecials, "without": without} {
		t.Run(name, func(t *testing.T) {
			in, _ := json.Marshal(ids)
			resp, got, body := postEmbeddings(t, b.URL, string(in), "")
			if resp.StatusCode != http.StatusOK || len(got.Data) != len(texts) {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			for i := range texts {
				if c := cosine32(got.Data[i].Embedding, want[i]); c < 0.999999 {
					t.Errorf("%q: token-array embedding cosine %v to the text's", texts[i], c)
				}
			}
		})
	}
	t.Run("one list", func(t *testing.T) {
		in, _ := json.Marshal(without[0])
		resp, got, body := postEmbeddings(t, b.URL, string(in), "")
		if resp.StatusCode != http.StatusOK || len(got.Data) != 1 || cosine32(got.Data[0].Embedding, want[0]) < 0.999999 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	for _, tc := range []struct{ name, input, param string }{
		{"outside the vocabulary", `[[101, 2000], [5, 6, 30522]]`, "input[1][2]"},
		{"one list", `[7, 99999999]`, "input[1]"},
		{"negative", `[[1], [-3]]`, "input[1][0]"},
		{"mixed", `[1, "a"]`, "input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _, body := postEmbeddings(t, b.URL, tc.input, "")
			if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"param":"`+tc.param+`"`) {
				t.Fatalf("status %d: %s; want 422 on %s", resp.StatusCode, body, tc.param)
			}
		})
	}
}

// Truncation shows: the answers list the inputs read truncated, and
// "truncate": false refuses them naming the input and its token count.
func TestTruncationVisible(t *testing.T) {
	ns := startNATS(t)
	startProcessor(t, ns, nil)
	b := proctest.StartBridge(t, ns, nil)
	long := filler(300)
	in, _ := json.Marshal([]string{"cordless drill", long})

	resp, got, body := postEmbeddings(t, b.URL, string(in), "")
	if resp.StatusCode != http.StatusOK || !slices.Equal(got.Truncated, []int{1}) || resp.Header.Get("X-Truncated-Inputs") != "input[1]" {
		t.Fatalf("status %d, X-Truncated-Inputs %q: %s", resp.StatusCode, resp.Header.Get("X-Truncated-Inputs"), body)
	}
	resp, _, body = postEmbeddings(t, b.URL, `["cordless drill"]`, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Truncated-Inputs") != "" || strings.Contains(string(body), "truncated") {
		t.Fatalf("a short text is listed as truncated: %s", body)
	}
	resp, _, body = postEmbeddings(t, b.URL, string(in), `, "truncate": false`)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"param":"input[1]"`) ||
		!strings.Contains(string(body), " tokens; the model reads at most 256") {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}

	tei, body := proctest.Post(t, b.URL+"/embed", `{"inputs": `+string(in)+`}`)
	if tei.StatusCode != http.StatusOK || tei.Header.Get("X-Truncated-Inputs") != "inputs[1]" {
		t.Fatalf("/embed: status %d, X-Truncated-Inputs %q", tei.StatusCode, tei.Header.Get("X-Truncated-Inputs"))
	}
	tei, body = proctest.Post(t, b.URL+"/embed", `{"inputs": `+string(in)+`, "truncate": false}`)
	if tei.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"field":"inputs[1]"`) {
		t.Fatalf("/embed truncate false: status %d: %s", tei.StatusCode, body)
	}
	sim, body := proctest.Post(t, b.URL+"/similarity", fmt.Sprintf(`{"inputs": {"source_sentence": "drill", "sentences": ["saw", %q]}}`, long))
	if sim.StatusCode != http.StatusOK || sim.Header.Get("X-Truncated-Inputs") != "inputs.sentences[1]" {
		t.Fatalf("/similarity: status %d, X-Truncated-Inputs %q: %s", sim.StatusCode, sim.Header.Get("X-Truncated-Inputs"), body)
	}

	pred := fmt.Sprintf(`{"query": ["drill"], "product_descriptions": ["saw", %q]`, long)
	resp, body = proctest.Post(t, b.URL+"/predict", pred+`}`)
	var pr contracts.Response
	if err := json.Unmarshal(body, &pr); err != nil || resp.StatusCode != http.StatusOK || pr.Truncated == nil ||
		!slices.Equal(pr.Truncated.ProductDescriptions, []int{1}) || len(pr.Truncated.Query) != 0 ||
		resp.Header.Get("X-Truncated-Inputs") != "product_descriptions[1]" {
		t.Fatalf("/predict: status %d, X-Truncated-Inputs %q: %s", resp.StatusCode, resp.Header.Get("X-Truncated-Inputs"), body)
	}
	resp, body = proctest.Post(t, b.URL+"/predict", pred+`, "truncate": false}`)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"field":"product_descriptions[1]"`) {
		t.Fatalf("/predict truncate false: status %d: %s", resp.StatusCode, body)
	}
}

// "long_text": "chunk" leaves short texts bit for bit as they were, and
// reads a long text to its end: a fact past the 400th token changes the
// ranking only with it.
func TestLongTextChunk(t *testing.T) {
	ns := startNATS(t)
	startProcessor(t, ns, nil)
	b := proctest.StartBridge(t, ns, nil)

	short, _ := json.Marshal(interfaceTexts)
	_, plain, _ := postEmbeddings(t, b.URL, string(short), "")
	resp, chunked, body := postEmbeddings(t, b.URL, string(short), `, "long_text": "chunk"`)
	if resp.StatusCode != http.StatusOK || len(chunked.Chunked) != 0 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for i := range interfaceTexts {
		if !slices.Equal(plain.Data[i].Embedding, chunked.Data[i].Embedding) {
			t.Errorf("%q: chunking changed a short text's embedding", interfaceTexts[i])
		}
	}

	// Boilerplate of more than 400 tokens, then the one fact that matters.
	policy := strings.Repeat("Orders ship within two business days. Returns are accepted within thirty days of delivery with the original receipt. ", 25)
	if ids, err := realModel(t).Tokenizer().ContentIDs(policy); err != nil || len(ids) <= 400 {
		t.Fatalf("the boilerplate has %d tokens (%v), want more than 400", len(ids), err)
	}
	fact := "Waterproof diving watch for scuba divers: waterproof to 200 meters, diving bezel, luminous dial, dive watch strap. Waterproof diving watch."
	descs, _ := json.Marshal([]string{policy + fact, "Dog food, 10 kg."})
	req := `{"query": ["waterproof diving watch for scuba"], "product_descriptions": ` + string(descs)
	rank := func(extra string) (int, *contracts.Response) {
		resp, body := proctest.Post(t, b.URL+"/predict", req+extra+`}`)
		var pr contracts.Response
		if err := json.Unmarshal(body, &pr); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		return pr.Results[0].Matches[0].Index, &pr
	}
	top, pr := rank("")
	if top != 1 || pr.Truncated == nil {
		t.Errorf("truncated: the long description ranks first without its fact: %+v", pr.Results[0].Matches)
	}
	top, pr = rank(`, "long_text": "chunk"`)
	if top != 0 || pr.Truncated != nil {
		t.Errorf("chunked: the long description with its fact does not rank first: %+v", pr.Results[0].Matches)
	}

	in, _ := json.Marshal([]string{policy + fact})
	resp, got, body := postEmbeddings(t, b.URL, string(in), `, "long_text": "chunk"`)
	if resp.StatusCode != http.StatusOK || !slices.Equal(got.Chunked, []int{0}) || len(got.Truncated) != 0 || got.Usage.PromptTokens <= 256 {
		t.Fatalf("status %d: chunked %v truncated %v tokens %d", resp.StatusCode, got.Chunked, got.Truncated, got.Usage.PromptTokens)
	}
}
