package catalog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor/catalog/keyword"
	"github.com/simmatch/simmatch/processor/internal/rowfile"
	"github.com/simmatch/simmatch/processor/internal/vecmath"
)

// errClosed is returned to waiters of an index whose catalog stopped being
// followed (dropped, or the service stopped).
var errClosed = errors.New("catalog: no longer followed")

// Index is a catalog in memory: its products, their embeddings as one
// contiguous row-major matrix and their keyword index, kept in step with the
// catalog's stream. It is safe for concurrent use: searches share a read
// lock, applying a change takes the write lock.
//
// The matrix is float32 (NewIndex), or int8 with one scale per row
// (NewInt8Index): a quarter of the memory, scanned first; the best
// candidates are then rescored exactly from the float32 rows, which live in
// a file (rowfile) rather than in memory.
type Index struct {
	dims int

	mu       sync.RWMutex
	matrix   []float32 // rows x dims; nil for an int8 index
	q8       []int8    // rows x dims, an int8 index's matrix
	scales   []float32 // one per row of q8: row ~ q8 row x scale
	exact    *rowfile.File
	errMu    sync.Mutex
	fileErr  error     // the first error of the rows file: searches answer it
	norms    []float64 // one per row, vecmath.Norm of the float32 row
	products []contracts.Product
	kw       *keyword.Index // BM25 over each row's description and metadata values
	rows     map[string]int // product id -> row
	applied  uint64         // the last stream sequence applied
	changed  chan struct{}  // closed and replaced at every apply
	closed   bool

	batch   sync.Mutex   // guards passing and next
	passing bool         // a search pass runs
	next    *batch       // the searches that wait for the next pass
	passes  atomic.Int64 // passes run, for tests and benchmarks
	solo    bool         // every search runs its own pass (benchmarks compare)
}

// NewIndex returns an empty index for embeddings of dims dimensions.
func NewIndex(dims int) *Index {
	return &Index{dims: dims, rows: map[string]int{}, changed: make(chan struct{}), kw: keyword.New()}
}

// NewInt8Index returns an empty int8 index whose float32 rows live in an
// unlinked file in dir (os.TempDir() when ""; it should be on a disk, not a
// tmpfs, or the rows are in memory after all). The file is closed when the
// index is no longer reachable.
func NewInt8Index(dims int, dir string) (*Index, error) {
	f, err := rowfile.Create(dir, dims)
	if err != nil {
		return nil, fmt.Errorf("catalog: int8 index: %w", err)
	}
	x := NewIndex(dims)
	x.exact = f
	runtime.AddCleanup(x, func(f *rowfile.File) { _ = f.Close() }, f)
	return x, nil
}

// Int8 reports whether the index scans an int8 matrix.
func (x *Index) Int8() bool { return x.exact != nil }

// Err is the first error of an int8 index's rows file, which makes its
// exact scores unavailable.
func (x *Index) Err() error {
	x.errMu.Lock()
	defer x.errMu.Unlock()
	return x.fileErr
}

// fileFailed records the first error of the rows file; reads fail under
// the read lock, so it has a lock of its own.
func (x *Index) fileFailed(err error) {
	if err == nil {
		return
	}
	x.errMu.Lock()
	defer x.errMu.Unlock()
	if x.fileErr == nil {
		x.fileErr = fmt.Errorf("catalog: the int8 index's file of exact rows: %w", err)
	}
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

// MatrixBytes is the memory the embedding matrix and norms take (an int8
// index: the int8 matrix, scales and norms; its exact rows are in a file).
func (x *Index) MatrixBytes() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.Int8() {
		return int64(len(x.products)) * int64(x.dims+4+8)
	}
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
	vec = vec[:x.dims]
	r, ok := x.rows[p.ID]
	if !ok {
		r = len(x.products)
		x.rows[p.ID] = r
		x.norms = append(x.norms, 0)
		x.products = append(x.products, contracts.Product{})
		if x.Int8() {
			x.q8 = append(x.q8, make([]int8, x.dims)...)
			x.scales = append(x.scales, 0)
		} else {
			x.matrix = append(x.matrix, make([]float32, x.dims)...)
		}
	}
	if x.Int8() {
		x.scales[r] = vecmath.QuantizeInt8(x.q8[r*x.dims:(r+1)*x.dims], vec)
		x.fileFailed(x.exact.Write(r, vec))
	} else {
		copy(x.matrix[r*x.dims:(r+1)*x.dims], vec)
	}
	x.norms[r] = vecmath.Norm(vec)
	x.products[r] = p
	x.kw.Set(r, keywordFields(p)...)
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
			if x.Int8() {
				copy(x.q8[r*x.dims:(r+1)*x.dims], x.q8[last*x.dims:])
				x.scales[r] = x.scales[last]
				x.fileFailed(x.exact.Move(last, r))
			} else {
				copy(x.matrix[r*x.dims:(r+1)*x.dims], x.matrix[last*x.dims:])
			}
			x.norms[r] = x.norms[last]
			x.products[r] = x.products[last]
			x.rows[x.products[r].ID] = r
		}
		if x.Int8() {
			x.q8 = x.q8[:last*x.dims]
			x.scales = x.scales[:last]
			x.fileFailed(x.exact.Truncate(last))
		} else {
			x.matrix = x.matrix[:last*x.dims]
		}
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
