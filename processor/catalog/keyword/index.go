package keyword

import (
	"math"
	"slices"
	"unsafe"
)

// BM25 parameters.
const (
	K1 = 1.2
	B  = 0.75
)

// compactMin is the fewest dead documents that trigger a compaction.
const compactMin = 1024

// Index is a BM25 inverted index over a catalog's rows: each row holds at
// most one document (a product's fields), and rows may be renumbered with
// Move as the catalog keeps its rows contiguous.
//
// Concurrency: Score, Terms, Len and Bytes only read and may run
// concurrently with each other; Set, Remove, Move and Compact need
// exclusive access (the catalog calls them under its write lock).
//
// Internally every Set gets a new document id, greater than all before it,
// so postings are appended in doc id order and never rewritten in place;
// rows and doc ids are mapped both ways. Remove (and a Set replacing a row)
// leaves its postings as tombstones, skipped by Score; Move only changes the
// two maps. When the dead documents reach a quarter of the live ones (and
// at least compactMin), the index compacts: it renumbers the live documents,
// re-encodes every posting list without the dead ones into one arena and
// drops the terms left with none. That costs O(postings) once per
// live/4 deletes, so the amortized cost of each change is O(its terms).
type Index struct {
	dict   dict
	lists  []plist // by term id
	rowDoc []int32 // row -> doc id, -1 for none
	docRow []int32 // doc id -> row, -1 for a dead document
	docLen []uint32

	live, dead int
	totalLen   int64 // sum of docLen over live documents

	arena      []byte // the posting lists' memory after the last compaction
	postBytes  int64  // capacity of posting lists outside the arena
	compactMin int
	scratch    []uint32
}

// plist is one term's posting list: (doc id delta, term frequency) pairs as
// uvarints, doc ids ascending. Dense lists take about 2 bytes a posting.
type plist struct {
	data []byte
	last uint32 // the last doc id appended
	n    uint32 // postings in data, dead ones included
}

// New returns an empty index.
func New() *Index {
	return &Index{dict: newDict(), compactMin: compactMin}
}

// Len is the number of rows holding a document.
func (x *Index) Len() int { return x.live }

// Set indexes the product at row, replacing what row held: its fields
// (description and metadata values) are tokenized as one document.
func (x *Index) Set(row int, fields ...string) {
	x.drop(row)
	ids := x.scratch[:0]
	for _, f := range fields {
		tokenize(f, func(t string) { ids = append(ids, x.dict.intern(t)) })
	}
	x.scratch = ids
	for len(x.lists) < x.dict.len() {
		x.lists = append(x.lists, plist{})
	}
	doc := uint32(len(x.docRow))
	x.docRow = append(x.docRow, int32(row))
	x.docLen = append(x.docLen, uint32(len(ids)))
	x.setRow(row, int32(doc))
	x.live++
	x.totalLen += int64(len(ids))
	slices.Sort(ids)
	for i := 0; i < len(ids); {
		j := i + 1
		for j < len(ids) && ids[j] == ids[i] {
			j++
		}
		x.appendPosting(ids[i], doc, uint64(j-i))
		i = j
	}
	x.maybeCompact()
}

func (x *Index) appendPosting(term, doc uint32, tf uint64) {
	l := &x.lists[term]
	before := cap(l.data)
	inArena := before > 0 && x.owns(l.data)
	l.data = appendUvarint(appendUvarint(l.data, uint64(doc-l.last)), tf)
	if c := cap(l.data); c != before {
		if !inArena {
			x.postBytes -= int64(before)
		}
		x.postBytes += int64(c)
	}
	l.last = doc
	l.n++
}

// owns reports whether b lies in the arena.
func (x *Index) owns(b []byte) bool {
	if cap(x.arena) == 0 {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	a := uintptr(unsafe.Pointer(unsafe.SliceData(x.arena)))
	return p >= a && p < a+uintptr(cap(x.arena))
}

func (x *Index) setRow(row int, doc int32) {
	for len(x.rowDoc) <= row {
		x.rowDoc = append(x.rowDoc, -1)
	}
	x.rowDoc[row] = doc
}

// drop kills row's document, if any, without compacting.
func (x *Index) drop(row int) {
	if row < 0 || row >= len(x.rowDoc) || x.rowDoc[row] < 0 {
		if row < 0 {
			panic("keyword: negative row")
		}
		return
	}
	doc := x.rowDoc[row]
	x.rowDoc[row] = -1
	x.docRow[doc] = -1
	x.live--
	x.dead++
	x.totalLen -= int64(x.docLen[doc])
}

// Remove drops the document at row.
func (x *Index) Remove(row int) {
	x.drop(row)
	x.trimRows()
	x.maybeCompact()
}

// Move says the product at row from now lives at row to (the catalog moved
// its last row into a deleted one); whatever to held is dropped.
func (x *Index) Move(from, to int) {
	if from == to {
		return
	}
	x.drop(to)
	doc := int32(-1)
	if from < len(x.rowDoc) {
		doc = x.rowDoc[from]
		x.rowDoc[from] = -1
	}
	if doc >= 0 {
		x.setRow(to, doc)
		x.docRow[doc] = int32(to)
	}
	x.trimRows()
	x.maybeCompact()
}

// trimRows forgets trailing empty rows, so a shrinking catalog shrinks rowDoc.
func (x *Index) trimRows() {
	n := len(x.rowDoc)
	for n > 0 && x.rowDoc[n-1] < 0 {
		n--
	}
	x.rowDoc = x.rowDoc[:n]
}

func (x *Index) maybeCompact() {
	if x.dead >= x.compactMin && 4*x.dead >= x.live {
		x.Compact()
	}
}

// Compact drops the dead documents' postings now, renumbers the live
// documents, packs every posting list into one exactly sized arena and
// forgets terms no live document holds. It runs by itself as documents die;
// calling it after a bulk load gives back the slack of growing lists.
func (x *Index) Compact() {
	newID := make([]int32, len(x.docRow))
	docRow := make([]int32, 0, x.live)
	docLen := make([]uint32, 0, x.live)
	for d, r := range x.docRow {
		newID[d] = -1
		if r >= 0 {
			newID[d] = int32(len(docRow))
			docRow = append(docRow, r)
			docLen = append(docLen, x.docLen[d])
		}
	}
	var size int
	for i := range x.lists {
		size += len(x.lists[i].data) // renumbering never lengthens a list
	}
	arena := make([]byte, 0, size)
	d := newDict()
	lists := make([]plist, 0, len(x.lists))
	for t := range x.lists {
		l := &x.lists[t]
		start := len(arena)
		var nl plist
		var doc uint32
		for p := l.data; len(p) > 0; {
			delta, n1 := uvarint(p)
			tf, n2 := uvarint(p[n1:])
			p = p[n1+n2:]
			doc += uint32(delta)
			if nd := newID[doc]; nd >= 0 {
				arena = appendUvarint(appendUvarint(arena, uint64(uint32(nd)-nl.last)), tf)
				nl.last = uint32(nd)
				nl.n++
			}
		}
		if nl.n == 0 {
			continue
		}
		nl.data = arena[start:len(arena):len(arena)]
		d.intern(string(x.dict.termBytes(uint32(t))))
		lists = append(lists, nl)
	}
	for r := range x.rowDoc {
		if doc := x.rowDoc[r]; doc >= 0 {
			x.rowDoc[r] = newID[doc]
		}
	}
	x.dict, x.lists, x.docRow, x.docLen = d, lists, docRow, docLen
	x.arena, x.postBytes, x.dead = arena, 0, 0
}

// Bytes is the memory the index holds, counted as the capacity of the
// slices it owns: the term dictionary (term bytes, offsets, hash table),
// the posting lists (32-byte headers plus their encoded bytes, the
// compaction arena counted whole), the row<->doc maps and the document
// lengths (4 bytes each). It leaves out the Go allocator's rounding and,
// until the next compaction, arena bytes of lists that grew out of it are
// counted twice rather than not at all.
func (x *Index) Bytes() int64 {
	return x.dict.bytes() + 32*int64(cap(x.lists)) + int64(cap(x.arena)) + x.postBytes +
		4*int64(cap(x.rowDoc)+cap(x.docRow)+cap(x.docLen)+cap(x.scratch))
}

// cursor walks one query term's posting list in Score.
type cursor struct {
	data []byte
	doc  uint32 // current doc id; math.MaxUint32 when exhausted
	tf   float64
	idf  float64
	id   uint32
}

func (c *cursor) next() {
	if len(c.data) == 0 {
		c.doc = math.MaxUint32
		return
	}
	delta, n1 := uvarint(c.data)
	tf, n2 := uvarint(c.data[n1:])
	c.data = c.data[n1+n2:]
	c.doc += uint32(delta)
	c.tf = float64(tf)
}

// Score calls fn for every row holding at least one of the query's terms
// with its BM25 score, the sum over the query's distinct terms t it holds of
//
//	idf(t) * tf / (tf + K1*(1 - B + B*dl/avgdl))
//	idf(t) = ln(1 + (N - df(t) + 0.5)/(df(t) + 0.5))
//
// (Lucene's BM25Similarity, without its lossy length encoding): tf is the
// term's count in the document, dl the document's length in terms, avgdl
// the mean over the N live documents, df(t) the documents holding t. Rows
// come in no particular order. Score reads the posting lists of the query's
// terms once merged in doc id order (twice while dead documents await
// compaction, to count df); it allocates nothing for queries of up to 16
// distinct terms beyond lowercasing uppercase ones.
func (x *Index) Score(query string, fn func(row int, score float64)) {
	var buf [16]cursor
	cs := buf[:0]
	tokenize(query, func(t string) {
		id, ok := x.dict.lookup(t)
		if !ok {
			return
		}
		for i := range cs {
			if cs[i].id == id {
				return
			}
		}
		cs = append(cs, cursor{data: x.lists[id].data, id: id})
	})
	if len(cs) == 0 || x.live == 0 {
		return
	}
	n := float64(x.live)
	avgdl := float64(x.totalLen) / n
	for i := range cs {
		c := &cs[i]
		df := x.lists[c.id].n
		if x.dead > 0 {
			df = 0
			for c.next(); c.doc != math.MaxUint32; c.next() {
				if x.docRow[c.doc] >= 0 {
					df++
				}
			}
			c.data, c.doc = x.lists[c.id].data, 0
		}
		c.idf = math.Log(1 + (n-float64(df)+0.5)/(float64(df)+0.5))
		c.next()
	}
	for {
		doc := uint32(math.MaxUint32)
		for i := range cs {
			doc = min(doc, cs[i].doc)
		}
		if doc == math.MaxUint32 {
			return
		}
		row := x.docRow[doc]
		var norm, s float64
		if row >= 0 {
			norm = K1 * (1 - B + B*float64(x.docLen[doc])/avgdl)
		}
		for i := range cs {
			c := &cs[i]
			if c.doc == doc {
				if row >= 0 {
					s += c.idf * c.tf / (c.tf + norm)
				}
				c.next()
			}
		}
		if row >= 0 {
			fn(int(row), s)
		}
	}
}

// Terms returns the query's distinct terms in order of first occurrence, as
// Score uses them (whether or not the index holds them).
func (x *Index) Terms(query string) []string {
	return Terms(query)
}

// Terms returns text's distinct terms in order of first occurrence.
func Terms(text string) []string {
	var out []string
	tokenize(text, func(t string) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	})
	return out
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// uvarint decodes a uvarint written by appendUvarint (trusted input).
func uvarint(b []byte) (uint64, int) {
	if b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	var v uint64
	var s uint
	for i, c := range b {
		if c < 0x80 {
			return v | uint64(c)<<s, i + 1
		}
		v |= uint64(c&0x7f) << s
		s += 7
	}
	return v, len(b)
}

// Hit is a row and its score.
type Hit struct {
	Row   int
	Score float64
}

// Top appends to dst[:0] the k best-scoring rows for query, best first
// (ties by row), keeping them in a k-sized min-heap while Score runs.
func (x *Index) Top(query string, k int, dst []Hit) []Hit {
	h := dst[:0]
	if k <= 0 {
		return h
	}
	worse := func(a, b Hit) bool { return a.Score < b.Score || a.Score == b.Score && a.Row > b.Row }
	down := func(i int) {
		for {
			c := 2*i + 1
			if c >= len(h) {
				return
			}
			if c+1 < len(h) && worse(h[c+1], h[c]) {
				c++
			}
			if !worse(h[c], h[i]) {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	x.Score(query, func(row int, score float64) {
		hit := Hit{row, score}
		if len(h) < k {
			h = append(h, hit)
			for i := len(h) - 1; i > 0; {
				p := (i - 1) / 2
				if !worse(h[i], h[p]) {
					break
				}
				h[i], h[p] = h[p], h[i]
				i = p
			}
			return
		}
		if worse(h[0], hit) {
			h[0] = hit
			down(0)
		}
	})
	slices.SortFunc(h, func(a, b Hit) int {
		if worse(a, b) {
			return 1
		}
		if worse(b, a) {
			return -1
		}
		return 0
	})
	return h
}
