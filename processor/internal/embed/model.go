package embed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/embedding"
	ort "github.com/yalue/onnxruntime_go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Options configures Load. Dir and Library are required.
type Options struct {
	// Dir is a model directory in the sentence-transformers ONNX layout.
	Dir string
	// Library is the path of the ONNX Runtime shared library (libonnxruntime.so).
	Library string
	// Name and Version identify the model in responses; defaults: Dir's base name and "1".
	Name, Version string
	// IntraOpThreads and InterOpThreads size ONNX Runtime's thread pools for
	// this session; 0 means 1, since the processor runs several sessions'
	// requests in parallel and more threads would oversubscribe the cores.
	IntraOpThreads, InterOpThreads int
	// BatchSize is the most texts one ONNX run takes; default 32.
	BatchSize int
	// TracerProvider for the tokenize/inference/pooling spans; default the global one.
	TracerProvider trace.TracerProvider
}

// Model is a loaded embedding model. Embed is safe for concurrent use.
type Model struct {
	layout    Layout
	name, ver string
	tok       *Tokenizer
	sess      *ort.DynamicAdvancedSession
	inputs    []string // graph inputs, each one of input_ids, attention_mask, token_type_ids
	pooled    bool     // the graph outputs sentence embeddings, not token embeddings
	dims      int
	batchSize int
	tracer    trace.Tracer
	envHeld   bool // this model holds a reference on the ORT environment
}

var (
	envMu   sync.Mutex
	envLib  string
	envRefs int
)

// initEnvironment starts the one ONNX Runtime environment of the process.
func initEnvironment(lib string) error {
	envMu.Lock()
	defer envMu.Unlock()
	if envRefs > 0 {
		if lib != envLib {
			return fmt.Errorf("embed: ONNX Runtime is already loaded from %s; cannot also load %s", envLib, lib)
		}
		envRefs++
		return nil
	}
	if lib == "" {
		return errors.New("embed: no ONNX Runtime library path (set SIMMATCH_ORT_LIB, or run `make deps`)")
	}
	if !fileExists(lib) {
		return fmt.Errorf("embed: ONNX Runtime library %s does not exist (run `make deps` to fetch it)", lib)
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("embed: initialize ONNX Runtime from %s: %w", lib, err)
	}
	envLib, envRefs = lib, 1
	return nil
}

func releaseEnvironment() error {
	envMu.Lock()
	defer envMu.Unlock()
	envRefs--
	if envRefs > 0 {
		return nil
	}
	return ort.DestroyEnvironment()
}

// Load reads the model directory, loads the tokenizer and creates the ONNX session.
func Load(opts Options) (m *Model, err error) {
	layout, err := ReadLayout(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := initEnvironment(opts.Library); err != nil {
		return nil, err
	}
	m = &Model{layout: layout, name: opts.Name, ver: opts.Version, batchSize: opts.BatchSize, envHeld: true}
	defer func() {
		if err != nil {
			m.Close()
			m = nil
		}
	}()
	if m.name == "" {
		m.name = filepath.Base(filepath.Clean(opts.Dir))
	}
	if m.ver == "" {
		m.ver = "1"
	}
	if m.batchSize <= 0 {
		m.batchSize = 32
	}
	tp := opts.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m.tracer = tp.Tracer(tracerName)

	if m.tok, err = NewTokenizer(layout.TokenizerPath, layout.MaxSeqLength, layout.DoLowerCase); err != nil {
		return m, err
	}

	so, err := ort.NewSessionOptions()
	if err != nil {
		return m, fmt.Errorf("embed: session options: %w", err)
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(max(opts.IntraOpThreads, 1)); err != nil {
		return m, fmt.Errorf("embed: intra-op threads: %w", err)
	}
	if err := so.SetInterOpNumThreads(max(opts.InterOpThreads, 1)); err != nil {
		return m, fmt.Errorf("embed: inter-op threads: %w", err)
	}

	ins, outs, err := ort.GetInputOutputInfoWithOptions(layout.ONNXPath, so)
	if err != nil {
		return m, fmt.Errorf("embed: read graph %s: %w", layout.ONNXPath, err)
	}
	for _, in := range ins {
		switch in.Name {
		case "input_ids", "attention_mask", "token_type_ids":
			m.inputs = append(m.inputs, in.Name)
		default:
			return m, fmt.Errorf("embed: graph %s has input %q; supported inputs are input_ids, attention_mask, token_type_ids", layout.ONNXPath, in.Name)
		}
	}
	if !slices.Contains(m.inputs, "input_ids") {
		return m, fmt.Errorf("embed: graph %s has no input_ids input", layout.ONNXPath)
	}
	out, err := pickOutput(outs)
	if err != nil {
		return m, fmt.Errorf("embed: graph %s: %w", layout.ONNXPath, err)
	}
	m.pooled = len(out.Dimensions) == 2
	if d := out.Dimensions[len(out.Dimensions)-1]; d > 0 {
		m.dims = int(d)
	} else {
		m.dims = layout.Dimensions
	}
	if m.sess, err = ort.NewDynamicAdvancedSession(layout.ONNXPath, m.inputs, []string{out.Name}, so); err != nil {
		return m, fmt.Errorf("embed: create session for %s: %w", layout.ONNXPath, err)
	}
	// One warm-up run finds the dimensions when the graph leaves them dynamic
	// and makes the first request as fast as the rest.
	v, err := m.Embed(context.Background(), []string{"warm-up"})
	if err != nil {
		return m, fmt.Errorf("embed: warm-up run: %w", err)
	}
	m.dims = len(v.Vectors[0])
	return m, nil
}

// pickOutput prefers a pooled sentence embedding, then token embeddings.
func pickOutput(outs []ort.InputOutputInfo) (ort.InputOutputInfo, error) {
	for _, want := range []string{"sentence_embedding", "last_hidden_state", "token_embeddings"} {
		for _, o := range outs {
			if o.Name == want {
				return o, nil
			}
		}
	}
	for _, o := range outs {
		if n := len(o.Dimensions); (n == 2 || n == 3) && o.DataType == ort.TensorElementDataTypeFloat {
			return o, nil
		}
	}
	return ort.InputOutputInfo{}, errors.New("no float output of shape [batch, dims] or [batch, tokens, dims]")
}

// Name is the model's name, Version its version and Dimensions the embedding size.
func (m *Model) Name() string { return m.name }

// Version is the model version reported in responses.
func (m *Model) Version() string { return m.ver }

// Dimensions is the length of the embeddings Embed returns.
func (m *Model) Dimensions() int { return m.dims }

// Layout is what the model directory configured.
func (m *Model) Layout() Layout { return m.layout }

// Prompt is the prompt the model's configuration prepends to a text of kind
// (embedding.Prompter): Layout.Prompt.
func (m *Model) Prompt(kind string) string { return m.layout.Prompt(kind) }

// Tokenizer is the model's tokenizer.
func (m *Model) Tokenizer() *Tokenizer { return m.tok }

// TextTokenizer is the model's tokenizer (embedding.TokenizerSource).
func (m *Model) TextTokenizer() embedding.Tokenizer { return m.tok }

// EmbedIDs embeds token id sequences, each read as it is (special tokens
// included, at most max_seq_length ids), in batches of at most BatchSize
// (embedding.IDEmbedder).
func (m *Model) EmbedIDs(ctx context.Context, ids [][]int64) (embedding.Result, error) {
	began := time.Now()
	out := make([][]float32, 0, len(ids))
	counts := make([]int, len(ids))
	for start := 0; start < len(ids); start += m.batchSize {
		chunk := ids[start:min(start+m.batchSize, len(ids))]
		encs := make([]Encoding, len(chunk))
		for i, s := range chunk {
			if len(s) == 0 || len(s) > m.layout.MaxSeqLength {
				return embedding.Result{}, fmt.Errorf("embed: sequence %d has %d ids; want 1 to %d", start+i, len(s), m.layout.MaxSeqLength)
			}
			encs[i] = Sequence(s)
			counts[start+i] = len(s)
		}
		vecs, err := m.RunBatch(ctx, encs)
		if err != nil {
			return embedding.Result{}, err
		}
		out = append(out, vecs...)
	}
	return embedding.Result{Vectors: out, Tokens: counts, Timing: embedding.Timing{Inference: time.Since(began)}}, nil
}

// Embed returns one embedding and one token count per text, in order, and
// its time as Inference (a Model has no queue). Texts are grouped by
// length into batches of at most BatchSize so little compute goes to padding.
// Cancelling ctx stops a running inference. The Observer attached to ctx
// (WithObserver), if any, gets the stage timings and batch sizes. The
// processor's scheduler does not call Embed: it tokenizes with Encode and
// forms its own batches across requests for RunBatch.
func (m *Model) Embed(ctx context.Context, texts []string) (embedding.Result, error) {
	if len(texts) == 0 {
		return embedding.Result{}, nil
	}
	began := time.Now()
	obs := observerFrom(ctx)
	tracer := m.tracerFor(ctx)
	_, span := tracer.Start(ctx, StageTokenize, trace.WithAttributes(m.attrs()...))
	start := time.Now()
	encs := make([]Encoding, len(texts))
	tokens := 0
	for i, t := range texts {
		var err error
		if encs[i], err = m.tok.Encode(t); err != nil {
			obs.ObserveStage(StageTokenize, time.Since(start))
			span.SetStatus(codes.Error, err.Error())
			span.End()
			return embedding.Result{}, fmt.Errorf("text %d: %w", i, err)
		}
		tokens += len(encs[i].IDs)
	}
	obs.ObserveStage(StageTokenize, time.Since(start))
	span.SetAttributes(attribute.Int("simmatch.batch.size", len(texts)), attribute.Int("simmatch.tokens", tokens))
	span.End()

	// Longest first, as sentence-transformers does; ties keep input order.
	order := make([]int, len(texts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(encs[b].IDs) - len(encs[a].IDs) })

	out := make([][]float32, len(texts))
	for start := 0; start < len(order); start += m.batchSize {
		idx := order[start:min(start+m.batchSize, len(order))]
		chunk := make([]Encoding, len(idx))
		for j, i := range idx {
			chunk[j] = encs[i]
		}
		vecs, err := m.RunBatch(ctx, chunk)
		if err != nil {
			return embedding.Result{}, err
		}
		for j, i := range idx {
			out[i] = vecs[j]
		}
	}
	counts := make([]int, len(encs))
	for i, e := range encs {
		counts[i] = len(e.IDs)
	}
	return embedding.Result{Vectors: out, Tokens: counts, Timing: embedding.Timing{Inference: time.Since(began)}}, nil
}

// Encode tokenizes one text as the model expects it (special tokens,
// truncation at max_seq_length, no padding).
func (m *Model) Encode(text string) (Encoding, error) { return m.tok.Encode(text) }

// RunBatch embeds encodings (from Encode) in one ONNX Runtime run: pads them
// to the longest, runs inference, pools and normalizes. It returns one
// embedding per encoding, in order; an embedding does not depend on the other
// rows of the batch. Cancelling ctx stops the run. The inference and pooling
// spans are children of ctx's span; ctx's Observer gets their timings.
func (m *Model) RunBatch(ctx context.Context, encs []Encoding) ([][]float32, error) {
	if len(encs) == 0 {
		return nil, nil
	}
	return m.run(ctx, m.tracerFor(ctx), observerFrom(ctx), newBatch(encs), m.attrs())
}

func (m *Model) attrs() []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("simmatch.model.name", m.name), attribute.String("simmatch.model.version", m.ver)}
}

// tracerFor follows the caller's tracer provider when ctx carries a recording
// span, so the model's spans land wherever the request's trace goes.
func (m *Model) tracerFor(ctx context.Context) trace.Tracer {
	if s := trace.SpanFromContext(ctx); s.IsRecording() {
		return s.TracerProvider().Tracer(tracerName)
	}
	return m.tracer
}

const tracerName = "github.com/simmatch/simmatch/processor/internal/embed"

// run embeds one padded batch: inference, then pooling and normalization.
func (m *Model) run(ctx context.Context, tracer trace.Tracer, obs Observer, b batch, attrs []attribute.KeyValue) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	_, span := tracer.Start(ctx, StageInference, trace.WithAttributes(attrs...))
	span.SetAttributes(attribute.Int("simmatch.batch.size", b.size), attribute.Int("simmatch.batch.seq_len", b.seqLen), attribute.Int("simmatch.tokens", b.tokens))
	start := time.Now()
	raw, shape, err := m.infer(ctx, b)
	obs.ObserveStage(StageInference, time.Since(start))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "inference failed")
		span.End()
		return nil, err
	}
	span.End()
	obs.ObserveBatch(b.size, b.tokens)

	_, span = tracer.Start(ctx, StagePooling, trace.WithAttributes(attrs...))
	defer span.End()
	start = time.Now()
	defer func() { obs.ObserveStage(StagePooling, time.Since(start)) }()
	span.SetAttributes(attribute.String("simmatch.pooling", string(m.layout.Pooling)), attribute.Bool("simmatch.normalize", m.layout.Normalize))
	vecs, err := m.pool(raw, shape, b)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	if m.layout.Normalize {
		for _, v := range vecs {
			l2Normalize(v)
		}
	}
	return vecs, nil
}

func (m *Model) infer(ctx context.Context, b batch) ([]float32, ort.Shape, error) {
	shape := ort.NewShape(int64(b.size), int64(b.seqLen))
	inputs := make([]ort.Value, 0, len(m.inputs))
	defer func() {
		for _, v := range inputs {
			_ = v.Destroy()
		}
	}()
	for _, name := range m.inputs {
		data := b.ids
		switch name {
		case "attention_mask":
			data = b.mask
		case "token_type_ids":
			data = b.typeID
		}
		t, err := ort.NewTensor(shape, data)
		if err != nil {
			return nil, nil, fmt.Errorf("embed: input tensor %s: %w", name, err)
		}
		inputs = append(inputs, t)
	}

	ro, err := ort.NewRunOptions()
	if err != nil {
		return nil, nil, fmt.Errorf("embed: run options: %w", err)
	}
	defer ro.Destroy()
	// A cancellation ends the run at once (Terminate). Destroy must wait for
	// a Terminate already started: they race on the run options otherwise.
	terminated := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { defer close(terminated); _ = ro.Terminate() })
	defer func() {
		if !stop() {
			<-terminated
		}
	}()

	outputs := []ort.Value{nil}
	err = m.sess.RunWithOptions(inputs, outputs, ro)
	if outputs[0] != nil {
		defer outputs[0].Destroy()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("embed: inference stopped: %w", ctx.Err())
		}
		return nil, nil, fmt.Errorf("embed: run session: %w", err)
	}
	t, ok := outputs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, nil, fmt.Errorf("embed: output is %T, want a float32 tensor", outputs[0])
	}
	// GetData aliases memory that Destroy frees: copy it out.
	return slices.Clone(t.GetData()), slices.Clone(t.GetShape()), nil
}

func (m *Model) pool(raw []float32, shape ort.Shape, b batch) ([][]float32, error) {
	vecs := make([][]float32, b.size)
	if len(shape) == 2 {
		if int(shape[0]) != b.size {
			return nil, fmt.Errorf("embed: output shape %v for a batch of %d", shape, b.size)
		}
		d := int(shape[1])
		for i := range vecs {
			vecs[i] = slices.Clone(raw[i*d : (i+1)*d])
		}
		return vecs, nil
	}
	if len(shape) != 3 || int(shape[0]) != b.size || int(shape[1]) != b.seqLen {
		return nil, fmt.Errorf("embed: output shape %v, want [%d %d dims]", shape, b.size, b.seqLen)
	}
	d := int(shape[2])
	acc := make([]float64, d)
	for i := range vecs {
		row := raw[i*b.seqLen*d : (i+1)*b.seqLen*d]
		mask := b.mask[i*b.seqLen : (i+1)*b.seqLen]
		vecs[i] = poolRow(m.layout.Pooling, row, mask, d, acc)
	}
	return vecs, nil
}

// poolRow pools the token embeddings of one text (seqLen x d, row-major)
// under its attention mask, as sentence-transformers' Pooling module does.
func poolRow(mode Pooling, row []float32, mask []int64, d int, acc []float64) []float32 {
	v := make([]float32, d)
	switch mode {
	case PoolingCLS:
		copy(v, row[:d])
		return v
	case PoolingMax:
		for j := range acc {
			acc[j] = math.Inf(-1)
		}
		for t, on := range mask {
			if on == 0 {
				continue
			}
			for j, x := range row[t*d : (t+1)*d] {
				acc[j] = math.Max(acc[j], float64(x))
			}
		}
	default: // mean, mean_sqrt_len_tokens
		clear(acc)
		n := 0.0
		for t, on := range mask {
			if on == 0 {
				continue
			}
			n++
			for j, x := range row[t*d : (t+1)*d] {
				acc[j] += float64(x)
			}
		}
		div := math.Max(n, 1e-9)
		if mode == PoolingMeanSqrtLen {
			div = math.Sqrt(div)
		}
		for j := range acc {
			acc[j] /= div
		}
	}
	for j := range v {
		v[j] = float32(acc[j])
	}
	return v
}

func l2Normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	n := math.Max(math.Sqrt(s), 1e-12)
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
}

// Close frees the session, the tokenizer and this model's hold on the ONNX
// Runtime environment, in that order. It is safe on a partly loaded model.
func (m *Model) Close() error {
	var errs []error
	if m.sess != nil {
		errs = append(errs, m.sess.Destroy())
		m.sess = nil
	}
	if m.tok != nil {
		errs = append(errs, m.tok.Close())
		m.tok = nil
	}
	if m.envHeld {
		errs = append(errs, releaseEnvironment())
		m.envHeld = false
	}
	return errors.Join(errs...)
}

// DefaultThreads is GOMAXPROCS, the number of cores the process may use.
func DefaultThreads() int { return runtime.GOMAXPROCS(0) }

// Info identifies the model on the wire.
func (m *Model) Info() contracts.ModelInfo {
	return contracts.ModelInfo{Name: m.name, Version: m.ver, Dimensions: m.dims}
}

// CountTokens returns how many tokens the model reads for each text: special
// tokens included, after truncation at max_seq_length. It tokenizes without
// running the model.
func (m *Model) CountTokens(texts []string) ([]int, error) {
	out := make([]int, len(texts))
	for i, t := range texts {
		enc, err := m.tok.Encode(t)
		if err != nil {
			return nil, fmt.Errorf("text %d: %w", i, err)
		}
		out[i] = len(enc.IDs)
	}
	return out, nil
}
