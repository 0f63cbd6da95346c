// Package keyword is a small BM25 inverted index over a catalog's rows, kept
// in step with them (Set, Remove, Move) for keyword and hybrid search. It is
// pure Go with no dependencies.
//
// # Tokenizer
//
// A token is a maximal run of letters, digits and combining marks (any
// script: "Crème", "電動ドリル"), joined by '-', '/', '.', '_' or an
// apostrophe (') where the joiner sits between two such runes; everything
// else separates. Tokens are lowercased with Unicode rules. Identifiers
// stay whole:
//
//	"DCD771C2"      -> dcd771c2
//	"20V"           -> 20v
//	"Hello, world!" -> hello, world
//	"1.5 kg"        -> 1.5, kg
//	"3/8-inch"      -> 3/8-inch, 3, 8, inch
//
// A compound token (one with joiners) is followed by its parts, split at
// every joiner except a '.' between two digits, so "inch" finds "3/8-inch"
// and "v1.5-pro" gives v1.5-pro, v1.5, pro; a decimal like "1.5" has no
// parts. Terms over MaxTermBytes bytes are dropped. Queries are tokenized the
// same way. Runs of CJK text are not segmented: each run is one term.
//
// There are no stop words and no stemming. BM25's idf already gives words in
// most products ("with", "for") a weight near zero; product text is mostly
// names, identifiers and sizes, where a stop list does harm ("A" as a size,
// "in" or "on" inside a model's name) and stemming mangles identifiers; and
// the catalogs are multilingual. Meaning (drill vs drills) is the embedding
// search's job; this index finds the words given.
//
// # Scoring
//
// Score is BM25 with K1 = 1.2 and B = 0.75 as in Lucene's BM25Similarity:
// idf = ln(1 + (N - df + 0.5)/(df + 0.5)), and per term
// idf * tf/(tf + K1*(1 - B + B*dl/avgdl)) summed over the query's distinct
// terms. Unlike Lucene, document lengths are exact (Lucene stores them in
// one lossy byte). Every product is one document: its description and
// metadata values are one field.
//
// # Memory
//
// Terms are interned in one byte slice with an open-addressing table of
// term ids (no per-term string header or map entry); a posting list is
// uvarint (doc id delta, term frequency) pairs, about 2 bytes a posting for
// common terms; each document costs 12 bytes (row->doc, doc->row, length).
// See Index for how changes stay cheap and docs/keyword.md for the figures.
package keyword
