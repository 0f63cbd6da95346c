package jobstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor/jobs/jobstore"
)

// Setup bounds the jobs' streams and bucket with the configured MaxBytes
// (the defaults when none is given), new writes refused when full; a write
// refused for space answers insufficient_storage naming the setting.
func TestSetupMaxBytes(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := jobstore.Setup(ctx, js, jobstore.SetupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, want int64) {
		t.Helper()
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if c := st.CachedInfo().Config; c.MaxBytes != want || c.Discard != jetstream.DiscardNew {
			t.Errorf("stream %s: MaxBytes %d, discard %v; want %d, DiscardNew", name, c.MaxBytes, c.Discard, want)
		}
	}
	check(contracts.JobChunksStream, jobstore.DefaultChunksMaxBytes)
	check(contracts.JobResultsStream, jobstore.DefaultResultsMaxBytes)
	check("KV_"+contracts.JobsBucket, jobstore.DefaultBucketMaxBytes)

	// Set up again with a tiny results stream: the existing streams are updated.
	const tiny = 2000
	if a, err = jobstore.Setup(ctx, js, jobstore.SetupConfig{ResultsMaxBytes: tiny}); err != nil {
		t.Fatal(err)
	}
	check(contracts.JobResultsStream, tiny)
	big := []byte(strings.Repeat("r", 1500))
	if _, err := js.Publish(ctx, contracts.SubjectJobResultPrefix+"job.0", big); err != nil {
		t.Fatal(err)
	}
	_, err = js.Publish(ctx, contracts.SubjectJobResultPrefix+"job.1", big)
	if !jobstore.Full(err) {
		t.Fatalf("publish past MaxBytes: err = %v, want one Full recognises", err)
	}
	err = jobstore.FullError(err, "the job results stream", jobstore.SettingResultsMaxBytes, a.Config.ResultsMaxBytes)
	if !errors.Is(err, contracts.ErrInsufficientStorage) || !strings.Contains(err.Error(), jobstore.SettingResultsMaxBytes) {
		t.Fatalf("FullError = %v, want insufficient_storage naming %s", err, jobstore.SettingResultsMaxBytes)
	}
	if other := errors.New("boom"); jobstore.FullError(other, "x", "Y", 1) != other {
		t.Error("FullError changed an error that is not about space")
	}
}
