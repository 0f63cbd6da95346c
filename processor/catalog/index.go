package catalog

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/catalog/keyword"
	"github.com/simmatch/simmatch/processor/internal/vecmath"
)

// errClosed is returned to waiters of an index whose catalog stopped being
// followed (dropped, or the service stopped).
var errClosed = errors.New("catalog: no longer followed")

// Index is a catalog in memory: its products, their embeddings as one
// contiguous row-major float32 matrix and their keyword index, kept in step
// with the catalog's stream. It is safe for concurrent use: searches share a
// read lock, applying a change takes the write lock.
type Index struct {
	dims int

	mu       sync.RWMutex
	matrix   []float32 // rows x dims
	norms    []float64 // one per row, vecmath.Norm of the row
	products []contracts.Product
	kw       *keyword.Index // BM25 over each row's description and metadata values
	rows     map[string]int // product id -> row
	applied  uint64         // the last stream sequence applied
	changed  chan struct{}  // closed and replaced at every apply
	closed   bool

	batch   sync.Mutex // guards passing and next
	passing bool       // a search pass runs
	next    *batch     // the searches that wait for the next pass
	passes  atomic.Int64 // passes run, for tests and benchmarks
	solo    bool         // every search runs its own pass (benchmarks compare)
}

// NewIndex returns an empty index for embeddings of dims dimensions.
func NewIndex(dims int) *Index {
	return &Index{dims: dims, rows: map[string]int{}, changed: make(chan struct{}), kw: keyword.New()}
}

// KeywordBytes is the memory the keyword index takes.
func (x *Index) KeywordBytes() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.kw.Bytes()
}

// keywordFields are what the keyword index holds of a product: its
// description and its metadata values, in key order.
func keywordFields(p contracts.Product) []string {
	fields := make([]string, 0, 1+len(p.Metadata))
	fields = append(fields, p.Description)
	for _, k := range slices.Sorted(maps.Keys(p.Metadata)) {
		fields = append(fields, p.Metadata[k])
	}
	return fields
}

// Len is the number of products.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.products)
}

// MatrixBytes is the memory the embedding matrix and norms take.
func (x *Index) MatrixBytes() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return int64(len(x.products)) * int64(x.dims*4+8)
}

// Applied is the last stream sequence applied.
func (x *Index) Applied() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.applied
}

// Has reports whether id is in the index.
func (x *Index) Has(id string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.rows[id]
	return ok
}

// Upsert adds or replaces a product at stream sequence seq. vec must have
// the index's dimensions; the index keeps its own copy.
func (x *Index) Upsert(seq uint64, p contracts.Product, vec []float32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if r, ok := x.rows[p.ID]; ok {
		copy(x.matrix[r*x.dims:(r+1)*x.dims], vec)
		x.norms[r] = vecmath.Norm(vec)
		x.products[r] = p
		x.kw.Set(r, keywordFields(p)...)
	} else {
		x.rows[p.ID] = len(x.products)
		x.kw.Set(len(x.products), keywordFields(p)...)
		x.matrix = append(x.matrix, vec[:x.dims]...)
		x.norms = append(x.norms, vecmath.Norm(vec))
		x.products = append(x.products, p)
	}
	x.advance(seq)
}

// Delete removes a product at stream sequence seq; the last row moves into
// its place, so rows stay contiguous.
func (x *Index) Delete(seq uint64, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if r, ok := x.rows[id]; ok {
		last := len(x.products) - 1
		x.kw.Remove(r)
		if r != last {
			x.kw.Move(last, r)
			copy(x.matrix[r*x.dims:(r+1)*x.dims], x.matrix[last*x.dims:])
			x.norms[r] = x.norms[last]
			x.products[r] = x.products[last]
			x.rows[x.products[r].ID] = r
		}
		x.matrix = x.matrix[:last*x.dims]
		x.norms = x.norms[:last]
		x.products[last] = contracts.Product{}
		x.products = x.products[:last]
		delete(x.rows, id)
	}
	x.advance(seq)
}

// Skip records that seq was seen without changing a product.
func (x *Index) Skip(seq uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.advance(seq)
}

func (x *Index) advance(seq uint64) {
	if seq > x.applied {
		x.applied = seq
	}
	if x.closed { // a message applied while the index closes: its waiters were woken by close
		return
	}
	close(x.changed)
	x.changed = make(chan struct{})
}

// close wakes every waiter with errClosed.
func (x *Index) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.closed {
		x.closed = true
		close(x.changed)
	}
}

// WaitApplied blocks until the index has applied stream sequence seq, the
// index is closed, or ctx ends.
func (x *Index) WaitApplied(ctx context.Context, seq uint64) error {
	for {
		x.mu.RLock()
		applied, ch, closed := x.applied, x.changed, x.closed
		x.mu.RUnlock()
		if applied >= seq {
			return nil
		}
		if closed {
			return errClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Get returns the product with id.
func (x *Index) Get(id string) (contracts.Product, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	r, ok := x.rows[id]
	if !ok {
		return contracts.Product{}, false
	}
	return x.products[r], true
}
