// Package keyword: TEMPORARY naive stand-in, never committed.
package keyword

import (
	"math"
	"strings"
	"unicode"
)

type Index struct {
	docs map[int]map[string]int
	lens map[int]int
}

func New() *Index { return &Index{docs: map[int]map[string]int{}, lens: map[int]int{}} }

func Tokenize(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-' && r != '/' })
}

func (x *Index) Set(row int, fields ...string) {
	tf := map[string]int{}
	n := 0
	for _, f := range fields {
		for _, t := range Tokenize(f) {
			tf[t]++
			n++
		}
	}
	x.docs[row], x.lens[row] = tf, n
}
func (x *Index) Remove(row int)    { delete(x.docs, row); delete(x.lens, row) }
func (x *Index) Move(from, to int) { x.docs[to], x.lens[to] = x.docs[from], x.lens[from]; x.Remove(from) }
func (x *Index) Len() int          { return len(x.docs) }
func (x *Index) Bytes() int64      { return 0 }
func (x *Index) Score(q string, fn func(int, float64)) {
	terms := map[string]bool{}
	for _, t := range Tokenize(q) {
		terms[t] = true
	}
	avg := 0.0
	for _, l := range x.lens {
		avg += float64(l)
	}
	avg /= math.Max(1, float64(len(x.lens)))
	N := float64(len(x.docs))
	df := map[string]float64{}
	for _, d := range x.docs {
		for t := range terms {
			if d[t] > 0 {
				df[t]++
			}
		}
	}
	for r, d := range x.docs {
		s, hit := 0.0, false
		for t := range terms {
			if f := float64(d[t]); f > 0 {
				hit = true
				idf := math.Log(1 + (N-df[t]+0.5)/(df[t]+0.5))
				s += idf * f * 2.2 / (f + 1.2*(0.25+0.75*float64(x.lens[r])/avg))
			}
		}
		if hit {
			fn(r, s)
		}
	}
}
