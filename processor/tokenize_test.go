package processor_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv/proctest"
)

var tokenizeTexts = []string{
	"What can I use to cut wood?",
	"Heavy-duty CLAW hammer with a non-slip grip handle.",
	"Ünïcödé ÀÉÎ and emoji 🪚 survive the trip",
	"İstanbul Ⱥpple straße",
	strings.Repeat("cordless drill ", 200),
}

// TEI's /tokenize answers the model tokenizer's ids, with offsets that
// slice the text; /decode gives the texts back (lowercased, as the model
// reads them); ids outside the vocabulary are refused naming the id.
func TestTEITokenizeDecode(t *testing.T) {
	ns := startNATS(t)
	m := realModel(t)
	startProcessor(t, ns, nil)
	b := proctest.StartBridge(t, ns, nil)

	in, _ := json.Marshal(tokenizeTexts)
	resp, body := proctest.Post(t, b.URL+"/tokenize", `{"inputs": `+string(in)+`}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Max-Tokens") != "256" {
		t.Errorf("X-Max-Tokens = %q, want 256", resp.Header.Get("X-Max-Tokens"))
	}
	var got [][]contracts.Token
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(tokenizeTexts) {
		t.Fatalf("%d token lists for %d texts", len(got), len(tokenizeTexts))
	}
	var all [][]int64
	for i, text := range tokenizeTexts {
		enc, err := m.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int64, len(got[i]))
		for j, tok := range got[i] {
			ids[j] = tok.ID
			if tok.Special {
				if tok.Start != nil || tok.Stop != nil {
					t.Errorf("text %d token %d: special with offsets", i, j)
				}
				continue
			}
			if tok.Start == nil || tok.Stop == nil || text[*tok.Start:*tok.Stop] != tok.Text {
				t.Errorf("text %d token %d = %+v: offsets do not slice the text", i, j, tok)
			}
		}
		all = append(all, ids)
		if len(ids) <= 256 {
			if !slices.Equal(ids, enc.IDs) {
				t.Errorf("text %d: ids %v, model tokenizer %v", i, ids, enc.IDs)
			}
		} else if !slices.Equal(ids[:255], enc.IDs[:255]) || len(enc.IDs) != 256 {
			t.Errorf("text %d: the long text's ids do not begin with the truncated encoding's", i)
		}
	}

	t.Run("no special tokens", func(t *testing.T) {
		resp, body := proctest.Post(t, b.URL+"/tokenize", `{"inputs": "cut wood", "add_special_tokens": false}`)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"text":"cut"`) || strings.Contains(string(body), "[CLS]") {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})

	t.Run("decode round trip", func(t *testing.T) {
		ids, _ := json.Marshal(all[:2])
		resp, body := proctest.Post(t, b.URL+"/decode", `{"ids": `+string(ids)+`}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		var texts []string
		if err := json.Unmarshal(body, &texts); err != nil {
			t.Fatal(err)
		}
		squash := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), " ", "") }
		for i, text := range texts {
			if squash(text) != squash(tokenizeTexts[i]) {
				t.Errorf("decode(tokenize(%q)) = %q", tokenizeTexts[i], text)
			}
		}
		resp, body = proctest.Post(t, b.URL+"/decode", `{"ids": [101, 3013, 102], "skip_special_tokens": false}`)
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `["[CLS] cut [SEP]"]` {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})

	for _, tc := range []struct{ name, body, field string }{
		{"outside the vocabulary", `{"ids": [[101, 3013, 102], [101, 30522]]}`, "ids[1][1]"},
		{"flat", `{"ids": [101, 99999]}`, "ids[1]"},
		{"negative", `{"ids": [[-1]]}`, "ids[0][0]"},
		{"not ids", `{"ids": ["a"]}`, "ids"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := proctest.Post(t, b.URL+"/decode", tc.body)
			if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"field":"`+tc.field+`"`) {
				t.Fatalf("status %d: %s; want 422 on %s", resp.StatusCode, body, tc.field)
			}
		})
	}
}
