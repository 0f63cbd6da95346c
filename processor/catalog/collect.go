package catalog

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/simmatch/simmatch/contracts"
)

// collectSpec says what a collector keeps.
type collectSpec struct {
	k       int      // the best k matches (or group leaders)
	count   bool     // count every match
	facets  []string // count every match per value of these keys
	groupBy string   // keep the best match per value of this key
	groupK  int      // candidates kept per group to find its best (more than 1 for an int8 estimate)
}

// collector gathers the matches of one list (of one worker, until merged).
type collector struct {
	spec   collectSpec
	best   topK // the best k, among the products without the group_by key when grouping
	count  int
	facets []map[string]int
	groups map[string]*group
}

type group struct {
	best cand
	size int
	top  topK // the best groupK candidates, when groupK > 1
}

func newCollector(spec collectSpec) *collector {
	c := &collector{spec: spec}
	if len(spec.facets) > 0 {
		c.facets = make([]map[string]int, len(spec.facets))
		for i := range c.facets {
			c.facets[i] = map[string]int{}
		}
	}
	if spec.groupBy != "" {
		c.groups = map[string]*group{}
	}
	return c
}

func (c *collector) add(m cand, meta map[string]string) {
	if c.spec.count {
		c.count++
	}
	for i, k := range c.spec.facets {
		if v, ok := meta[k]; ok {
			c.facets[i][v]++
		}
	}
	if c.groups != nil {
		if v, ok := meta[c.spec.groupBy]; ok {
			g := c.groups[v]
			if g == nil {
				c.groups[v] = &group{best: m, size: 1, top: topK{m}}
			} else {
				g.size++
				if worse(g.best, m) {
					g.best = m
				}
				if c.spec.groupK > 1 {
					g.top.push(m, c.spec.groupK)
				}
			}
			return
		}
	}
	c.best.push(m, c.spec.k)
}

func (c *collector) merge(o *collector) {
	c.count += o.count
	for i, f := range o.facets {
		for v, n := range f {
			c.facets[i][v] += n
		}
	}
	for v, og := range o.groups {
		g := c.groups[v]
		if g == nil {
			c.groups[v] = og
			continue
		}
		g.size += og.size
		if worse(g.best, og.best) {
			g.best = og.best
		}
		if c.spec.groupK > 1 {
			for _, m := range og.top {
				g.top.push(m, c.spec.groupK)
			}
		}
	}
	for _, m := range o.best {
		c.best.push(m, c.spec.k)
	}
}

// ranked returns the kept matches best first (group leaders among them,
// at most k), and each group leader's group size (1 for a product without
// the key).
func (c *collector) ranked() ([]cand, map[int]int) {
	out := slices.Clone([]cand(c.best))
	var sizes map[int]int
	if c.groups != nil {
		sizes = make(map[int]int, len(c.groups)+len(out))
		for _, m := range out {
			sizes[m.row] = 1
		}
		for _, g := range c.groups {
			out = append(out, g.best)
			sizes[g.best.row] = g.size
		}
	}
	slices.SortFunc(out, order)
	if len(out) > c.spec.k {
		out = out[:c.spec.k]
	}
	return out, sizes
}

// topFacets keeps each facet's MaxFacetValues most frequent values.
func (c *collector) topFacets(keys []string) map[string]map[string]int {
	out := make(map[string]map[string]int, len(keys))
	for i, k := range keys {
		f := c.facets[i]
		if len(f) > contracts.MaxFacetValues {
			vals := slices.Collect(maps.Keys(f))
			slices.SortFunc(vals, func(a, b string) int {
				if c := cmp.Compare(f[b], f[a]); c != 0 {
					return c
				}
				return strings.Compare(a, b)
			})
			kept := make(map[string]int, contracts.MaxFacetValues)
			for _, v := range vals[:contracts.MaxFacetValues] {
				kept[v] = f[v]
			}
			f = kept
		}
		out[k] = f
	}
	return out
}

type cand struct {
	row   int
	score float64
}

// order sorts candidates best first: a higher score, or the same score earlier in row order.
func order(a, b cand) int {
	if c := cmp.Compare(b.score, a.score); c != 0 {
		return c
	}
	return a.row - b.row
}

// worse orders candidates: a lower score, or the same score later in row order.
func worse(a, b cand) bool { return a.score < b.score || (a.score == b.score && a.row > b.row) }

// topK is a min-heap of the best candidates seen: its root is the worst kept.
type topK []cand

func (h *topK) push(c cand, k int) {
	s := *h
	if len(s) < k {
		s = append(s, c)
		for i := len(s) - 1; i > 0; {
			p := (i - 1) / 2
			if !worse(s[i], s[p]) {
				break
			}
			s[i], s[p] = s[p], s[i]
			i = p
		}
		*h = s
		return
	}
	if k == 0 || !worse(s[0], c) {
		return
	}
	s[0] = c
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(s) && worse(s[l], s[m]) {
			m = l
		}
		if l+1 < len(s) && worse(s[l+1], s[m]) {
			m = l + 1
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
}
