package embed

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// recordingObserver keeps what Embed reports.
type recordingObserver struct {
	mu     sync.Mutex
	stages map[string]int
	texts  []int
	tokens int
}

func (o *recordingObserver) ObserveStage(stage string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d < 0 {
		panic("negative duration")
	}
	o.stages[stage]++
}

func (o *recordingObserver) ObserveBatch(texts, tokens int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.texts = append(o.texts, texts)
	o.tokens += tokens
}

func TestObserverSeesStagesAndBatches(t *testing.T) {
	dir, lib := os.Getenv("SIMMATCH_MODEL_DIR"), os.Getenv("SIMMATCH_ORT_LIB")
	if dir == "" || lib == "" {
		t.Fatal("SIMMATCH_MODEL_DIR and SIMMATCH_ORT_LIB must point at the real model and ONNX Runtime: run the tests with `make test`")
	}
	m, err := Load(Options{Dir: dir, Library: lib, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })

	texts := []string{"a saw", "a hammer with a grip", "wood", "What can I use to cut wood?", "glue"}
	wantTokens := 0
	for _, s := range texts {
		wantTokens += len(mustEncode(t, m, s))
	}
	o := &recordingObserver{stages: map[string]int{}}
	if _, err := m.Embed(WithObserver(context.Background(), o), texts); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{StageTokenize: 1, StageInference: 3, StagePooling: 3}
	for stage, n := range want {
		if o.stages[stage] != n {
			t.Errorf("stage %s observed %d times, want %d", stage, o.stages[stage], n)
		}
	}
	if len(o.texts) != 3 || o.texts[0]+o.texts[1]+o.texts[2] != len(texts) {
		t.Errorf("batches %v, want 3 batches of %d texts in all", o.texts, len(texts))
	}
	if o.tokens != wantTokens {
		t.Errorf("tokens %d, want %d", o.tokens, wantTokens)
	}

	// Without an observer in the context, Embed reports nowhere and still works.
	if _, err := m.Embed(context.Background(), texts[:1]); err != nil {
		t.Fatal(err)
	}
	if o.stages[StageTokenize] != 1 {
		t.Errorf("an Embed without the observer reported to it")
	}
}
