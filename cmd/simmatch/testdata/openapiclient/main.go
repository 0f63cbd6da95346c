// Command openapiclient calls a running simmatch through the client that
// oapi-codegen generated from bridge/openapi.yaml (package simmatchclient,
// copied beside this file by TestOpenAPIClients): /predict, an upsert and a
// search of catalog "openapi-go", and a job (submit, poll, results). It
// prints one JSON object with what each call answered.
//
// Usage: openapiclient BASE_URL API_KEY
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"
)

const (
	query  = "What can I use to cut wood?"
	hammer = "Heavy-duty claw hammer with a non-slip grip handle."
	saw    = "High-performance circular saw with laser guide."
)

func main() {
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "openapiclient:", err)
		os.Exit(1)
	}
}

func run(base, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	c, err := NewClientWithResponses(base, WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+key)
		return nil
	}))
	if err != nil {
		return err
	}
	out := map[string]any{}

	var q PredictRequest_Query
	if err := q.FromPredictRequestQuery1([]string{query}); err != nil {
		return err
	}
	p, err := c.PredictWithResponse(ctx, nil, PredictRequest{Query: q, ProductDescriptions: &[]string{hammer, saw}})
	if err != nil {
		return err
	}
	if p.JSON200 == nil {
		return fmt.Errorf("predict: %d %s", p.StatusCode(), p.Body)
	}
	m := p.JSON200.Results[0].Matches[0]
	out["predict"] = map[string]any{"status": p.StatusCode(), "index": m.Index, "score": m.Score, "model": p.JSON200.Model.Name}

	u, err := c.UpsertProductsWithResponse(ctx, "openapi-go", nil, UpsertProductsJSONRequestBody{
		Products: []Product{{Id: "hammer", Description: hammer}, {Id: "saw", Description: saw}}})
	if err != nil {
		return err
	}
	if u.JSON200 == nil {
		return fmt.Errorf("upsert: %d %s", u.StatusCode(), u.Body)
	}
	out["upserted"] = u.JSON200.Upserted

	var sq SearchRequest_Query
	if err := sq.FromSearchRequestQuery0(query); err != nil {
		return err
	}
	top := 1
	s, err := c.SearchCatalogWithResponse(ctx, "openapi-go", nil, SearchRequest{Query: sq, TopK: &top})
	if err != nil {
		return err
	}
	if s.JSON200 == nil {
		return fmt.Errorf("search: %d %s", s.StatusCode(), s.Body)
	}
	out["search"] = map[string]any{"status": s.StatusCode(), "id": s.JSON200.Results[0].Matches[0].Id}

	j, err := c.SubmitJobWithResponse(ctx, SubmitJobJSONRequestBody{
		Query: &[]string{query, "Something to drive nails"}, ProductDescriptions: &[]string{hammer, saw}, TopK: &top})
	if err != nil {
		return err
	}
	if j.JSON202 == nil {
		return fmt.Errorf("submit job: %d %s", j.StatusCode(), j.Body)
	}
	st := *j.JSON202
	for st.State != "done" && st.State != "failed" && st.State != "cancelled" {
		select {
		case <-ctx.Done():
			return fmt.Errorf("job %s: %s after 45 s", st.Id, st.State)
		case <-time.After(50 * time.Millisecond):
		}
		r, err := c.JobStatusWithResponse(ctx, st.Id)
		if err != nil {
			return err
		}
		if r.JSON200 == nil {
			return fmt.Errorf("job status: %d %s", r.StatusCode(), r.Body)
		}
		st = *r.JSON200
	}
	out["job"] = map[string]any{"id": st.Id, "state": st.State, "done": st.Done, "total": st.Total}
	res, err := c.JobResultsWithResponse(ctx, st.Id)
	if err != nil {
		return err
	}
	if res.StatusCode() != http.StatusOK {
		return fmt.Errorf("job results: %d %s", res.StatusCode(), res.Body)
	}
	var results []JobResult // the body is JSON lines
	sc := bufio.NewScanner(bytes.NewReader(res.Body))
	for sc.Scan() {
		var line JobResult
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("job results line %q: %w", sc.Text(), err)
		}
		results = append(results, line)
	}
	out["results"] = results
	return json.NewEncoder(os.Stdout).Encode(out)
}
