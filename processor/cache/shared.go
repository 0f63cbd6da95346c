package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
)

// How the shared tier paces itself. A failing bucket is left alone for
// retryAfter so requests do not each wait out a timeout; a failed bind is
// retried as often. At most maxPutBatches requests' misses are written at
// once (more are dropped: the cache is best effort), each with at most
// parallelOps operations in flight, as are the lookups of one request.
const (
	retryAfter    = 5 * time.Second
	maxPutBatches = 8
	parallelOps   = 32
	statusMaxAge  = 10 * time.Second
	// formatVersion 2 added the text's token count; a value of version 1
	// reads as a miss, and the embedding computed then overwrites it.
	formatVersion = 2
)

// shared is the tier in a JetStream key-value bucket, shared by every
// processor on the NATS system. It never fails a request: errors count,
// are logged at most once per retryAfter, and read as misses.
type shared struct {
	cfg    SharedConfig
	logger *slog.Logger

	kv        atomic.Pointer[jetstream.KeyValue] // nil until bound
	binding   atomic.Bool                        // a bind attempt is running
	downUntil atomic.Int64                       // unix nanos; no operations before
	closed    atomic.Bool

	hits, misses, skipped, puts, dropped atomic.Int64
	getErrs, putErrs, bindErrs           atomic.Int64

	putSem chan struct{}
	wg     sync.WaitGroup // bind attempts, status reads and background puts
	// ctx ends at close: bind attempts and status reads stop then; writes
	// already started finish (close waits for them).
	ctx    context.Context
	cancel context.CancelFunc

	statusMu sync.Mutex
	status   bucketStatus
}

type bucketStatus struct {
	at             time.Time
	bytes, entries uint64
	refreshing     bool
}

func newShared(cfg SharedConfig, logger *slog.Logger) *shared {
	s := &shared{cfg: cfg, logger: logger, putSem: make(chan struct{}, maxPutBatches)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.tryBind()
	return s
}

// available reports whether the bucket may be used now, and starts a bind
// attempt in the background when none is bound yet.
func (s *shared) available() (jetstream.KeyValue, bool) {
	if s.closed.Load() || !s.cfg.NATS.IsConnected() || time.Now().UnixNano() < s.downUntil.Load() {
		return nil, false
	}
	kv := s.kv.Load()
	if kv == nil {
		s.tryBind()
		return nil, false
	}
	return *kv, true
}

// tryBind creates (or binds to) the bucket in the background, unless an
// attempt is already running.
func (s *shared) tryBind() {
	if !s.binding.CompareAndSwap(false, true) {
		return
	}
	s.wg.Go(func() {
		defer s.binding.Store(false)
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		defer cancel()
		kv, err := s.bind(ctx)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			s.down()
			// Warn once; the retries (every retryAfter while requests
			// come) log at debug level until one succeeds.
			level := slog.LevelDebug
			if s.bindErrs.Add(1) == 1 {
				level = slog.LevelWarn
			}
			s.logger.Log(ctx, level, "cache: shared tier unavailable; requests use the local tier and the model (retrying)",
				"bucket", s.cfg.Bucket, "err", err, "retry_in", retryAfter)
			return
		}
		s.kv.Store(&kv)
		s.logger.Info("cache: shared tier ready", "bucket", s.cfg.Bucket, "ttl", s.cfg.TTL, "replicas", s.cfg.Replicas)
	})
}

func (s *shared) bind(ctx context.Context) (jetstream.KeyValue, error) {
	js, err := jetstream.New(s.cfg.NATS)
	if err != nil {
		return nil, err
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      s.cfg.Bucket,
		Description: "simmatch embedding cache: model+version+text (sha256) -> float32 vector",
		History:     1,
		TTL:         s.cfg.TTL,
		MaxBytes:    s.cfg.MaxBytes,
		Replicas:    s.cfg.Replicas,
		Storage:     jetstream.FileStorage,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		// Another processor made it with other settings: use it as it is.
		if kv, err = js.KeyValue(ctx, s.cfg.Bucket); err != nil {
			return nil, fmt.Errorf("bind existing bucket %s: %w", s.cfg.Bucket, err)
		}
		if st, err := kv.Status(ctx); err == nil && st.TTL() != s.cfg.TTL {
			s.logger.Warn("cache: the shared bucket exists with another TTL; keeping it",
				"bucket", s.cfg.Bucket, "bucket_ttl", st.TTL(), "configured_ttl", s.cfg.TTL)
		}
		return kv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s (JetStream enabled? replicas %d <= servers?): %w", s.cfg.Bucket, s.cfg.Replicas, err)
	}
	return kv, nil
}

// down keeps requests away from the bucket for retryAfter.
func (s *shared) down() { s.downUntil.Store(time.Now().Add(retryAfter).UnixNano()) }

// failed counts and logs a bucket error; only the first error of an outage is
// logged, and the bucket is left alone for retryAfter.
func (s *shared) failed(op string, n *atomic.Int64, err error) {
	n.Add(1)
	if time.Now().UnixNano() >= s.downUntil.Load() {
		s.logger.Warn("cache: shared tier "+op+" failed; answering from the model meanwhile", "bucket", s.cfg.Bucket, "err", err, "retry_in", retryAfter)
	}
	s.down()
}

// get looks texts up in parallel and returns a vector (nil: a miss) and its
// token count per text. Errors read as misses.
func (s *shared) get(ctx context.Context, info contracts.ModelInfo, texts []string) ([][]float32, []int) {
	out := make([][]float32, len(texts))
	tokens := make([]int, len(texts))
	kv, ok := s.available()
	if !ok {
		s.skipped.Add(int64(len(texts)))
		return out, tokens
	}
	var failed atomic.Bool
	parallel(len(texts), func(i int) {
		if failed.Load() {
			s.skipped.Add(1)
			return
		}
		octx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
		e, err := kv.Get(octx, sharedKey(info, texts[i]))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			s.misses.Add(1)
		case err != nil:
			if ctx.Err() != nil { // the request ended, not the bucket
				return
			}
			failed.Store(true)
			s.failed("get", &s.getErrs, err)
		default:
			v, n, err := decodeValue(e.Value(), info)
			if err != nil {
				s.misses.Add(1)
				s.getErrs.Add(1)
				return
			}
			s.hits.Add(1)
			out[i], tokens[i] = v, n
		}
	})
	return out, tokens
}

// put writes the vectors and their token counts in the background; when
// too many writes are already running it drops them (counted).
func (s *shared) put(info contracts.ModelInfo, texts []string, vecs [][]float32, tokens []int) {
	kv, ok := s.available()
	if !ok {
		return
	}
	select {
	case s.putSem <- struct{}{}:
	default:
		s.dropped.Add(int64(len(texts)))
		return
	}
	s.wg.Go(func() {
		defer func() { <-s.putSem }()
		var failed atomic.Bool
		parallel(len(texts), func(i int) {
			val, err := encodeValue(info, vecs[i], tokens[i])
			if err != nil || failed.Load() {
				s.dropped.Add(1)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
			defer cancel()
			if _, err := kv.Put(ctx, sharedKey(info, texts[i]), val); err != nil {
				failed.Store(true)
				s.failed("put", &s.putErrs, err)
				return
			}
			s.puts.Add(1)
		})
	})
}

// parallel runs f(0..n-1) on at most parallelOps goroutines and waits.
func parallel(n int, f func(int)) {
	workers := min(n, parallelOps)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

// bucketStatus returns the bucket's size as last read, and refreshes it in
// the background when older than statusMaxAge, so a scrape never waits on
// NATS.
func (s *shared) bucketStatus() (bytes, entries uint64) {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	if time.Since(s.status.at) > statusMaxAge && !s.status.refreshing {
		if kv, ok := s.available(); ok {
			s.status.refreshing = true
			s.wg.Go(func() {
				ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
				defer cancel()
				st, err := kv.Status(ctx)
				s.statusMu.Lock()
				defer s.statusMu.Unlock()
				s.status.refreshing = false
				if err == nil {
					s.status.at, s.status.bytes, s.status.entries = time.Now(), st.Bytes(), st.Values()
				}
			})
		}
	}
	return s.status.bytes, s.status.entries
}

// close stops new operations and waits for the background writes.
func (s *shared) close(ctx context.Context) error {
	s.closed.Store(true)
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cache: wait for shared-tier writes: %w", ctx.Err())
	}
}

// sharedKey is the bucket key of a text: the hex sha256 of the model name,
// version and text, each length-prefixed so no two triples collide.
func sharedKey(info contracts.ModelInfo, text string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, s := range []string{info.Name, info.Version, text} {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// encodeValue is the bucket value of a vector: format version (1 byte),
// model name and version (each a length byte then the bytes), the text's
// token count and the dimensions (each uint32 little-endian) and the float32
// values (little-endian IEEE 754 bits, so a hit is bit-identical).
func encodeValue(info contracts.ModelInfo, vec []float32, tokens int) ([]byte, error) {
	if len(info.Name) > 255 || len(info.Version) > 255 {
		return nil, errors.New("cache: model name or version longer than 255 bytes")
	}
	if tokens < 0 || int64(tokens) > math.MaxUint32 {
		return nil, fmt.Errorf("cache: token count %d out of range", tokens)
	}
	b := make([]byte, 0, 1+1+len(info.Name)+1+len(info.Version)+4+4+4*len(vec))
	b = append(b, formatVersion, byte(len(info.Name)))
	b = append(b, info.Name...)
	b = append(b, byte(len(info.Version)))
	b = append(b, info.Version...)
	b = binary.LittleEndian.AppendUint32(b, uint32(tokens))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(vec)))
	for _, f := range vec {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b, nil
}

// decodeValue reads a bucket value (the vector and its text's token count),
// and refuses one written for another model, version or size, or in another
// format (version 1 had no token count).
func decodeValue(b []byte, info contracts.ModelInfo) ([]float32, int, error) {
	bad := errors.New("cache: bucket value is not an embedding of this model")
	str := func() (string, bool) {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return "", false
		}
		s := string(b[1 : 1+int(b[0])])
		b = b[1+int(b[0]):]
		return s, true
	}
	if len(b) < 1 || b[0] != formatVersion {
		return nil, 0, bad
	}
	b = b[1:]
	name, ok1 := str()
	ver, ok2 := str()
	if !ok1 || !ok2 || name != info.Name || ver != info.Version || len(b) < 8 {
		return nil, 0, bad
	}
	tokens := binary.LittleEndian.Uint32(b)
	dims := int(binary.LittleEndian.Uint32(b[4:]))
	b = b[8:]
	if uint64(len(b)) != 4*uint64(dims) || (info.Dimensions > 0 && dims != info.Dimensions) {
		return nil, 0, bad
	}
	vec := make([]float32, dims)
	for i := range vec {
		vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return vec, int(tokens), nil
}
