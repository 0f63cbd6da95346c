package bridge

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/bridge/security"
	"github.com/simmatch/simmatch/contracts"
)

// The quota gate: the bridge, the tenants' door, refuses a catalog write
// or a job that would pass one of its tenant's Quotas before any work is
// done. Processors stay tenant-unaware. A tenant's check and write are
// done one at a time in a bridge (tenantLocks), so two requests of one
// tenant never both pass a quota they exceed together; several bridges
// check independently, so a tenant may pass a quota by at most one write
// (or job) per bridge.

// jobQuotaRetryAfter is the wait a refusal by the jobs quota asks for: a
// job runs for seconds at least.
const jobQuotaRetryAfter = 5 * time.Second

// quotaGate holds what checking quotas needs.
type quotaGate struct {
	quotas QuotaSource
	js     jetstream.JetStream
	locks  tenantLocks
}

func newQuotaGate(q QuotaSource, js jetstream.JetStream) *quotaGate {
	return &quotaGate{quotas: q, js: js, locks: tenantLocks{m: map[string]*tenantLock{}}}
}

// quotaOf is the caller's quota: NoQuota for admins, with authentication
// off, or without a quotas file.
func (s *Server) quotaOf(t tenancy) Quota {
	if s.quota == nil || t.p == nil || t.admin() {
		return NoQuota
	}
	return s.quota.quotas.Current().For(t.p.Tenant)
}

// quotaError is the refusal of a request that would pass the tenant's
// quota name=limit: used is what the tenant has (described by what), adding
// what the request adds.
func quotaError(tenant, name string, limit, used int64, what string, adding int64) *contracts.Error {
	return &contracts.Error{Code: contracts.CodeQuotaExceeded, Field: name, Limit: int(limit),
		Message: fmt.Sprintf("tenant %s: quota %s=%d would be exceeded (%s %s + %s in this request)",
			tenant, name, limit, thousands(used), what, thousands(adding))}
}

// thousands writes n with a comma between each group of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	if neg {
		return "-" + string(b)
	}
	return string(b)
}

// admitWrite checks an upsert of products products, of about bytes bytes
// of text, into the caller's catalog cat against the tenant's storage
// quotas. On success the caller holds the tenant's write turn until it
// calls release, after the write: the next write's check sees this one's
// products. A bulk upsert counts each of its rows as a new product (an
// upper bound: rows replacing stored ids count too).
func (s *Server) admitWrite(ctx context.Context, t tenancy, cat string, products, bytes int64) (release func(), err error) {
	q := s.quotaOf(t)
	if !q.storage() {
		return func() {}, nil
	}
	tenant := t.p.Tenant
	unlock, err := s.quota.locks.lock(ctx, "catalogs/"+tenant)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	u, err := s.storageUse(ctx, t, cat)
	if err != nil {
		return nil, err
	}
	if !u.exists && q.Catalogs != Unlimited && u.catalogs+1 > q.Catalogs {
		return nil, quotaError(tenant, quotaCatalogs, q.Catalogs, u.catalogs, "stored", 1)
	}
	if q.Products != Unlimited && u.products+products > q.Products {
		return nil, quotaError(tenant, quotaProducts, q.Products, u.products, "stored", products)
	}
	// The embeddings of a new catalog are not known before a processor
	// chooses its model: its text alone is counted ahead.
	bytes += products * 4 * int64(u.dims)
	if q.Bytes != Unlimited && u.bytes+bytes > q.Bytes {
		return nil, quotaError(tenant, quotaBytes, q.Bytes, u.bytes, "bytes stored", bytes)
	}
	return unlock, nil
}

// storageUse is what a tenant's catalogs hold, and whether cat is one of them.
type storageUse struct {
	catalogs, products, bytes int64
	exists                    bool
	dims                      int // cat's model's dimensions, when it exists
}

// storageUse reads the tenant's catalogs as GET /v1/catalogs lists them:
// products from a processor, bytes from the streams' JetStream info. A
// catalog a processor has not loaded (beyond its memory budget) counts
// its stream's subjects as products: an upper bound, as deleted products
// keep their subject until the catalog is dropped.
func (s *Server) storageUse(ctx context.Context, t tenancy, cat string) (storageUse, error) {
	var u storageUse
	resp, err := s.client.ListCatalogs(ctx, &contracts.ListRequest{RequestID: infoFrom(ctx).id})
	if err != nil {
		return u, err
	}
	for _, c := range resp.Catalogs {
		name, ok := t.unqualify(c.Name)
		if !ok {
			continue
		}
		u.catalogs++
		u.bytes += int64(c.StoredBytes)
		products := int64(c.Products)
		if c.Matrix == "not_loaded" {
			st, err := s.quota.js.Stream(ctx, contracts.CatalogStream(c.Name))
			if err != nil {
				return u, contracts.Errorf(contracts.CodeInternal, "quota: catalog %s: %v", name, err)
			}
			products = int64(st.CachedInfo().State.NumSubjects)
		}
		u.products += products
		if name == cat {
			u.exists, u.dims = true, c.Model.Dimensions
		}
	}
	return u, nil
}

// upsertBytes is the text an upsert stores: ids, descriptions, metadata.
func upsertBytes(ps []contracts.Product) int64 {
	var n int64
	for _, p := range ps {
		n += int64(len(p.ID) + len(p.Description))
		for k, v := range p.Metadata {
			n += int64(len(k) + len(v))
		}
	}
	return n
}

// admitJob checks one more job of the caller against the tenant's jobs
// quota. On success the caller holds the tenant's job turn until it calls
// release, once the job's entry exists (the next check counts it).
func (s *Server) admitJob(ctx context.Context, t tenancy) (release func(), err error) {
	q := s.quotaOf(t)
	if q.Jobs == Unlimited {
		return func() {}, nil
	}
	tenant := t.p.Tenant
	release, err = s.quota.locks.lock(ctx, "jobs/"+tenant)
	if err != nil {
		return nil, err
	}
	n, err := s.jobs.ActiveFor(ctx, tenant)
	if err != nil {
		release()
		return nil, err
	}
	if int64(n)+1 > q.Jobs {
		release()
		e := quotaError(tenant, quotaJobs, q.Jobs, int64(n), "submitting, queued or running", 1)
		e.Message += "; retry when one ends, or cancel one"
		e.RetryAfterMs = int(jobQuotaRetryAfter / time.Millisecond)
		return nil, e
	}
	return release, nil
}

// uploadLimit is the largest job body the caller may send, of a route
// whose own limit is limit, and the error that refuses a larger one: the
// upload quota's when it is the lower, else tooLarge.
func (s *Server) uploadLimit(r *http.Request, t tenancy, limit int, tooLarge *contracts.Error) (int, *contracts.Error) {
	q := s.quotaOf(t)
	if q.Upload == Unlimited || q.Upload >= int64(limit) {
		return limit, tooLarge
	}
	e := quotaError(t.p.Tenant, quotaUpload, q.Upload, 0, "", 0)
	if r.ContentLength > q.Upload {
		e.Message = fmt.Sprintf("tenant %s: quota upload=%d would be exceeded (a job body of %s bytes in this request)", t.p.Tenant, q.Upload, thousands(r.ContentLength))
	} else {
		e.Message = fmt.Sprintf("tenant %s: quota upload=%d would be exceeded (a job body of more than %s bytes in this request)", t.p.Tenant, q.Upload, thousands(q.Upload))
	}
	return int(q.Upload), e
}

// tenantLocks serialise a tenant's quota check and write within the bridge.
type tenantLocks struct {
	mu sync.Mutex
	m  map[string]*tenantLock
}

type tenantLock struct {
	turn  chan struct{} // holds a token while the lock is held
	users int           // holders and waiters: the entry goes when none is left
}

// lock takes key's lock, or gives up when ctx ends (the caller left or its
// deadline passed); unlock gives it back.
func (l *tenantLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	l.mu.Lock()
	tl := l.m[key]
	if tl == nil {
		tl = &tenantLock{turn: make(chan struct{}, 1)}
		l.m[key] = tl
	}
	tl.users++
	l.mu.Unlock()
	done := func() {
		l.mu.Lock()
		if tl.users--; tl.users == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
	select {
	case tl.turn <- struct{}{}:
	case <-ctx.Done():
		done()
		return nil, &contracts.Error{Code: contracts.CodeTimeout, Message: "quota: the tenant's earlier request still held its turn at the deadline"}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-tl.turn
			done()
		})
	}, nil
}

// tenantRateLimited takes a token from the caller's tenant's bucket (the
// quota's rate=, shared by all the tenant's keys and tokens) and, when
// there is none, answers 429 rate_limited with Retry-After (the body
// unread: writeRefusal) and reports true. Admins, authentication off and
// tenants without a rate pass.
func (s *Server) tenantRateLimited(w http.ResponseWriter, r *http.Request) bool {
	t := tenancyOf(r.Context())
	lim := s.quotaOf(t).Rate
	if lim.Rate <= 0 {
		return false
	}
	ok, wait := s.limiter.Allow("tenant/"+t.p.Tenant, lim)
	if ok {
		return false
	}
	after := security.RetryAfterSeconds(wait)
	w.Header().Set("Retry-After", strconv.Itoa(after))
	e := contracts.Errorf(contracts.CodeRateLimited, "tenant %s: rate limit of %g requests/s (burst %d) exceeded; retry in %d s",
		t.p.Tenant, lim.Rate, int(lim.BurstSize()), after)
	e.Field = quotaRate
	writeRefusal(w, r, e)
	return true
}
