package catalog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/embedding"
)

// Defaults of the optional Config fields.
const (
	// DefaultMaxProducts is the default limit of products per catalog.
	DefaultMaxProducts = 1_000_000
	// DefaultTimeout applies to catalog requests that carry no timeout
	// header: embedding a bulk upsert of 10,000 products takes a while.
	DefaultTimeout = 2 * time.Minute
	// DefaultMaxBytes bounds each catalog's stream: a million products of
	// 384 float32 dimensions with short descriptions take about 2 GiB.
	DefaultMaxBytes = 4 << 30
	// DefaultBucketMaxBytes bounds the small key-value bucket of
	// re-embedding claims.
	DefaultBucketMaxBytes = 256 << 20
	// SettingMaxBytes names the setting of MaxBytes in errors.
	SettingMaxBytes = "SIMMATCH_CATALOG_MAX_BYTES"
	// SettingMemoryBytes names the setting of MemoryBytes in errors.
	SettingMemoryBytes = "SIMMATCH_CATALOG_MEMORY_BYTES"
	// publishChunk is how many records are in flight to JetStream at once.
	publishChunk = 512
)

// ErrNoJetStream is returned by New when the NATS server has no JetStream
// (or does not answer its account info).
var ErrNoJetStream = errors.New("catalog: the NATS server has no JetStream")

// Config configures a Service. NATS and Embedder are required.
type Config struct {
	// NATS is the processor's connection to a server with JetStream. The
	// service opens its own connection with the same options, so its
	// consumers and replies never hold up the processor's drain.
	NATS *nats.Conn
	// Embedder embeds descriptions and queries (the scheduler, or the model).
	Embedder processor.Embedder
	// Replicas is the replica count of new catalog streams; default 1.
	Replicas int
	// MaxProducts bounds the products of one catalog; default DefaultMaxProducts.
	MaxProducts int
	// MaxBytes bounds each catalog's stream (JetStream MaxBytes, set when
	// the stream is created, and on a stream that has no limit when it is
	// first followed); default DefaultMaxBytes. A full catalog refuses new
	// writes (DiscardNew) with insufficient_storage (507) naming SettingMaxBytes,
	// rather than silently dropping its oldest products.
	MaxBytes int64
	// BucketMaxBytes bounds the re-embedding claims' bucket; default
	// DefaultBucketMaxBytes.
	BucketMaxBytes int64
	// MemoryBytes is the processor-wide budget of the followed catalogs'
	// memory (Index.MatrixBytes + KeywordBytes of every version); 0:
	// unbounded. An upsert that would take them beyond it is refused
	// (insufficient_storage naming SettingMemoryBytes): its bytes are
	// reserved before it is embedded, so concurrent upserts cannot share
	// the same room. A catalog whose stored size does not fit what is left
	// is not loaded (State.NotLoaded) and its requests are answered
	// insufficient_storage (507) naming the budget; so is a followed
	// catalog that writes taken by other processors grow past it here.
	MemoryBytes int64
	// Limits bound each request; default contracts.DefaultCatalogLimits.
	Limits contracts.CatalogLimits
	// TextLimits bound the texts (characters per text, queries per search);
	// default contracts.DefaultLimits.
	TextLimits contracts.Limits
	// DefaultTimeout applies to requests without a timeout header.
	DefaultTimeout time.Duration
	// Concurrency is how many catalog requests run at once; default 4 x GOMAXPROCS.
	Concurrency int
	// ReembedCheck is how often the service compares each catalog's
	// version with the default version (with a Versions Embedder); default
	// DefaultReembedCheck.
	ReembedCheck time.Duration
	// ReembedClaimTTL is how long a re-embedding claim outlives a processor
	// that died holding it; default DefaultReembedClaimTTL.
	ReembedClaimTTL time.Duration
	// Int8 names the catalogs whose matrix is int8 (a quarter of the
	// memory, scanned faster, the best candidates rescored exactly); "*"
	// means every catalog. Int8Dir holds their exact float32 rows, in
	// unlinked files (default os.TempDir(): use a disk, not a tmpfs).
	Int8    []string
	Int8Dir string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.NATS == nil {
		return errors.New("catalog: Config.NATS is required")
	}
	if c.Embedder == nil {
		return errors.New("catalog: Config.Embedder is required")
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxProducts <= 0 {
		c.MaxProducts = DefaultMaxProducts
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.BucketMaxBytes <= 0 {
		c.BucketMaxBytes = DefaultBucketMaxBytes
	}
	if c.Limits == (contracts.CatalogLimits{}) {
		c.Limits = contracts.DefaultCatalogLimits
	}
	if c.TextLimits == (contracts.Limits{}) {
		c.TextLimits = contracts.DefaultLimits
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = DefaultTimeout
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4 * runtime.GOMAXPROCS(0)
	}
	if c.ReembedCheck <= 0 {
		c.ReembedCheck = DefaultReembedCheck
	}
	if c.ReembedClaimTTL <= 0 {
		c.ReembedClaimTTL = DefaultReembedClaimTTL
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Service serves the catalog operations on the simmatch.catalog.* subjects
// and catalog-backed /predict requests. It implements processor.Catalogs.
type Service struct {
	cfg Config
	nc  *nats.Conn // the service's own
	js  jetstream.JetStream

	ctx    context.Context // ends at Stop
	cancel context.CancelFunc

	mu   sync.Mutex
	cats map[string]*followed
	// listed is set once preload has listed the stored catalogs and begun
	// following each (State, for readiness).
	listed atomic.Bool

	sem chan struct{} // Concurrency: the catalog endpoints' slots

	// notLoaded names the stored catalogs this processor did not load for
	// want of memory (Config.MemoryBytes), with the bytes they would take
	// at least; under mu. Tried again whenever they are asked for.
	notLoaded map[string]int64

	// budgetMu makes checking the memory budget and reserving an upsert's
	// bytes one step (reserveGrowth): two upserts cannot both pass on the
	// same room. reserved, under budgetMu, is the bytes of the upserts
	// that passed and are not applied yet, by catalog.
	budgetMu sync.Mutex
	reserved map[string]int64

	reembed reembedState
}

var _ processor.Catalogs = (*Service)(nil)

// followed is one catalog whose stream this processor applies to one Index
// per model version (the active one, and the one being re-embedded).
type followed struct {
	ready   chan struct{} // closed when seen, idxs, cc, err are set
	err     error
	seen    *Index // tracks the sequence applied; holds no products
	cc      jetstream.ConsumeContext
	newIdx  func(dims int) *Index // NewIndex, or an int8 index
	model   contracts.ModelInfo   // the stream's metadata: the model it was created with, and the dimensions
	created time.Time             // the stream's creation time: a dropped and re-created catalog is another stream
	until   uint64                // the stream's last sequence when following began: caught up once applied
	// unloading is set once the catalog grew past the memory budget while
	// followed (overflow), so it is unloaded once.
	unloading atomic.Bool

	mu      sync.RWMutex
	idxs    map[string]*Index // by name@version
	active  string            // the version searches use
	pending string            // the version being re-embedded, "" when none
}

// view returns the active version's index and model: everything a search
// reads comes from this one version.
func (f *followed) view() (*Index, contracts.ModelInfo, string) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	name, ver, _ := strings.Cut(f.active, "@")
	return f.idxs[f.active], contracts.ModelInfo{Name: name, Version: ver, Dimensions: f.model.Dimensions}, f.pending
}

// apply applies one stream message; the consumer calls it in order.
func (f *followed) apply(seq uint64, rec record) {
	f.mu.Lock()
	switch {
	case rec.control != nil:
		f.active, f.pending = rec.control.Active, rec.control.Pending
		for k, x := range f.idxs {
			if k != f.active && k != f.pending {
				delete(f.idxs, k)
				x.close()
			}
		}
		for _, k := range []string{f.active, f.pending} {
			if _, ok := f.idxs[k]; !ok && k != "" {
				f.idxs[k] = f.newIdx(f.model.Dimensions)
			}
		}
	case rec.deleted:
		for _, x := range f.idxs {
			x.Delete(seq, rec.product.ID)
		}
	default:
		for k, x := range f.idxs {
			if v, ok := rec.vecs[k]; ok {
				x.Upsert(seq, rec.product, v)
			} else {
				x.Delete(seq, rec.product.ID) // not embedded with k: k does not cover it
			}
		}
		for k, v := range rec.vecs {
			if _, ok := f.idxs[k]; !ok { // a version written before its model record (replay)
				x := f.newIdx(f.model.Dimensions)
				x.Upsert(seq, rec.product, v)
				f.idxs[k] = x
			}
		}
	}
	f.mu.Unlock()
	f.seen.Skip(seq)
}

// New returns a Service and starts loading every stored catalog in the
// background (search waits for a catalog that is still loading).
func New(cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opts := cfg.NATS.Opts
	opts.Name += " catalogs"
	nc, err := opts.Connect()
	if err != nil {
		return nil, fmt.Errorf("catalog: connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("catalog: jetstream: %w", err)
	}
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = js.AccountInfo(actx)
	acancel()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: %w", ErrNoJetStream, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, nc: nc, js: js, ctx: ctx, cancel: cancel,
		cats: map[string]*followed{}, sem: make(chan struct{}, cfg.Concurrency), notLoaded: map[string]int64{}, reserved: map[string]int64{}}
	go s.preload()
	return s, nil
}

// preload follows every catalog in JetStream, so the first search does not
// wait for a load.
func (s *Service) preload() {
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	// Listed even when listing fails (logged below): the catalogs then load
	// on first use, and readiness must not wait forever for them.
	defer s.listed.Store(true)
	names, err := s.catalogNames(ctx)
	if err == nil && s.cfg.MemoryBytes > 0 {
		names, err = s.smallestFirst(ctx, names)
	}
	if err != nil {
		if s.ctx.Err() == nil {
			s.cfg.Logger.Warn("catalog: list catalogs to preload (they load on first use)", "err", err)
		}
		return
	}
	for _, n := range names {
		if _, err := s.follow(ctx, n); err != nil && s.ctx.Err() == nil {
			s.cfg.Logger.Warn("catalog: preload", "catalog", n, "err", err)
		}
	}
}

// smallestFirst orders catalogs by stored bytes, smallest first (then by
// name): under a memory budget the processor then serves as many catalogs
// as fit, and one huge catalog cannot keep every small one out. Each is
// loaded to the end before the next is tried, so what it takes is measured,
// not guessed.
func (s *Service) smallestFirst(ctx context.Context, names []string) ([]string, error) {
	size := make(map[string]uint64, len(names))
	for _, n := range names {
		st, err := s.stream(ctx, n)
		if err != nil {
			continue // dropped meanwhile: follow says so
		}
		size[n] = st.CachedInfo().State.Bytes
	}
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(size[a], size[b]) })
	return names, nil
}

// memoryUsed is what the followed catalogs' indexes take (every version's
// matrix and keyword index).
func (s *Service) memoryUsed() int64 {
	s.mu.Lock()
	cats := slices.Collect(maps.Values(s.cats))
	s.mu.Unlock()
	var n int64
	for _, f := range cats {
		n += f.memory()
	}
	return n
}

// committed is memoryUsed and the bytes reserved by upserts not applied
// yet, but those into catalog except: loading a catalog must not count the
// upsert that waits for it against it.
func (s *Service) committed(except string) int64 {
	s.budgetMu.Lock()
	defer s.budgetMu.Unlock()
	return s.committedLocked(except)
}

func (s *Service) committedLocked(except string) int64 {
	n := s.memoryUsed()
	for name, r := range s.reserved {
		if name != except {
			n += r
		}
	}
	return n
}

// memory is what the catalog's indexes take; 0 while it is starting.
func (f *followed) memory() int64 {
	select {
	case <-f.ready:
	default:
		return 0
	}
	if f.err != nil {
		return 0
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	var n int64
	for _, x := range f.idxs {
		n += x.MatrixBytes() + x.KeywordBytes()
	}
	return n
}

// estimate is the least memory a stored catalog takes once loaded: its
// float32 rows (or int8 ones), from the stream's message count and the
// model's dimensions; the keyword index comes on top.
func (s *Service) estimate(name string, info *jetstream.StreamInfo) int64 {
	dims := int64(modelFromMetadata(info.Config.Metadata).Dimensions)
	row := dims*4 + 8
	if slices.Contains(s.cfg.Int8, name) || slices.Contains(s.cfg.Int8, "*") {
		row = dims + 12
	}
	return int64(info.State.Msgs) * row
}

// overBudget is the error of a catalog this processor does not hold for
// want of memory.
func (s *Service) overBudget(name string, need, used int64) error {
	return contracts.Errorf(contracts.CodeInsufficientStorage,
		"catalog %s is not loaded on this processor: it needs at least %d bytes of memory and the catalogs' budget of %d bytes (%s) has %d left; raise the budget, drop or shrink catalogs, or add processors with room",
		name, need, s.cfg.MemoryBytes, SettingMemoryBytes, max(0, s.cfg.MemoryBytes-used))
}

// admit reports whether catalog name, stored as info, fits the memory
// budget beside the catalogs followed; if not it is marked not loaded.
func (s *Service) admit(name string, info *jetstream.StreamInfo) error {
	if s.cfg.MemoryBytes <= 0 {
		return nil
	}
	need, used := s.estimate(name, info), s.committed(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	// What it measured when it was loaded and unloaded again: each request
	// of a catalog that does not fit must not load it all again.
	need = max(need, s.notLoaded[name])
	if used+need > s.cfg.MemoryBytes {
		if _, ok := s.notLoaded[name]; !ok {
			s.cfg.Logger.Warn("catalog: not loaded: over the memory budget", "catalog", name, "need_bytes", need, "used_bytes", used,
				"budget_bytes", s.cfg.MemoryBytes, "setting", SettingMemoryBytes)
		}
		s.notLoaded[name] = need
		return s.overBudget(name, need, used)
	}
	delete(s.notLoaded, name)
	return nil
}

// reserveGrowth refuses an upsert whose products would take the catalogs'
// memory beyond the budget, counting the upserts already admitted and not
// applied yet; otherwise it reserves the products' bytes until release is
// called (once the upsert is applied, or failed). f is nil for a new catalog
// of dims dimensions. The bytes are a lower bound: the rows, and the texts
// for the keyword index; overflow catches what it misses once applied.
func (s *Service) reserveGrowth(name string, f *followed, dims, versions int, ps []contracts.Product) (release func(), _ error) {
	if s.cfg.MemoryBytes <= 0 {
		return func() {}, nil
	}
	row := int64(dims*4 + 8)
	if slices.Contains(s.cfg.Int8, name) || slices.Contains(s.cfg.Int8, "*") {
		row = int64(dims + 12)
	}
	var idx *Index
	if f != nil {
		idx, _, _ = f.view()
	}
	var add int64
	for _, p := range ps {
		if idx == nil || !idx.Has(p.ID) {
			add += row * int64(versions)
		}
		add += int64(len(p.ID) + len(p.Description)) // the keyword index, at least
	}
	s.budgetMu.Lock()
	defer s.budgetMu.Unlock()
	used := s.committedLocked("")
	if used+add > s.cfg.MemoryBytes {
		return nil, &contracts.Error{Code: contracts.CodeInsufficientStorage, Field: "products", Limit: int(s.cfg.MemoryBytes),
			Message: fmt.Sprintf("products: this upsert would take the catalogs' memory to %d bytes; the processors' budget is %d bytes (%s)",
				used+add, s.cfg.MemoryBytes, SettingMemoryBytes)}
	}
	s.reserved[name] += add
	var once sync.Once
	return func() {
		once.Do(func() {
			s.budgetMu.Lock()
			if s.reserved[name] -= add; s.reserved[name] == 0 {
				delete(s.reserved, name)
			}
			s.budgetMu.Unlock()
		})
	}, nil
}

// overflow unloads a followed catalog that the record just applied took
// past the memory budget: writes taken by another processor were checked
// against that processor's budget, not this one's. The catalog is then
// not loaded here, exactly as one that did not fit at start (State.NotLoaded,
// 507 naming the budget, tried again when asked for), rather than the
// processor growing without bound. A catalog still loading is left to
// measure.
func (s *Service) overflow(name string, f *followed) {
	select {
	case <-f.ready:
	default:
		return
	}
	if f.err != nil {
		return
	}
	used := s.memoryUsed()
	if used <= s.cfg.MemoryBytes || !f.unloading.CompareAndSwap(false, true) {
		return
	}
	own := f.memory()
	s.mu.Lock()
	if s.cats[name] == f {
		delete(s.cats, name)
	}
	s.notLoaded[name] = own
	s.mu.Unlock()
	s.cfg.Logger.Warn("catalog: unloaded: grew over the memory budget by writes through another processor", "catalog", name,
		"bytes", own, "used_bytes", used, "budget_bytes", s.cfg.MemoryBytes, "setting", SettingMemoryBytes)
	go f.stop() // not from the consumer's own callback
}

func (s *Service) catalogNames(ctx context.Context) ([]string, error) {
	l := s.js.ListStreams(ctx, jetstream.WithStreamListSubject(subjectPrefix+">"))
	var names []string
	for info := range l.Info() {
		if n := info.Config.Metadata[metaCatalog]; n != "" && streamName(n) == info.Config.Name {
			names = append(names, n)
		}
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// follow returns the catalog's follower, starting one if there is none.
func (s *Service) follow(ctx context.Context, name string) (*followed, error) {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return nil, contracts.Errorf(contracts.CodeNoProcessor, "this processor is stopping; retry")
	}
	f, ok := s.cats[name]
	if !ok {
		f = &followed{ready: make(chan struct{})}
		s.cats[name] = f
	}
	s.mu.Unlock()
	if ok {
		select {
		case <-f.ready:
			return f, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.err = s.start(ctx, name, f)
	if f.err == nil && s.cfg.MemoryBytes > 0 {
		f.err = s.measure(ctx, name, f)
	}
	if f.err != nil {
		s.mu.Lock()
		if errors.Is(f.err, contracts.ErrNotFound) {
			delete(s.notLoaded, name)
		}
		delete(s.cats, name) // the next call tries again
		s.mu.Unlock()
	}
	close(f.ready)
	return f, f.err
}

// measure waits until a catalog loaded under a memory budget has caught
// up, and unloads it again if it took the catalogs beyond the budget (its
// keyword index, or products written since admit looked).
func (s *Service) measure(ctx context.Context, name string, f *followed) error {
	if err := f.seen.WaitApplied(ctx, f.until); err != nil {
		f.stopFollowing()
		return contracts.Errorf(contracts.CodeTimeout, "catalog %s: not loaded before the deadline", name)
	}
	used, own := s.committed(name), f.memoryLoaded()
	if used+own <= s.cfg.MemoryBytes {
		return nil
	}
	f.stopFollowing()
	s.mu.Lock()
	s.notLoaded[name] = own
	s.mu.Unlock()
	s.cfg.Logger.Warn("catalog: unloaded: over the memory budget once loaded", "catalog", name, "bytes", own, "used_bytes", used,
		"budget_bytes", s.cfg.MemoryBytes, "setting", SettingMemoryBytes)
	return s.overBudget(name, own, used)
}

// memoryLoaded is memory for a follower that is not ready yet (measure).
func (f *followed) memoryLoaded() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var n int64
	for _, x := range f.idxs {
		n += x.MatrixBytes() + x.KeywordBytes()
	}
	return n
}

// stopFollowing stops a follower that start set up but that is not ready
// (stop waits for ready).
func (f *followed) stopFollowing() {
	if f.cc != nil {
		f.cc.Stop()
	}
	f.seen.close()
	f.mu.Lock()
	for _, x := range f.idxs {
		x.close()
	}
	f.mu.Unlock()
}

// indexMaker makes the indexes of catalog name: int8 when the configuration
// says so and its rows file can be made (else float32, which is logged).
func (s *Service) indexMaker(name string) func(dims int) *Index {
	if !slices.Contains(s.cfg.Int8, name) && !slices.Contains(s.cfg.Int8, "*") {
		return NewIndex
	}
	return func(dims int) *Index {
		x, err := NewInt8Index(dims, s.cfg.Int8Dir)
		if err != nil {
			s.cfg.Logger.Error("catalog: keeping a float32 matrix instead of int8", "catalog", name, "err", err)
			return NewIndex(dims)
		}
		return x
	}
}

func (s *Service) start(ctx context.Context, name string, f *followed) error {
	st, err := s.stream(ctx, name)
	if err != nil {
		return s.streamError(name, err)
	}
	info := st.CachedInfo()
	if err := s.admit(name, info); err != nil {
		return err
	}
	if info.Config.MaxBytes <= 0 {
		s.bound(ctx, name, info.Config)
	}
	f.model = modelFromMetadata(info.Config.Metadata)
	f.created = info.Created
	f.until = info.State.LastSeq
	if f.model.Dimensions <= 0 {
		return contracts.Errorf(contracts.CodeInternal, "catalog %s: stream %s has no model dimensions in its metadata", name, info.Config.Name)
	}
	f.seen = NewIndex(0)
	f.active = modelKey(f.model)
	f.newIdx = s.indexMaker(name)
	f.idxs = map[string]*Index{f.active: f.newIdx(f.model.Dimensions)}
	cons, err := st.OrderedConsumer(s.ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return s.streamError(name, err)
	}
	dims := f.model.Dimensions
	f.cc, err = cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		rec, err := decodeRecord(m.Subject(), m.Headers(), m.Data(), dims)
		if err != nil {
			s.cfg.Logger.Error("catalog: skip unreadable record", "catalog", name, "sequence", md.Sequence.Stream, "err", err)
			f.seen.Skip(md.Sequence.Stream)
			return
		}
		f.apply(md.Sequence.Stream, rec)
		if s.cfg.MemoryBytes > 0 && rec.control == nil && !rec.deleted {
			s.overflow(name, f)
		}
	}, jetstream.PullMaxMessages(4096),
		// Heartbeats every second: a consumer lost with its server (a NATS
		// restart, a cluster node gone) is noticed after two, and reset,
		// well within a search's deadline (the default is 5 s, so 10 s).
		jetstream.PullHeartbeat(followHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if s.ctx.Err() != nil {
				return
			}
			if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				// Dropped by another processor? Then stop following it now
				// rather than at its next request.
				go s.forgetIfDropped(name, f)
				return
			}
			s.cfg.Logger.Debug("catalog: follow stream", "catalog", name, "err", err)
		}))
	if err != nil {
		return s.streamError(name, err)
	}
	return nil
}

// bound gives the stream of a catalog created before streams had a limit
// (or by an older processor) MaxBytes and DiscardNew; a failure is logged:
// the catalog is followed unbounded rather than not at all.
func (s *Service) bound(ctx context.Context, name string, cfg jetstream.StreamConfig) {
	cfg.MaxBytes, cfg.Discard = s.cfg.MaxBytes, jetstream.DiscardNew
	if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
		s.cfg.Logger.Warn("catalog: set the stream's byte limit", "catalog", name, "max_bytes", s.cfg.MaxBytes, "err", err)
		return
	}
	s.cfg.Logger.Info("catalog: stream bounded", "catalog", name, "max_bytes", s.cfg.MaxBytes, "setting", SettingMaxBytes)
}

// full answers a write that JetStream refused because the catalog's stream
// is full: insufficient_storage naming the limit and its setting.
func (s *Service) full(name string, err error) error {
	return &contracts.Error{Code: contracts.CodeInsufficientStorage, Field: "products", Limit: int(s.cfg.MaxBytes),
		Message: fmt.Sprintf("products: catalog %s is full: its stream may hold %d bytes (%s); delete products or drop the catalog, or raise the setting: %v",
			name, s.cfg.MaxBytes, SettingMaxBytes, err)}
}

// streamFull reports whether err is JetStream refusing a write for space
// (the stream's MaxBytes, or the account's or server's storage).
func streamFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrMaxBytesExceeded) {
		return true
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "maximum bytes exceeded") || strings.Contains(msg, "insufficient resources") ||
		strings.Contains(msg, "insufficient storage")
}

// followHeartbeat is the idle heartbeat of the consumers that follow catalogs.
const followHeartbeat = time.Second

// jsTry bounds one JetStream API call of a request, so that a call lost in
// a reconnect or a leader election is made again within the deadline.
const jsTry = 2 * time.Second

// stream asks JetStream for the catalog's stream, again while JetStream is
// unreachable (a reconnect, a restarting server, a cluster electing a leader)
// and ctx allows: an accepted search waits for JetStream to come back rather
// than fail.
func (s *Service) stream(ctx context.Context, name string) (jetstream.Stream, error) {
	for {
		tctx, cancel := context.WithTimeout(ctx, jsTry)
		st, err := s.js.Stream(tctx, streamName(name))
		cancel()
		if err == nil || ctx.Err() != nil || !unreachable(err) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// unreachable reports whether err says JetStream did not answer or is not
// up yet, rather than answering about the stream.
func unreachable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 // JetStream not enabled yet, or temporarily unavailable
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

func (s *Service) streamError(name string, err error) error {
	if streamFull(err) {
		return s.full(name, err)
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return &contracts.Error{Code: contracts.CodeNotFound, Field: "catalog", Message: fmt.Sprintf("catalog %q does not exist", name)}
	}
	var e *contracts.Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return contracts.Errorf(contracts.CodeTimeout, "catalog %s: JetStream did not answer within the deadline", name)
	}
	return contracts.Errorf(contracts.CodeInternal, "catalog %s: JetStream: %v", name, err)
}

// forgetIfDropped unfollows a catalog whose stream is gone.
func (s *Service) forgetIfDropped(name string, f *followed) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if _, err := s.js.Stream(ctx, streamName(name)); errors.Is(err, jetstream.ErrStreamNotFound) {
		s.unfollow(name, f)
	}
}

// unfollow stops following a catalog if f is still its follower.
func (s *Service) unfollow(name string, f *followed) {
	s.mu.Lock()
	if s.cats[name] == f {
		delete(s.cats, name)
	}
	s.mu.Unlock()
	f.stop()
}

func (f *followed) stop() {
	<-f.ready
	if f.cc != nil {
		f.cc.Stop()
	}
	if f.seen != nil {
		f.seen.close()
	}
	f.mu.Lock()
	for _, x := range f.idxs {
		x.close()
	}
	f.mu.Unlock()
}

// sync returns the catalog's follower once it has applied everything the
// stream held when sync asked: the read-your-writes point.
func (s *Service) sync(ctx context.Context, name string) (*followed, uint64, error) {
	for range 3 {
		f, err := s.follow(ctx, name)
		if err != nil {
			return nil, 0, err
		}
		st, err := s.stream(ctx, name)
		if err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				s.unfollow(name, f)
			}
			return nil, 0, s.streamError(name, err)
		}
		info := st.CachedInfo()
		if !info.Created.Equal(f.created) { // dropped and created again
			s.unfollow(name, f)
			continue
		}
		last := info.State.LastSeq
		if err := f.seen.WaitApplied(ctx, last); err != nil {
			if errors.Is(err, errClosed) {
				continue
			}
			return nil, 0, contracts.Errorf(contracts.CodeTimeout, "catalog %s: this processor had not caught up with sequence %d before the deadline", name, last)
		}
		return f, last, nil
	}
	return nil, 0, contracts.Errorf(contracts.CodeConflict, "catalog %s changed (dropped and created) while the request ran; retry", name)
}

// Versions is implemented by an Embedder that serves several model
// versions (models.Registry.Direct): the catalogs then embed each catalog
// with its own active version, and re-embed catalogs in the background when
// the default version changes.
type Versions interface {
	// Hold returns an Embedder on model ("name@version") and holds the
	// version until release is called; a version still loading is waited
	// for until ctx ends.
	Hold(ctx context.Context, model string) (e processor.Embedder, release func(), err error)
}

// Resolver is an Embedder that serves several models and resolves a
// reference ("name", its default version, or "name@version") to one
// (models.Registry): catalogs can then be created for a chosen model.
type Resolver interface {
	Resolve(model string) (e processor.Embedder, release func(), err error)
}

// checkModel reports whether this processor can embed with model m: with a
// Versions embedder, when m is loaded; otherwise when m is the embedder's.
func (s *Service) checkModel(name string, m contracts.ModelInfo) error {
	if _, ok := s.cfg.Embedder.(Versions); ok {
		return nil // embedWith says whether it is loaded
	}
	cur := s.cfg.Embedder.Info()
	if m.Name != cur.Name || m.Version != cur.Version {
		return contracts.Errorf(contracts.CodeConflict, "catalog %s holds embeddings of model %s; this processor serves %s: search it with that model, or drop and re-import it",
			name, modelKey(m), modelKey(cur))
	}
	return nil
}

// embedWith embeds texts of a kind (embedding.Query or embedding.Document)
// with model ("name@version"), with the model's prompt for that kind.
func (s *Service) embedWith(ctx context.Context, model, kind string, texts []string) (embedding.Result, error) {
	e := s.cfg.Embedder
	if vs, ok := e.(Versions); ok {
		h, release, err := vs.Hold(ctx, model)
		if err != nil {
			return embedding.Result{}, contracts.Errorf(contracts.CodeConflict, "catalog embeddings are of model %s, which this processor has not loaded: load it (POST /v1/models/load): %v", model, err)
		}
		defer release()
		e = h
	}
	return s.embedOn(ctx, e, embedding.WithPrompt(e, kind, texts))
}

func (s *Service) embedOn(ctx context.Context, e processor.Embedder, texts []string) (embedding.Result, error) {
	res, err := e.Embed(ctx, texts)
	if err != nil {
		if ctx.Err() != nil {
			return embedding.Result{}, &contracts.Error{Code: contracts.CodeTimeout, Message: "the request's deadline passed during inference"}
		}
		var e *contracts.Error
		if errors.As(err, &e) {
			return embedding.Result{}, e
		}
		return embedding.Result{}, contracts.Errorf(contracts.CodeModelError, "embed texts: %v", err)
	}
	if len(res.Vectors) != len(texts) {
		return embedding.Result{}, contracts.Errorf(contracts.CodeModelError, "model returned %d embeddings for %d texts", len(res.Vectors), len(texts))
	}
	return res, nil
}

// State is the catalogs' loading state, for readiness (the processor's
// status answer): whether the stored catalogs were listed at start, and the
// followed catalogs that have not caught up with their stream yet.
func (s *Service) State() contracts.CatalogsState {
	st := contracts.CatalogsState{Listed: s.listed.Load(), Loading: []string{}, NotLoaded: []string{}}
	s.mu.Lock()
	cats := maps.Clone(s.cats)
	for name := range s.notLoaded {
		if _, ok := cats[name]; !ok {
			st.NotLoaded = append(st.NotLoaded, name)
		}
	}
	s.mu.Unlock()
	slices.Sort(st.NotLoaded)
	for name, f := range cats {
		st.Following++
		select {
		case <-f.ready:
			if f.err == nil && f.seen.Applied() < f.until {
				st.Loading = append(st.Loading, name)
			}
		default:
			st.Loading = append(st.Loading, name)
		}
	}
	slices.Sort(st.Loading)
	return st
}

// MemoryBytes is what the followed catalogs' indexes take now, the figure
// Config.MemoryBytes bounds.
func (s *Service) MemoryBytes() int64 { return s.memoryUsed() }

// Following reports whether this processor follows the catalog (has it in memory).
func (s *Service) Following(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.cats[name]
	return ok
}

// Stop stops following the catalogs and re-embedding them. Call it after
// the processor stopped: its requests in flight use the catalogs.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.cancel()
	cats := s.cats
	s.cats = map[string]*followed{}
	s.mu.Unlock()
	s.reembed.wg.Wait()
	for _, f := range cats {
		f.stop()
	}
	s.js.CleanupPublisher()
	s.nc.Close()
	return nil
}
