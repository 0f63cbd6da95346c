package keyword

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTokenize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ,.;!? -/ ", nil},
		{"DCD771C2", []string{"dcd771c2"}},
		{"20V", []string{"20v"}},
		{"3/8-inch", []string{"3/8-inch", "3", "8", "inch"}},
		{"Hello, world!", []string{"hello", "world"}},
		{"1.5 kg", []string{"1.5", "kg"}},
		{"v1.5-pro", []string{"v1.5-pro", "v1.5", "pro"}},
		{"www.Example.com", []string{"www.example.com", "www", "example", "com"}},
		{"don't", []string{"don't", "don", "t"}},
		{"snake_case", []string{"snake_case", "snake", "case"}},
		{"a--b", []string{"a", "b"}},             // a doubled joiner separates
		{"-x- .y. 'z'", []string{"x", "y", "z"}}, // joiners at the edges separate
		{"end-", []string{"end"}},
		{"(20V) [MAX]", []string{"20v", "max"}},
		{"Crème Brûlée", []string{"crème", "brûlée"}},
		{"Cre\u0300me", []string{"cre\u0300me"}}, // combining mark stays in the word
		{"ÜBER Straße", []string{"über", "straße"}},
		{"ΣΊΣΥΦΟΣ", []string{"σίσυφοσ"}},
		{"電動ドリル 20V", []string{"電動ドリル", "20v"}},
		{"émoji🔥drill", []string{"émoji", "drill"}},
		{"bad\xffutf8", []string{"bad", "utf8"}},
		{strings.Repeat("x", 64), []string{strings.Repeat("x", 64)}},
		{strings.Repeat("x", 65), nil},
		{strings.Repeat("x", 65) + "-inch", []string{"inch"}}, // the long compound and its long part dropped
	} {
		if got := Tokenize(c.in); !slices.Equal(got, c.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestTerms(t *testing.T) {
	got := New().Terms("Drill 3/8-inch drill inch")
	want := []string{"drill", "3/8-inch", "3", "8", "inch"}
	if !slices.Equal(got, want) {
		t.Fatalf("Terms = %q, want %q", got, want)
	}
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"", "DCD771C2 20V 3/8-inch", "Hello, world! 1.5 kg", "Crème Brûlée 電動ドリル", "a-b/c.d_e'f", "İstanbul ΣΊΣΥΦΟΣ", "\xff\xfe-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, term := range Tokenize(s) {
			if term == "" {
				t.Fatalf("Tokenize(%q): empty term", s)
			}
			if len(term) > MaxTermBytes {
				t.Fatalf("Tokenize(%q): term %q over %d bytes", s, term, MaxTermBytes)
			}
			if strings.ToLower(term) != term {
				t.Fatalf("Tokenize(%q): term %q not lowercase", s, term)
			}
			if !utf8.ValidString(term) {
				t.Fatalf("Tokenize(%q): term %q not UTF-8", s, term)
			}
		}
	})
}

// scores collects Score's calls, failing on a row reported twice.
func scores(t *testing.T, x *Index, q string) map[int]float64 {
	t.Helper()
	m := map[int]float64{}
	x.Score(q, func(row int, s float64) {
		if _, dup := m[row]; dup {
			t.Fatalf("Score(%q): row %d twice", q, row)
		}
		m[row] = s
	})
	return m
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestScoreHandComputed(t *testing.T) {
	x := New()
	x.Set(0, "red drill")
	x.Set(1, "blue", "drill drill")
	x.Set(2, "red hammer")
	// N=3, dl = 2, 3, 2, avgdl = 7/3. For df=2: idf = ln(1 + 1.5/2.5) = ln 1.6.
	// tf=1, dl=2: ln1.6 * 1/(1 + 1.2*(0.25 + 0.75*2/(7/3))) = 0.22689830377380343
	// tf=2, dl=3: ln1.6 * 2/(2 + 1.2*(0.25 + 0.75*3/(7/3))) = 0.2719029260099297
	// hammer (df=1, idf = ln(1 + 2.5/1.5)), tf=1, dl=2: 0.47350377731600585
	for q, want := range map[string]map[int]float64{
		"drill":          {0: 0.22689830377380343, 1: 0.2719029260099297},
		"Red DRILL red":  {0: 2 * 0.22689830377380343, 1: 0.2719029260099297, 2: 0.22689830377380343},
		"hammer":         {2: 0.47350377731600585},
		"saw":            {},
		"":               {},
		"hammer, chisel": {2: 0.47350377731600585},
	} {
		got := scores(t, x, q)
		if len(got) != len(want) {
			t.Errorf("Score(%q) = %v, want %v", q, got, want)
			continue
		}
		for r, w := range want {
			if !near(got[r], w) {
				t.Errorf("Score(%q) row %d = %.17g, want %.17g", q, r, got[r], w)
			}
		}
	}
	if hits := x.Top("red drill", 2, nil); len(hits) != 2 || hits[0].Row != 0 || hits[1].Row != 1 {
		t.Errorf("Top(red drill, 2) = %v, want rows 0, 1", hits)
	}
}

func TestSetReplaces(t *testing.T) {
	x := New()
	x.Set(0, "red drill")
	x.Set(1, "blue saw")
	x.Set(0, "green hammer")
	if got := scores(t, x, "drill red"); len(got) != 0 {
		t.Fatalf("old terms still score: %v", got)
	}
	fresh := New()
	fresh.Set(0, "green hammer")
	fresh.Set(1, "blue saw")
	for _, q := range []string{"green", "hammer saw", "blue green"} {
		if got, want := scores(t, x, q), scores(t, fresh, q); !sameScores(got, want) {
			t.Errorf("Score(%q) = %v, want %v", q, got, want)
		}
	}
	if x.Len() != 2 {
		t.Fatalf("Len = %d, want 2", x.Len())
	}
}

func sameScores(a, b map[int]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for r, s := range a {
		if w, ok := b[r]; !ok || !near(s, w) {
			return false
		}
	}
	return true
}

// bruteBM25 scores query over docs (row -> fields) straight from the formula.
func bruteBM25(docs [][]string, query string) map[int]float64 {
	tf := make([]map[string]int, len(docs))
	var total int
	for r, fields := range docs {
		tf[r] = map[string]int{}
		for _, f := range fields {
			for _, term := range Tokenize(f) {
				tf[r][term]++
				total++
			}
		}
	}
	n := float64(len(docs))
	out := map[int]float64{}
	for _, term := range Terms(query) {
		df := 0
		for r := range docs {
			if tf[r][term] > 0 {
				df++
			}
		}
		idf := math.Log(1 + (n-float64(df)+0.5)/(float64(df)+0.5))
		for r := range docs {
			if f := float64(tf[r][term]); f > 0 {
				dl := 0
				for _, c := range tf[r] {
					dl += c
				}
				out[r] += idf * f / (f + K1*(1-B+B*float64(dl)/(float64(total)/n)))
			}
		}
	}
	return out
}

// TestChurnMatchesFresh runs 10k random catalog changes (append, replace,
// delete by moving the last row in, move onto an occupied row) on an index
// that compacts often, then checks every query against a fresh index over
// the final rows and against BM25 computed from scratch.
func TestChurnMatchesFresh(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	words := []string{"drill", "saw", "red", "blue", "20V", "3/8-inch", "DCD771C2", "kit", "pro", "hammer", "1.5", "kg", "led", "x", "y"}
	doc := func() []string {
		var fields []string
		for f := r.IntN(3); f >= 0; f-- {
			var b []string
			for n := r.IntN(6); n > 0; n-- {
				b = append(b, words[r.IntN(len(words))])
			}
			if r.IntN(4) == 0 { // a unique term, so compaction must drop terms
				b = append(b, fmt.Sprintf("u%d", r.Uint32()))
			}
			fields = append(fields, strings.Join(b, " "))
		}
		return fields
	}
	x := New()
	x.compactMin = 8
	var rows [][]string
	for op := 0; op < 10000; op++ {
		switch k := r.IntN(10); {
		case k < 4 || len(rows) == 0: // append
			d := doc()
			x.Set(len(rows), d...)
			rows = append(rows, d)
		case k < 6: // replace
			i, d := r.IntN(len(rows)), doc()
			x.Set(i, d...)
			rows[i] = d
		case k < 9: // delete: Remove, then the last row moves in
			i, last := r.IntN(len(rows)), len(rows)-1
			x.Remove(i)
			if i != last {
				x.Move(last, i)
			}
			rows[i] = rows[last]
			rows = rows[:last]
		default: // delete by moving the last row onto it
			i, last := r.IntN(len(rows)), len(rows)-1
			if i == last {
				x.Remove(i)
			} else {
				x.Move(last, i)
			}
			rows[i] = rows[last]
			rows = rows[:last]
		}
		if x.Len() != len(rows) {
			t.Fatalf("op %d: Len = %d, want %d", op, x.Len(), len(rows))
		}
	}
	if len(rows) < 50 {
		t.Fatalf("only %d rows left: the test does not exercise much", len(rows))
	}
	fresh := New()
	for i, d := range rows {
		fresh.Set(i, d...)
	}
	queries := append(slices.Clone(words), "red drill", "20v kit pro", "inch 3 8", "blue saw hammer led x y", "nothing")
	for _, q := range queries {
		got, want, brute := scores(t, x, q), scores(t, fresh, q), bruteBM25(rows, q)
		if !sameScores(got, want) || !sameScores(got, brute) {
			t.Errorf("Score(%q): churned %v\nfresh %v\nbrute %v", q, got, want, brute)
		}
	}
	x.Compact()
	for _, q := range queries {
		if got, want := scores(t, x, q), scores(t, fresh, q); !sameScores(got, want) {
			t.Errorf("after Compact, Score(%q) = %v, want %v", q, got, want)
		}
	}
	if x.dict.len() != fresh.dict.len() {
		t.Errorf("after Compact: %d terms, fresh index %d", x.dict.len(), fresh.dict.len())
	}
}

// TestChurnBoundsMemory replaces one row 100k times with unique terms: the
// dead documents and their terms must be compacted away.
func TestChurnBoundsMemory(t *testing.T) {
	x := New()
	x.Set(1, "keep this row")
	for i := 0; i < 100000; i++ {
		x.Set(0, fmt.Sprintf("model%d variant%d", i, i))
	}
	if n := x.dict.len(); n > 4*compactMin {
		t.Errorf("%d terms held for 5 live ones", n)
	}
	if b := x.Bytes(); b > 1<<20 {
		t.Errorf("Bytes = %d after churn on 2 rows", b)
	}
	if got := scores(t, x, "model99999"); len(got) != 1 || got[0] == 0 {
		t.Errorf("Score(model99999) = %v", got)
	}
}

func TestScoreAllocs(t *testing.T) {
	x := New()
	for i, p := range SyntheticProducts(2000, 1) {
		x.Set(i, p.Fields()...)
	}
	x.Remove(5) // dead documents take the df-counting path
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		x.Score("cordless drill 20v red", func(int, float64) { n++ })
	})
	if n == 0 {
		t.Fatal("the query matched nothing")
	}
	if allocs != 0 {
		t.Errorf("Score allocates %v times per call", allocs)
	}
}
