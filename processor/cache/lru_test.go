package cache

import (
	"fmt"
	"runtime"
	"testing"
)

// The bytes the cache counts must cover what its entries really cost on the
// Go heap (texts, vectors, entries, map), without overstating it much.
func TestBytesAreHonest(t *testing.T) {
	const n, dims = 20000, 384
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l := newLRU(1<<40, 8)
	for i := range n {
		text := fmt.Sprintf("%08d a product description of about one hundred bytes, as catalogs have them......", i)
		l.store(key{"all-MiniLM-L6-v2\x001", text}, make([]float32, dims), 20)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(l)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	counted := l.stats().Bytes
	t.Logf("%d entries: counted %d bytes, heap grew %d (%.2f)", n, counted, heap, float64(heap)/float64(counted))
	if heap > counted*105/100 {
		t.Fatalf("the heap grew by %d bytes but the cache counts %d: it undercounts", heap, counted)
	}
	if heap < counted*75/100 {
		t.Fatalf("the heap grew by %d bytes but the cache counts %d: it overcounts", heap, counted)
	}
}
