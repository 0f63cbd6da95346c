package jobstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

// A job belongs to the tenant it was submitted for: Owned is nil for it and
// otherwise the very error of an unknown id.
func TestOwned(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	nc := testenv.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := Setup(ctx, js, SetupConfig{}); err != nil {
		t.Fatal(err)
	}
	j, err := NewJobs(nc, 0)
	if err != nil {
		t.Fatal(err)
	}
	req := &contracts.JobRequest{Query: contracts.Queries{"saw"}, ProductDescriptions: []string{"hand saw"}}
	acme, err := j.SubmitFor(ctx, "acme", req)
	if err != nil {
		t.Fatal(err)
	}
	none, err := j.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if m, _, err := j.Meta(ctx, acme.ID); err != nil || m.Owner != "acme" {
		t.Fatalf("meta %+v %v", m, err)
	}
	if err := j.Owned(ctx, acme.ID, "acme"); err != nil {
		t.Errorf("acme's job, for acme: %v", err)
	}
	if err := j.Owned(ctx, none.ID, ""); err != nil {
		t.Errorf("a job without owner, for no tenant: %v", err)
	}
	unknown := "0123456789abcdef"
	_, _, notThere := j.Meta(ctx, unknown)
	for _, c := range []struct{ id, tenant string }{{acme.ID, "globex"}, {none.ID, "acme"}, {acme.ID, ""}} {
		err := contracts.AsError(j.Owned(ctx, c.id, c.tenant))
		want := contracts.AsError(notThere)
		if err == nil || err.Code != contracts.CodeNotFound || err.Message != strings.ReplaceAll(want.Message, unknown, c.id) {
			t.Errorf("job %s for %q: %v, want %v", c.id, c.tenant, err, want)
		}
	}
}
