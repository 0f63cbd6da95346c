package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simmatch/simmatch/processor/embedding"
)

// Re-embedding: when the default model version changes, every catalog is
// embedded again with it in the background, while searches keep using the
// catalog's active version:
//
//  1. One processor claims the catalog in the KV bucket claimBucket (a
//     create, then updates with a revision check; the claim expires after
//     Config.ReembedClaimTTL if the processor dies).
//  2. It appends the model record {active: old, pending: new}: from then on
//     upserts store both embeddings.
//  3. It reads the stream and stores again, with both embeddings, every
//     product that lacks the new one (expecting the product's last
//     sequence, so a newer upsert is never overwritten), pass after pass,
//     each pass starting where the last one ended.
//  4. When a pass finds nothing missing, it appends {active: new}, expecting
//     the stream's last sequence to be the pass's end: so the switch happens
//     only when every product has the new embedding. Every processor applies
//     the model record at the same place in the stream and swaps matrices.
//
// A claim holder that stops part-way leaves the re-embedded records in the
// stream: the next one skips them (resumable).
const (
	claimBucket = "simmatch_catalog_reembed"
	// DefaultReembedCheck is the default of Config.ReembedCheck.
	DefaultReembedCheck = time.Second
	// DefaultReembedClaimTTL is the default of Config.ReembedClaimTTL.
	DefaultReembedClaimTTL = 30 * time.Second
	reembedBatch           = 64
)

type reembedState struct {
	wg      sync.WaitGroup
	desired func(name string) string
	mu      sync.Mutex
	working map[string]bool // catalogs this processor re-embeds now
	kv      jetstream.KeyValue
	done    atomic.Int64 // products re-embedded
}

// StartReembedding starts re-embedding catalogs in the background when the
// default version changes; the Embedder must implement Versions. desired
// returns the fleet's desired default version of a model name ("" when
// unknown): a processor re-embeds only once its own default is the desired
// one, so a processor starting with another default, or lagging behind a
// switch, never re-embeds catalogs back. Call it once, before Stop.
func (s *Service) StartReembedding(desired func(name string) string) error {
	if _, ok := s.cfg.Embedder.(Versions); !ok {
		return errors.New("catalog: re-embedding needs an Embedder that serves several versions (models.Registry.Direct)")
	}
	s.reembed.desired = desired
	s.reembed.working = map[string]bool{}
	s.reembed.wg.Add(1)
	go s.watchDefault()
	return nil
}

// Reembedded is how many products this processor has embedded again with a
// new default version.
func (s *Service) Reembedded() int64 { return s.reembed.done.Load() }

// watchDefault compares, every Config.ReembedCheck, each followed
// catalog's version with the default version, and re-embeds the catalogs
// that differ.
func (s *Service) watchDefault() {
	defer s.reembed.wg.Done()
	t := time.NewTicker(s.cfg.ReembedCheck)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		def := s.cfg.Embedder.Info()
		if def.Name == "" || s.reembed.desired(def.Name) != def.Version {
			continue // not converged to the desired state yet
		}
		s.mu.Lock()
		var todo []string
		for name, f := range s.cats {
			select {
			case <-f.ready:
			default:
				continue
			}
			if f.err != nil {
				continue
			}
			if _, m, pending := f.view(); m.Name == def.Name && (modelKey(m) != modelKey(def) || pending != "") {
				todo = append(todo, name)
			}
		}
		s.mu.Unlock()
		for _, name := range todo {
			s.startReembed(name, modelKey(def))
		}
	}
}

// startReembed re-embeds the catalog with target in the background unless
// this processor already does, or another holds the claim.
func (s *Service) startReembed(name, target string) {
	s.reembed.mu.Lock()
	defer s.reembed.mu.Unlock()
	if s.reembed.working[name] || s.ctx.Err() != nil {
		return
	}
	rev, err := s.claim(name)
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			s.cfg.Logger.Warn("catalog: claim the re-embedding (retried)", "catalog", name, "err", err)
		}
		return
	}
	s.reembed.working[name] = true
	s.reembed.wg.Add(1)
	go func() {
		defer s.reembed.wg.Done()
		err := s.reembedCatalog(name, target, &rev)
		if err != nil && s.ctx.Err() == nil {
			s.cfg.Logger.Error("catalog: re-embedding stopped; another check retries it", "catalog", name, "model", target, "err", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.reembed.kv.Delete(ctx, name, jetstream.LastRevision(rev))
		cancel()
		s.reembed.mu.Lock()
		delete(s.reembed.working, name)
		s.reembed.mu.Unlock()
	}()
}

func (s *Service) claim(name string) (uint64, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	if s.reembed.kv == nil {
		kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: claimBucket,
			Description: "simmatch: which processor re-embeds which catalog", TTL: s.cfg.ReembedClaimTTL,
			Replicas: s.cfg.Replicas, Storage: jetstream.FileStorage, MaxBytes: s.cfg.BucketMaxBytes})
		if err != nil {
			return 0, err
		}
		s.reembed.kv = kv
	}
	return s.reembed.kv.Create(ctx, name, []byte(s.owner()))
}

func (s *Service) owner() string {
	id, _ := s.nc.GetClientID()
	return s.cfg.NATS.Opts.Name + "/" + strconv.FormatUint(id, 10)
}

// reembedCatalog runs steps 2-4 above; rev is the claim's revision, renewed
// after every batch.
func (s *Service) reembedCatalog(name, target string, rev *uint64) error {
	ctx := s.ctx
	f, _, err := s.sync(ctx, name)
	if err != nil {
		return err
	}
	_, m, pending := f.view()
	active := modelKey(m)
	if active == target { // switched back before the end: stop embedding the other
		if pending != "" {
			return s.publishControl(ctx, name, control{Active: active}, 0)
		}
		return nil
	}
	vs := s.cfg.Embedder.(Versions)
	e, release, err := vs.Hold(ctx, target)
	if err != nil {
		return err
	}
	dims := e.Info().Dimensions
	release()
	if dims != f.model.Dimensions {
		return fmt.Errorf("%s has %d dimensions; catalog %s holds %d-dimension embeddings: drop and re-import it to change dimensions", target, dims, name, f.model.Dimensions)
	}
	if pending != target {
		if err := s.publishControl(ctx, name, control{Active: active, Pending: target}, 0); err != nil {
			return err
		}
	}
	// Followers start the target's matrix at the model record (begin): so
	// every product stored before it is stored again, even one that
	// carries a target embedding from an earlier switch.
	st, err := s.js.Stream(ctx, streamName(name))
	if err != nil {
		return err
	}
	cm, err := st.GetLastMsgForSubject(ctx, controlSubject(name))
	if err != nil {
		return fmt.Errorf("read the model record: %w", err)
	}
	var c control
	if err := json.Unmarshal(cm.Data, &c); err != nil || c.Pending != target {
		return fmt.Errorf("the model record changed to %s (pending %s) meanwhile", c.Active, c.Pending)
	}
	begin := cm.Sequence
	start := time.Now()
	s.cfg.Logger.Info("catalog: re-embedding", "catalog", name, "from", active, "to", target)
	from := uint64(1)
	for {
		end, missing, err := s.reembedPass(ctx, name, active, target, begin, from, f.model.Dimensions, rev)
		if err != nil {
			return err
		}
		if missing == 0 {
			err := s.publishControl(ctx, name, control{Active: target}, end)
			if err == nil {
				s.cfg.Logger.Info("catalog: re-embedded; searches use the new version", "catalog", name, "model", target, "time", time.Since(start).Round(time.Millisecond))
				return nil
			}
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
				return err
			}
		}
		from = end + 1
	}
}

// publishControl appends the model record; with expectLast > 0, only if
// the stream's last sequence is expectLast.
func (s *Service) publishControl(ctx context.Context, name string, c control, expectLast uint64) error {
	data, _ := json.Marshal(c)
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(streamName(name))}
	if expectLast > 0 {
		opts = append(opts, jetstream.WithExpectLastSequence(expectLast))
	}
	_, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: controlSubject(name), Data: data}, opts...)
	return err
}

type stale struct {
	seq uint64
	rec record
}

// reembedPass reads the stream from sequence from to its last sequence now
// (end) and stores again every product stored before begin or lacking
// target's embedding; missing counts them (0: the range is covered).
func (s *Service) reembedPass(ctx context.Context, name, active, target string, begin, from uint64, dims int, rev *uint64) (end uint64, missing int, err error) {
	st, err := s.js.Stream(ctx, streamName(name))
	if err != nil {
		return 0, 0, err
	}
	end = st.CachedInfo().State.LastSeq
	if end < from {
		return end, 0, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from})
	if err != nil {
		return 0, 0, err
	}
	msgs, err := cons.Messages()
	if err != nil {
		return 0, 0, err
	}
	defer msgs.Stop()
	var batch []stale
	for {
		m, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			return 0, 0, err
		}
		md, err := m.Metadata()
		if err != nil {
			return 0, 0, err
		}
		rec, err := decodeRecord(m.Subject(), m.Headers(), m.Data(), dims)
		if err == nil && rec.control == nil && !rec.deleted && (md.Sequence.Stream < begin || rec.vecs[target] == nil) {
			batch = append(batch, stale{md.Sequence.Stream, rec})
		}
		last := md.Sequence.Stream >= end
		if len(batch) == reembedBatch || (last && len(batch) > 0) {
			if err := s.reembedBatch(ctx, name, active, target, batch, rev); err != nil {
				return 0, 0, err
			}
			missing += len(batch)
			batch = batch[:0]
		}
		if last {
			return end, missing, nil
		}
	}
}

// reembedBatch embeds with target the products of the batch that lack it
// and stores each product again with its active and target embeddings,
// unless a newer record of it came meanwhile; then renews the claim.
func (s *Service) reembedBatch(ctx context.Context, name, active, target string, batch []stale, rev *uint64) error {
	var texts []string
	var need []int
	for i, b := range batch {
		if b.rec.vecs[target] == nil {
			texts = append(texts, b.rec.product.Description)
			need = append(need, i)
		}
	}
	if len(texts) > 0 {
		res, err := s.embedWith(ctx, target, embedding.Document, texts)
		if err != nil {
			return err
		}
		for j, i := range need {
			batch[i].rec.vecs[target] = res.Vectors[j]
		}
	}
	futs := make([]jetstream.PubAckFuture, 0, len(batch))
	for _, b := range batch {
		vecs := map[string][]float32{target: b.rec.vecs[target]}
		if v := b.rec.vecs[active]; v != nil {
			vecs[active] = v
		}
		msg, err := encodeRecord(name, b.rec.product, vecs)
		if err != nil {
			return err
		}
		fut, err := s.js.PublishMsgAsync(msg, jetstream.WithExpectStream(streamName(name)), jetstream.WithExpectLastSequencePerSubject(b.seq))
		if err != nil {
			return err
		}
		futs = append(futs, fut)
	}
	for _, fut := range futs {
		select {
		case <-fut.Ok():
			s.reembed.done.Add(1)
		case err := <-fut.Err():
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
				return err
			} // a newer upsert of the product: the next pass checks it
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r, err := s.reembed.kv.Update(ctx, name, []byte(s.owner()), *rev)
	if err != nil {
		return fmt.Errorf("renew the claim: %w", err)
	}
	*rev = r
	return nil
}
