package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/embedding"
)

// Endpoints are the catalog operations, served through the processor's
// pipeline; at most Config.Concurrency of them run at once.
func (s *Service) Endpoints() []processor.Endpoint {
	lim, tl := s.cfg.Limits, s.cfg.TextLimits
	eps := []processor.Endpoint{
		processor.Handle("catalog-upsert", contracts.SubjectCatalogUpsert,
			decoder(s, func(r *contracts.UpsertRequest) error { return r.Validate(lim, tl) }), s.Upsert),
		processor.Handle("catalog-get", contracts.SubjectCatalogGet,
			decoder(s, func(r *contracts.ProductRequest) error { return r.Validate(lim) }), s.Get),
		processor.Handle("catalog-delete", contracts.SubjectCatalogDelete,
			decoder(s, func(r *contracts.ProductRequest) error { return r.Validate(lim) }), s.Delete),
		processor.Handle("catalog-list", contracts.SubjectCatalogList,
			decoder(s, func(*contracts.ListRequest) error { return nil }), s.List),
		processor.Handle("catalog-drop", contracts.SubjectCatalogDrop,
			decoder(s, func(r *contracts.DropRequest) error { return contracts.ValidateCatalogName(r.Catalog) }), s.Drop),
		processor.Handle("catalog-search", contracts.SubjectCatalogSearch,
			decoder(s, func(r *contracts.SearchRequest) error { return r.Validate(lim, tl) }), s.Search),
	}
	for i := range eps {
		eps[i].Timeout, eps[i].Slots = s.cfg.DefaultTimeout, s.sem
	}
	return eps
}

// decoder decodes a catalog request strictly within the body limit (an
// empty body is an empty request) and validates it.
func decoder[T any](s *Service, validate func(*T) error) func([]byte) (*T, error) {
	return func(data []byte) (*T, error) {
		v := new(T)
		if len(data) > 0 {
			if err := contracts.DecodeCatalog(data, s.cfg.Limits.MaxBodyBytes, v); err != nil {
				return nil, err
			}
		}
		if err := validate(v); err != nil {
			return nil, err
		}
		return v, nil
	}
}

// Upsert embeds the products' descriptions and stores each product with its
// embedding in one record. Nothing is written unless every embedding was
// computed; if JetStream fails part-way, the records already acknowledged
// stay (each whole) and the error says so: upserts are idempotent, so the
// caller retries the call. The reply's Timing sums every Embed call it made.
func (s *Service) Upsert(ctx context.Context, req *contracts.UpsertRequest) (*contracts.UpsertResponse, error) {
	var timing embedding.Timing
	for range 3 {
		resp, stale, err := s.upsertOnce(ctx, req, &timing)
		if !stale {
			if resp != nil {
				resp.Timing = timing.Wire()
			}
			return resp, err
		}
		// The catalog switched versions while the products were embedded:
		// store them again with the version searches now use.
	}
	return nil, contracts.Errorf(contracts.CodeConflict, "catalog %s switched model versions three times during this upsert; retry", req.Catalog)
}

// upsertOnce embeds with the catalog's active version (and the version being
// re-embedded, if any) and stores the records; timing gets each Embed call's
// time. stale reports that the active version changed meanwhile, so the
// records lack it.
func (s *Service) upsertOnce(ctx context.Context, req *contracts.UpsertRequest, timing *embedding.Timing) (_ *contracts.UpsertResponse, stale bool, _ error) {
	f, _, err := s.sync(ctx, req.Catalog)
	exists := err == nil
	if err != nil && !errors.Is(err, contracts.ErrNotFound) {
		return nil, false, err
	}
	chosen, err := s.chosenModel(req.Model)
	if err != nil {
		return nil, false, err
	}
	models := []string{modelKey(chosen)}
	if exists {
		_, m, pending := f.view()
		if err := s.checkModel(req.Catalog, m); err != nil {
			return nil, false, err
		}
		if req.Model != "" && !sameModel(req.Model, m) {
			return nil, false, &contracts.Error{Code: contracts.CodeConflict, Field: "model",
				Message: fmt.Sprintf("model: catalog %s holds embeddings of %s, not %s; upsert without model, or into a new catalog", req.Catalog, modelKey(m), req.Model)}
		}
		models = []string{modelKey(m)}
		if pending != "" {
			models = append(models, pending)
		}
	}
	if have := sizeAfter(f, req.Products); have > s.cfg.MaxProducts {
		return nil, false, &contracts.Error{Code: contracts.CodeInvalidRequest, Field: "products", Limit: s.cfg.MaxProducts,
			Message: fmt.Sprintf("products: catalog %s would hold %d products; the limit per catalog is %d (SIMMATCH_CATALOG_MAX_PRODUCTS)", req.Catalog, have, s.cfg.MaxProducts)}
	}
	dims := chosen.Dimensions
	if exists {
		dims = f.model.Dimensions
	}
	// Reserved until the records are applied here (the sync below) or
	// the upsert fails: a concurrent upsert sees the bytes taken.
	release, err := s.reserveGrowth(req.Catalog, f, dims, len(models), req.Products)
	if err != nil {
		return nil, false, err
	}
	defer release()
	texts := make([]string, len(req.Products))
	for i, p := range req.Products {
		texts[i] = p.Description
	}
	vecs := make([]map[string][]float32, len(req.Products))
	for i := range vecs {
		vecs[i] = make(map[string][]float32, len(models))
	}
	for i, m := range models {
		res, err := s.embedWith(ctx, m, embedding.Document, texts)
		*timing = timing.Add(res.Timing)
		if err != nil && i > 0 {
			// The version being re-embedded is not loaded here (yet): the
			// re-embedding embeds these products with it.
			s.cfg.Logger.Debug("catalog: upsert without the pending version", "catalog", req.Catalog, "model", m, "err", err)
			continue
		}
		if err != nil {
			return nil, false, err
		}
		for i, v := range res.Vectors {
			vecs[i][m] = v
		}
	}
	if !exists {
		if err := s.create(ctx, req.Catalog, chosen); err != nil {
			return nil, false, err
		}
	}
	var last uint64
	stored := 0
	for lo := 0; lo < len(req.Products); lo += publishChunk {
		hi := min(lo+publishChunk, len(req.Products))
		futs := make([]jetstream.PubAckFuture, 0, hi-lo)
		for i := lo; i < hi; i++ {
			msg, err := encodeRecord(req.Catalog, req.Products[i], vecs[i])
			if err == nil {
				var fut jetstream.PubAckFuture
				fut, err = s.js.PublishMsgAsync(msg, jetstream.WithExpectStream(streamName(req.Catalog)))
				futs = append(futs, fut)
			}
			if err != nil {
				return nil, false, s.partial(req, stored, err)
			}
		}
		for _, fut := range futs {
			select {
			case ack := <-fut.Ok():
				last = max(last, ack.Sequence)
				stored++
			case err := <-fut.Err():
				return nil, false, s.partial(req, stored, err)
			case <-ctx.Done():
				return nil, false, s.partial(req, stored, ctx.Err())
			}
		}
	}
	if f, _, err := s.sync(ctx, req.Catalog); err == nil {
		if _, m, _ := f.view(); !slices.Contains(models, modelKey(m)) {
			return nil, true, nil
		}
	}
	return &contracts.UpsertResponse{Catalog: req.Catalog, Upserted: len(req.Products), Sequence: last, RequestID: req.RequestID}, false, nil
}

// sizeAfter is the catalog's product count once ps are stored; f is nil for
// a catalog that does not exist yet.
func sizeAfter(f *followed, ps []contracts.Product) int {
	if f == nil {
		return len(ps)
	}
	idx, _, _ := f.view()
	n := idx.Len()
	for _, p := range ps {
		if !idx.Has(p.ID) {
			n++
		}
	}
	return n
}

func (s *Service) partial(req *contracts.UpsertRequest, stored int, err error) error {
	if streamFull(err) {
		e := s.full(req.Catalog, err).(*contracts.Error)
		e.Message = fmt.Sprintf("%s (JetStream stored %d of %d products first, each whole)", e.Message, stored, len(req.Products))
		return e
	}
	code := contracts.CodeInternal
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		code = contracts.CodeTimeout
	}
	return contracts.Errorf(code, "catalog %s: JetStream stored %d of %d products (each whole, with its embedding) before: %v; retry the call: upserts are idempotent",
		req.Catalog, stored, len(req.Products), err)
}

// chosenModel is the model ("name" or "name@version") a new catalog is
// embedded with; "" is the processors' default model.
func (s *Service) chosenModel(ref string) (contracts.ModelInfo, error) {
	if ref == "" {
		return s.cfg.Embedder.Info(), nil
	}
	if r, ok := s.cfg.Embedder.(Resolver); ok {
		e, release, err := r.Resolve(ref)
		if err != nil {
			if ce := contracts.AsError(err); ce != nil && ce.Field == "" {
				c := *ce
				c.Field = "model"
				return contracts.ModelInfo{}, &c
			}
			return contracts.ModelInfo{}, err
		}
		defer release()
		return e.Info(), nil
	}
	if info := s.cfg.Embedder.Info(); sameModel(ref, info) {
		return info, nil
	}
	return contracts.ModelInfo{}, &contracts.Error{Code: contracts.CodeNotFound, Field: "model",
		Message: fmt.Sprintf("model: %q is not served here; available: %s", ref, modelKey(s.cfg.Embedder.Info()))}
}

// sameModel reports whether ref ("name" or "name@version") names m.
func sameModel(ref string, m contracts.ModelInfo) bool {
	name, version, _ := contracts.ParseModelRef(ref)
	return name == m.Name && (version == "" || version == m.Version)
}

// create makes the catalog's stream for model, or checks the model of a
// stream another processor created meanwhile.
func (s *Service) create(ctx context.Context, name string, model contracts.ModelInfo) error {
	_, err := s.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:              streamName(name),
		Description:       "simmatch catalog " + name + ": products with their embeddings (created with " + modelKey(model) + ")",
		Subjects:          []string{catalogSubjects(name)},
		MaxMsgsPerSubject: 1,
		Storage:           jetstream.FileStorage,
		Replicas:          s.cfg.Replicas,
		MaxBytes:          s.cfg.MaxBytes,
		Discard:           jetstream.DiscardNew,
		AllowDirect:       true,
		Metadata:          streamMetadata(name, model),
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		f, _, err := s.sync(ctx, name)
		if err != nil {
			return err
		}
		_, m, _ := f.view()
		if m.Name != model.Name || m.Version != model.Version {
			return contracts.Errorf(contracts.CodeConflict, "catalog %s was just created by another upsert with model %s, not %s; retry", name, modelKey(m), modelKey(model))
		}
		return s.checkModel(name, m)
	}
	if err != nil {
		return contracts.Errorf(contracts.CodeInternal, "catalog %s: create stream with %d replicas: %v", name, s.cfg.Replicas, err)
	}
	return nil
}

// Get returns one product once this processor has applied every write
// answered before the call began.
func (s *Service) Get(ctx context.Context, req *contracts.ProductRequest) (*contracts.ProductResponse, error) {
	f, seq, err := s.sync(ctx, req.Catalog)
	if err != nil {
		return nil, err
	}
	idx, _, _ := f.view()
	p, ok := idx.Get(req.ID)
	if !ok {
		return nil, &contracts.Error{Code: contracts.CodeNotFound, Field: "id", Message: fmt.Sprintf("catalog %s has no product %q", req.Catalog, req.ID)}
	}
	return &contracts.ProductResponse{Catalog: req.Catalog, Product: p, Sequence: seq, RequestID: req.RequestID}, nil
}

// Delete removes one product; deleting one that is not there is not an
// error (Deleted is false), so retries are safe.
func (s *Service) Delete(ctx context.Context, req *contracts.ProductRequest) (*contracts.DeleteResponse, error) {
	f, seq, err := s.sync(ctx, req.Catalog)
	if err != nil {
		return nil, err
	}
	resp := &contracts.DeleteResponse{Catalog: req.Catalog, ID: req.ID, Sequence: seq, RequestID: req.RequestID}
	if idx, _, _ := f.view(); !idx.Has(req.ID) {
		return resp, nil
	}
	ack, err := s.js.PublishMsg(ctx, tombstone(req.Catalog, req.ID), jetstream.WithExpectStream(streamName(req.Catalog)))
	if err != nil {
		return nil, s.streamError(req.Catalog, err)
	}
	resp.Deleted, resp.Sequence = true, ack.Sequence
	return resp, nil
}

// List describes every catalog, sorted by name.
func (s *Service) List(ctx context.Context, req *contracts.ListRequest) (*contracts.ListResponse, error) {
	names, err := s.catalogNames(ctx)
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeInternal, "list catalog streams: %v", err)
	}
	resp := &contracts.ListResponse{Catalogs: []contracts.CatalogInfo{}, RequestID: req.RequestID}
	for _, n := range names {
		f, seq, err := s.sync(ctx, n)
		if errors.Is(err, contracts.ErrNotFound) {
			continue // dropped meanwhile
		}
		if errors.Is(err, contracts.ErrInsufficientStorage) {
			// Not loaded here (the memory budget): what the stream says.
			info := contracts.CatalogInfo{Name: n, Matrix: "not_loaded"}
			if st, err := s.js.Stream(ctx, streamName(n)); err == nil {
				ci := st.CachedInfo()
				info.Model, info.StoredBytes, info.Sequence = modelFromMetadata(ci.Config.Metadata), ci.State.Bytes, ci.State.LastSeq
			}
			resp.Catalogs = append(resp.Catalogs, info)
			continue
		}
		if err != nil {
			return nil, err
		}
		idx, m, _ := f.view()
		info := contracts.CatalogInfo{Name: n, Products: idx.Len(), Model: m, Matrix: matrixType(idx), MatrixBytes: idx.MatrixBytes(), KeywordBytes: idx.KeywordBytes(), Sequence: seq}
		if st, err := s.js.Stream(ctx, streamName(n)); err == nil {
			info.StoredBytes = st.CachedInfo().State.Bytes
		}
		resp.Catalogs = append(resp.Catalogs, info)
	}
	return resp, nil
}

func matrixType(x *Index) string {
	if x.Int8() {
		return "int8"
	}
	return "fp32"
}

// Drop deletes a catalog with all its products and embeddings.
func (s *Service) Drop(ctx context.Context, req *contracts.DropRequest) (*contracts.DropResponse, error) {
	if err := s.js.DeleteStream(ctx, streamName(req.Catalog)); err != nil {
		return nil, s.streamError(req.Catalog, err)
	}
	s.mu.Lock()
	f := s.cats[req.Catalog]
	delete(s.notLoaded, req.Catalog)
	s.mu.Unlock()
	if f != nil {
		s.unfollow(req.Catalog, f)
	}
	return &contracts.DropResponse{Catalog: req.Catalog, Dropped: true, RequestID: req.RequestID}, nil
}

// Search ranks the catalog's products for each query once this processor
// has applied every write answered before the search began.
func (s *Service) Search(ctx context.Context, req *contracts.SearchRequest) (*contracts.SearchResponse, error) {
	pages, model, seq, timing, err := s.rank(ctx, req.Catalog, req.Query, req.TopK, req.Threshold, req.SearchOptions)
	if err != nil {
		return nil, err
	}
	resp := &contracts.SearchResponse{Results: make([]contracts.CatalogResult, len(pages)), Model: model, Sequence: seq, RequestID: req.RequestID}
	resp.Timing = timing.Wire()
	for i, pg := range pages {
		ms := make([]contracts.CatalogMatch, len(pg.Hits))
		for j, h := range pg.Hits {
			ms[j] = contracts.CatalogMatch{ID: h.Product.ID, Description: h.Product.Description, Score: h.Score, Metadata: h.Product.Metadata,
				Explain: h.Explain, GroupSize: h.GroupSize}
		}
		resp.Results[i] = contracts.CatalogResult{Query: req.Query[i], Matches: ms, Facets: pg.Facets}
		if req.Count {
			resp.Results[i].Total = &pg.Total
		}
	}
	return resp, nil
}

// Predict answers a /predict request that names a catalog: the same
// ranking as Search, in /predict's response shape, matches carrying ids and
// their rank (from the page's start) as index.
func (s *Service) Predict(ctx context.Context, req *contracts.Request) (*contracts.Response, error) {
	pages, model, _, timing, err := s.rank(ctx, req.Catalog, req.Query, req.TopK, req.Threshold, req.SearchOptions)
	if err != nil {
		return nil, err
	}
	resp := &contracts.Response{Results: make([]contracts.Result, len(pages)), Model: model, RequestID: req.RequestID}
	resp.Timing = timing.Wire()
	for i, pg := range pages {
		ms := make([]contracts.Match, len(pg.Hits))
		for j, h := range pg.Hits {
			ms[j] = contracts.Match{Index: req.Offset + j, ID: h.Product.ID, Description: h.Product.Description, Score: h.Score,
				Explain: h.Explain, GroupSize: h.GroupSize}
		}
		resp.Results[i] = contracts.Result{Query: req.Query[i], Matches: ms, Facets: pg.Facets}
		if req.Count {
			resp.Results[i].Total = &pg.Total
		}
	}
	return resp, nil
}

// rank searches the catalog's active version: the query is embedded with
// that version and scanned against its matrix, so an answer never mixes
// versions; model names it, timing is the queries' Embed call's. A keyword
// search without explain embeds nothing.
func (s *Service) rank(ctx context.Context, name string, queries []string, topK *int, threshold *float64, opts contracts.SearchOptions) ([]Page, contracts.ModelInfo, uint64, embedding.Timing, error) {
	f, seq, err := s.sync(ctx, name)
	if err != nil {
		return nil, contracts.ModelInfo{}, 0, embedding.Timing{}, err
	}
	idx, m, _ := f.view()
	q := Query{Texts: queries, TopK: contracts.DefaultCatalogTopK, Threshold: threshold, Options: opts}
	if topK != nil {
		q.TopK = *topK
	}
	var timing embedding.Timing
	if opts.EffectiveMode() != contracts.ModeKeyword || opts.Explain {
		if err := s.checkModel(name, m); err != nil {
			return nil, m, 0, embedding.Timing{}, err
		}
		res, err := s.embedWith(ctx, modelKey(m), embedding.Query, queries)
		if err != nil {
			return nil, m, 0, embedding.Timing{}, err
		}
		q.Vectors, timing = res.Vectors, res.Timing
	}
	pages := idx.Search(q)
	if err := idx.Err(); err != nil {
		return nil, m, seq, timing, contracts.Errorf(contracts.CodeInternal, "catalog %s: %v", name, err)
	}
	return pages, m, seq, timing, nil
}
