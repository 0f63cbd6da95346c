package nats_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/embedding"
	"github.com/simmatch/simmatch/processor/jobs"
	"github.com/simmatch/simmatch/processor/jobs/jobstore"
)

// axisEmbedder embeds text i of a job as a unit vector on axis len(text)%4:
// this test is about NATS permissions, not about the model.
type axisEmbedder struct{}

func (axisEmbedder) Embed(_ context.Context, texts []string) (embedding.Result, error) {
	out := embedding.Result{Vectors: make([][]float32, len(texts)), Tokens: make([]int, len(texts))}
	for i, t := range texts {
		v := make([]float32, 4)
		v[len(t)%4] = 1
		out.Vectors[i], out.Tokens[i] = v, 1
	}
	return out, nil
}

func (axisEmbedder) Info() contracts.ModelInfo {
	return contracts.ModelInfo{Name: "axis", Version: "1", Dimensions: 4}
}

// Asynchronous jobs work with the least-privilege users: the processor sets
// up the streams and works through the chunks, the bridge user submits,
// follows, reads and cancels jobs without being able to create streams.
func TestJobsWithLeastPrivilege(t *testing.T) {
	ns := startServer(t)
	bridgeNC, bridgeErrs := connectAs(t, ns, "bridge", bridgePassword)
	procNC, procErrs := connectAs(t, ns, "processor", processorPassword)
	p, err := processor.Start(processor.Config{NATS: procNC, Embedder: axisEmbedder{}})
	if err != nil {
		t.Fatal(err)
	}
	// The worker on a connection of its own, as the processor node gives it.
	jobsNC, jobsErrs := connectAs(t, ns, "processor", processorPassword)
	w, err := jobs.Start(jobs.Config{NATS: jobsNC, Embedder: axisEmbedder{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Stop(ctx); err != nil { // before the processor, as the node stops them
			t.Error(err)
		}
		if err := p.Stop(ctx); err != nil {
			t.Error(err)
		}
	})

	jobs, err := jobstore.NewJobs(bridgeNC, 7)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	queries := make([]string, 50)
	for i := range queries {
		queries[i] = fmt.Sprintf("query %d%s", i, "xyz"[:i%4%3])
	}
	st, err := jobs.Submit(ctx, &contracts.JobRequest{Query: queries, ProductDescriptions: []string{"a", "bb", "ccc", "dddd"}, Notify: true})
	if err != nil {
		t.Fatal(err)
	}
	if st, err = jobs.Wait(ctx, st.ID, 20*time.Millisecond, nil); err != nil || st.State != contracts.JobDone {
		t.Fatalf("job %+v: %v", st, err)
	}
	n := 0
	err = jobs.Results(ctx, st.ID, func(r contracts.JobResult) error {
		if r.Query != queries[n] || len(r.Matches) != 4 || len(r.Matches[0].Description)%4 != len(r.Query)%4 {
			return fmt.Errorf("result %d: %+v", n, r)
		}
		n++
		return nil
	})
	if err != nil || n != len(queries) {
		t.Fatalf("results: %d lines, %v", n, err)
	}
	if st, err := jobs.Cancel(ctx, st.ID); err != nil || st.State != contracts.JobDone {
		t.Fatalf("cancel of a done job: %+v %v", st, err)
	}
	for name, errs := range map[string]<-chan error{"bridge": bridgeErrs, "processor": procErrs, "processor (jobs)": jobsErrs} {
		select {
		case err := <-errs:
			t.Errorf("%s: permission violation: %v", name, err)
		default:
		}
	}
}
