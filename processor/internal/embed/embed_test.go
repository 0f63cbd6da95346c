package embed

import (
	"context"
	"errors"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/simmatch/simmatch/processor/embedding"
)

// loadModel loads the real model that `make deps` fetched. The tests need the
// real ONNX Runtime and model; `make test` sets both variables.
func loadModel(t testing.TB) *Model {
	t.Helper()
	dir, lib := os.Getenv("SIMMATCH_MODEL_DIR"), os.Getenv("SIMMATCH_ORT_LIB")
	if dir == "" || lib == "" {
		t.Fatal("SIMMATCH_MODEL_DIR and SIMMATCH_ORT_LIB must point at the real model and ONNX Runtime: run the tests with `make test`")
	}
	m, err := Load(Options{Dir: dir, Library: lib, Name: "all-MiniLM-L6-v2"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(na*nb)
}

func TestLayoutOfRealModel(t *testing.T) {
	m := loadModel(t)
	l := m.Layout()
	if l.MaxSeqLength != 256 || l.Pooling != PoolingMean || !l.Normalize {
		t.Fatalf("layout = %+v, want max_seq_length 256, mean pooling, normalize", l)
	}
	if m.Dimensions() != 384 {
		t.Fatalf("dimensions = %d, want 384", m.Dimensions())
	}
}

func TestEmbedRanksSawAboveHammer(t *testing.T) {
	m := loadModel(t)
	v, err := vectors(m.Embed(context.Background(), []string{
		"What can I use to cut wood?",
		"Heavy-duty claw hammer with a non-slip grip handle.",
		"High-performance circular saw with laser guide.",
	}))
	if err != nil {
		t.Fatal(err)
	}
	hammer, saw := cosine(v[0], v[1]), cosine(v[0], v[2])
	if saw <= hammer {
		t.Fatalf("saw %.4f <= hammer %.4f", saw, hammer)
	}
	for i, e := range v {
		var n float64
		for _, x := range e {
			n += float64(x) * float64(x)
		}
		if math.Abs(n-1) > 1e-5 {
			t.Errorf("embedding %d has squared norm %v, want 1", i, n)
		}
	}
}

// A text's embedding must not depend on what else shares its batch (padding).
func TestEmbeddingIndependentOfBatch(t *testing.T) {
	m := loadModel(t)
	texts := []string{"saw", "A cordless drill with two 20V batteries, a charger and a carrying case; " + strings.Repeat("very ", 40) + "long.", "Garden hose 50 ft", "日本語の説明"}
	together, err := vectors(m.Embed(context.Background(), texts))
	if err != nil {
		t.Fatal(err)
	}
	for i, txt := range texts {
		alone, err := vectors(m.Embed(context.Background(), []string{txt}))
		if err != nil {
			t.Fatal(err)
		}
		if c := cosine(alone[0], together[i]); c < 0.99999 {
			t.Errorf("text %d: cosine(alone, in batch) = %.7f, want >= 0.99999", i, c)
		}
	}
}

func TestTruncatesAtMaxSeqLength(t *testing.T) {
	m := loadModel(t)
	long := strings.Repeat("wood saw blade ", 300)
	if n := len(mustEncode(t, m, long)); n != 256 {
		t.Fatalf("long text has %d tokens, want 256 (max_seq_length)", n)
	}
	if n := len(mustEncode(t, m, "saw")); n != 3 {
		t.Fatalf(`"saw" has %d tokens, want 3 ([CLS] saw [SEP])`, n)
	}
}

// The C interface of the tokenizer cannot carry U+0000; BERT's normalizer
// deletes it anyway, so the text must tokenize as if it were not there.
func TestNULIsDroppedLikeBERTNormalizer(t *testing.T) {
	m := loadModel(t)
	if got, want := mustEncode(t, m, "saw\x00 blade\x00"), mustEncode(t, m, "saw blade"); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestEmbedConcurrent(t *testing.T) {
	m := loadModel(t)
	want, err := vectors(m.Embed(context.Background(), []string{"circular saw"}))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			got, err := vectors(m.Embed(context.Background(), []string{"circular saw", "hammer"}))
			if err != nil {
				errs <- err
				return
			}
			if c := cosine(got[0], want[0]); c < 0.99999 {
				errs <- errors.New("concurrent embedding differs")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestEmbedCanceled(t *testing.T) {
	m := loadModel(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Embed(ctx, []string{"saw"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestLoadErrors(t *testing.T) {
	lib := os.Getenv("SIMMATCH_ORT_LIB")
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no graph", Options{Dir: t.TempDir(), Library: lib}, "no ONNX graph"},
		{"no library", Options{Dir: os.Getenv("SIMMATCH_MODEL_DIR"), Library: "/nonexistent/libonnxruntime.so"}, "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func mustEncode(t testing.TB, m *Model, text string) []int64 {
	t.Helper()
	e, err := m.Tokenizer().Encode(text)
	if err != nil {
		t.Fatal(err)
	}
	return e.IDs
}

// vectors is an Embed call's vectors, for tests about the vectors alone.
func vectors(r embedding.Result, err error) ([][]float32, error) { return r.Vectors, err }
