package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// An embed request over the per-call limit (here 4 texts) is split into
// processor calls of 4, up to the ceiling (8 × 4 = 32): the answer is the
// same as one call per part, in order, with truncated inputs named by their
// index in the request; past the ceiling, 422 names the field and ceiling.
func TestEmbedSplitsOverThePerCallLimit(t *testing.T) {
	args := []string{"-http-addr", "127.0.0.1:0", "-nats-listen", "", "-log-level", "warn", "-workers", "1",
		"-max-queries", "2", "-max-descriptions", "4", "-data-dir", t.TempDir()}
	base, _, _ := runServe(t, args, modelEnv, io.Discard)
	lim := contracts.Limits{MaxQueries: 2, MaxDescriptions: 4}
	if lim.MaxEmbedInputs() != 4 || lim.MaxEmbedTotal() != 32 {
		t.Fatalf("limits %d/%d", lim.MaxEmbedInputs(), lim.MaxEmbedTotal())
	}
	post := func(texts []string) (*http.Response, []byte) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"inputs": texts})
		resp, err := http.Post(base+"/embed", "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	texts := make([]string, 11)
	for i := range texts {
		texts[i] = fmt.Sprintf("cordless drill number %d", i)
	}
	texts[9] = strings.Repeat("a long product description ", 120) // past the 256-token window

	resp, body := post(texts)
	var all [][]float32
	if resp.StatusCode != 200 || json.Unmarshal(body, &all) != nil || len(all) != len(texts) {
		t.Fatalf("11 texts: %d %.300s, want 200 with 11 embeddings", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Truncated-Inputs"); got != "inputs[9]" {
		t.Errorf("X-Truncated-Inputs %q, want inputs[9] (the request's index, not the part's)", got)
	}
	// Each part's embeddings, asked alone, are the split answer's, in order.
	for start := 0; start < len(texts); start += 4 {
		part := texts[start:min(start+4, len(texts))]
		resp, body := post(part)
		var want [][]float32
		if resp.StatusCode != 200 || json.Unmarshal(body, &want) != nil {
			t.Fatalf("part at %d: %d %.200s", start, resp.StatusCode, body)
		}
		for i := range want {
			for d := range want[i] {
				if diff := want[i][d] - all[start+i][d]; diff > 1e-5 || diff < -1e-5 {
					t.Fatalf("text %d dim %d: split %v, alone %v", start+i, d, all[start+i][d], want[i][d])
				}
			}
		}
	}

	// At the ceiling: accepted; past it: 422 naming input and the ceiling.
	many := make([]string, 33)
	for i := range many {
		many[i] = fmt.Sprintf("hammer %d", i)
	}
	if resp, body := post(many[:32]); resp.StatusCode != 200 {
		t.Fatalf("32 texts: %d %.200s, want 200", resp.StatusCode, body)
	}
	resp, body = post(many)
	var e contracts.ErrorBody
	if resp.StatusCode != 422 || json.Unmarshal(body, &e) != nil || e.Error == nil || e.Error.Field != "inputs" && e.Error.Field != "input" ||
		e.Error.Limit != 32 || !strings.Contains(e.Error.Message, "the ceiling is 32") {
		t.Fatalf("33 texts: %d %s, want 422 naming the field and the ceiling 32", resp.StatusCode, body)
	}
	t.Logf("33 texts: %s", body)
}
