package testenv

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
)

// NoJobsLeft fails unless the jobs' bucket, chunks stream and results
// stream are empty: a refused or failed submission left nothing behind.
func NoJobsLeft(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, contracts.JobsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := kv.Keys(ctx); !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Errorf("job entries left: %v %v", keys, err)
	}
	for _, name := range []string{contracts.JobChunksStream, contracts.JobResultsStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != 0 {
			t.Errorf("%s: %d messages left", name, info.State.Msgs)
		}
	}
}
