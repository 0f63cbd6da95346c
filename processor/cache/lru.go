package cache

import (
	"hash/maphash"
	"strings"
	"sync"
)

// key identifies an embedding: model is "name\x00version" (one string shared
// by every entry of that model), text the exact text.
type key struct{ model, text string }

// entryOverhead is what one entry costs beyond its text and its vector: the
// entry itself (key and vector headers, token count, list links, size: 88
// bytes, allocated as 96) and its
// slot in the shard's map (a 40-byte key+pointer slot plus control bytes, up
// to twice that just after the map grows). TestBytesAreHonest checks the sum
// against the Go heap.
const entryOverhead = 96 + 96

// entry is one cached embedding with its text's token count, linked into
// its shard's recency list.
type entry struct {
	key        key
	vec        []float32
	tokens     int
	size       int64
	prev, next *entry
}

// entrySize is the bytes an entry for text with a dims-long vector counts.
func entrySize(text string, dims int) int64 {
	return int64(len(text)) + 4*int64(dims) + entryOverhead
}

// flight is an embedding being computed by one caller (the leader) that
// others asking for the same key wait for instead of computing it again.
type flight struct {
	done   chan struct{}
	vec    []float32 // set before done is closed; nil when err is set
	tokens int
	err    error
}

// shard is one lock's worth of the LRU: a map, a recency list (head = most
// recently used) and a byte budget. Misses being computed are in flights.
type shard struct {
	mu        sync.Mutex
	entries   map[key]*entry
	flights   map[key]*flight
	head      *entry
	tail      *entry
	bytes     int64
	capacity  int64
	evictions int64
	hits      int64
	misses    int64
}

// lru is a byte-bounded LRU split into shards by the hash of the key, so
// concurrent requests rarely wait on the same lock. Eviction is LRU within a
// shard (an approximation of a global LRU, exact with one shard).
type lru struct {
	seed   maphash.Seed
	shards []shard
}

func newLRU(capacity int64, shards int) *lru {
	l := &lru{seed: maphash.MakeSeed(), shards: make([]shard, shards)}
	for i := range l.shards {
		s := &l.shards[i]
		s.entries = make(map[key]*entry)
		s.flights = make(map[key]*flight)
		s.capacity = capacity / int64(shards)
		if int64(i) < capacity%int64(shards) { // the shards add up to capacity exactly
			s.capacity++
		}
	}
	return l
}

func (l *lru) shard(k key) *shard {
	if len(l.shards) == 1 {
		return &l.shards[0]
	}
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(k.model)
	h.WriteString(k.text)
	return &l.shards[h.Sum64()%uint64(len(l.shards))]
}

// lookup returns the cached vector of k and its token count (a hit), or
// else the flight already computing it, or else registers a new flight that
// the caller now leads and must finish with complete.
func (l *lru) lookup(k key) (vec []float32, tokens int, wait *flight, lead *flight) {
	s := l.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[k]; ok {
		s.hits++
		s.moveToFront(e)
		return e.vec, e.tokens, nil, nil
	}
	s.misses++
	if f, ok := s.flights[k]; ok {
		return nil, 0, f, nil
	}
	f := &flight{done: make(chan struct{})}
	s.flights[k] = f
	return nil, 0, nil, f
}

// complete ends the flight f of k: with vec and its token count (stored,
// and handed to the waiters) or with err (the waiters compute it themselves).
func (l *lru) complete(k key, f *flight, vec []float32, tokens int, err error) {
	s := l.shard(k)
	s.mu.Lock()
	if s.flights[k] == f {
		delete(s.flights, k)
	}
	if err == nil {
		s.put(k, vec, tokens)
	}
	s.mu.Unlock()
	f.vec, f.tokens, f.err = vec, tokens, err
	close(f.done)
}

// put stores vec and its token count under k, evicting the least recently used entries of the
// shard until it fits. An entry larger than the shard's budget is not kept.
// The caller holds s.mu; vec must not be modified afterwards.
func (s *shard) put(k key, vec []float32, tokens int) {
	size := entrySize(k.text, len(vec))
	if size > s.capacity {
		return
	}
	if e, ok := s.entries[k]; ok { // computed twice (a waiter's retry): keep one
		s.moveToFront(e)
		return
	}
	for s.bytes+size > s.capacity && s.tail != nil {
		s.remove(s.tail)
		s.evictions++
	}
	// Clone the text so the entry does not pin the request that carried it.
	e := &entry{key: key{model: k.model, text: strings.Clone(k.text)}, vec: vec, tokens: tokens, size: size}
	s.entries[e.key] = e
	s.pushFront(e)
	s.bytes += size
}

func (s *shard) remove(e *entry) {
	s.unlink(e)
	delete(s.entries, e.key)
	s.bytes -= e.size
}

func (s *shard) pushFront(e *entry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *shard) moveToFront(e *entry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}

func (l *lru) stats() LocalStats {
	var st LocalStats
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		st.Hits += s.hits
		st.Misses += s.misses
		st.Evictions += s.evictions
		st.Bytes += s.bytes
		st.Entries += int64(len(s.entries))
		st.CapacityBytes += s.capacity
		s.mu.Unlock()
	}
	return st
}

// store puts vec and its token count under k outside any flight.
func (l *lru) store(k key, vec []float32, tokens int) {
	s := l.shard(k)
	s.mu.Lock()
	s.put(k, vec, tokens)
	s.mu.Unlock()
}
