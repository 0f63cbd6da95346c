package rowfile

import (
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
)

func row(dims, seed int) []float32 {
	v := make([]float32, dims)
	for i := range v {
		v[i] = float32(seed*1000+i) / 7
	}
	return v
}

func create(t testing.TB, dims int) *File {
	t.Helper()
	x, err := Create(t.TempDir(), dims)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func wantRow(t *testing.T, x *File, r int, want []float32) {
	t.Helper()
	got := make([]float32, x.Dims())
	if err := x.Read(r, got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("row %d = %v, want %v", r, got[:3], want[:3])
	}
}

func TestRoundTrip(t *testing.T) {
	const dims = 5
	x := create(t, dims)
	if x.Len() != 0 || x.Dims() != dims {
		t.Fatalf("new file: Len %d, Dims %d", x.Len(), x.Dims())
	}
	for r := range 100 {
		if err := x.Write(r, row(dims, r)); err != nil {
			t.Fatal(err)
		}
	}
	if x.Len() != 100 {
		t.Fatalf("Len = %d, want 100", x.Len())
	}
	for r := range 100 {
		wantRow(t, x, r, row(dims, r))
	}
	// Overwrite, move, truncate: what a catalog does on upsert and delete.
	if err := x.Write(5, row(dims, 500)); err != nil {
		t.Fatal(err)
	}
	wantRow(t, x, 5, row(dims, 500))
	if err := x.Move(99, 7); err != nil {
		t.Fatal(err)
	}
	if err := x.Move(3, 3); err != nil {
		t.Fatal(err)
	}
	if err := x.Truncate(99); err != nil {
		t.Fatal(err)
	}
	if x.Len() != 99 {
		t.Fatalf("Len = %d after Truncate(99)", x.Len())
	}
	wantRow(t, x, 7, row(dims, 99))
	wantRow(t, x, 3, row(dims, 3))
	wantRow(t, x, 98, row(dims, 98))
	if fi, err := x.f.Stat(); err != nil || fi.Size() != 99*dims*4 {
		t.Fatalf("size after Truncate(99): %v, %v", fi.Size(), err)
	}
	// Appending after a truncate writes past the old end again.
	if err := x.Write(99, row(dims, 1234)); err != nil {
		t.Fatal(err)
	}
	wantRow(t, x, 99, row(dims, 1234))

	got := [][]float32{make([]float32, dims), make([]float32, dims)}
	if err := x.ReadMany([]int{7, 99}, got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[0], row(dims, 99)) || !slices.Equal(got[1], row(dims, 1234)) {
		t.Fatalf("ReadMany = %v", got)
	}
	if err := x.Truncate(0); err != nil || x.Len() != 0 {
		t.Fatalf("Truncate(0): %v, Len %d", err, x.Len())
	}
}

func TestErrors(t *testing.T) {
	if _, err := Create(t.TempDir(), 0); err == nil {
		t.Error("Create with 0 dims: no error")
	}
	if _, err := Create(t.TempDir()+"/missing", 4); err == nil {
		t.Error("Create in a missing directory: no error")
	}
	x := create(t, 4)
	v := make([]float32, 4)
	// The calls run in the order written: the file is empty until "write
	// then bad read" adds row 0.
	for name, err := range map[string]error{
		"write past the end":  x.Write(1, v),
		"write negative row":  x.Write(-1, v),
		"write short row":     x.Write(0, v[:3]),
		"read empty":          x.Read(0, v),
		"move empty":          x.Move(0, 0),
		"truncate past end":   x.Truncate(1),
		"truncate negative":   x.Truncate(-1),
		"read many mismatch":  x.ReadMany([]int{0}, nil),
		"read many past end":  x.ReadMany([]int{0}, [][]float32{v}),
		"write then bad read": errors.Join(x.Write(0, v), x.Read(0, v[:2])),
		"move past the end":   x.Move(0, 1),
		"read negative row":   x.Read(-1, v),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if x.Len() != 1 {
		t.Errorf("Len = %d, want 1", x.Len())
	}
}

// The name is gone from the directory as soon as Create returns, and
// os.TempDir() is the default directory.
func TestUnlinked(t *testing.T) {
	dir := t.TempDir()
	x, err := Create(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if err := x.Write(0, []float32{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Fatalf("directory after Create: %v, %v", ents, err)
	}
	y, err := Create("", 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := y.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestClose(t *testing.T) {
	x, err := Create(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Write(0, []float32{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	fd := checkOpen(t, x)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	checkClosed(t, fd)
	if err := x.Read(0, make([]float32, 3)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close: %v, want os.ErrClosed", err)
	}
	if err := x.Close(); err == nil {
		t.Error("second Close: no error")
	}
}

// Reads from many goroutines at once see the rows written before them
// (run with -race).
func TestConcurrentReads(t *testing.T) {
	const dims, rows = 16, 1000
	x := create(t, dims)
	for r := range rows {
		if err := x.Write(r, row(dims, r)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			got := make([]float32, dims)
			for range 2000 {
				r := rng.IntN(rows)
				if err := x.Read(r, got); err != nil {
					errs <- err
					return
				}
				if !slices.Equal(got, row(dims, r)) {
					errs <- errors.New("wrong row")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The encoding/binary path (big-endian machines) reads and writes the same
// bytes as the in-place one.
func TestBinaryPath(t *testing.T) {
	const dims = 7
	x := create(t, dims)
	v := row(dims, 3)
	v[2] = -0.0
	if err := x.Write(0, v); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, dims)
	if err := x.readBinary(0, got); err != nil || !slices.Equal(got, v) {
		t.Fatalf("readBinary = %v, %v; want %v", got, err, v)
	}
	if b := encodeBinary(make([]byte, dims*4), v); !slices.Equal(b, x.encode(v)) {
		t.Fatalf("encodeBinary = %v, encode = %v", b, x.encode(v))
	}
}

// BenchmarkRead reads random rows of 384 float32s from a file of 100,000
// rows (150 MB, hot in the page cache after the writes): in place (Read)
// and through encoding/binary (readBinary).
func BenchmarkRead(b *testing.B) {
	const dims, rows = 384, 100_000
	x := create(b, dims)
	v := make([]float32, dims)
	for r := range rows {
		for i := range v {
			v[i] = float32(r + i)
		}
		if err := x.Write(r, v); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b.Run("in-place", func(b *testing.B) {
		for b.Loop() {
			if err := x.Read(rng.IntN(rows), v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("binary", func(b *testing.B) {
		for b.Loop() {
			if err := x.readBinary(rng.IntN(rows), v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel-in-place", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			w := make([]float32, dims)
			rng := rand.New(rand.NewPCG(rand.Uint64(), 2))
			for pb.Next() {
				if err := x.Read(rng.IntN(rows), w); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
