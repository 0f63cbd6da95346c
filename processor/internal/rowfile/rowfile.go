// Package rowfile keeps fixed-size float32 rows in an unlinked file on local
// disk. In the int8 mode of a catalog the scan reads int8 rows from memory
// and rescores only a few dozen candidates per query in float32: the
// float32 rows, four times the size of the int8 ones, need not sit in the
// Go heap. In a file the kernel's page cache keeps the rows that are read
// often and can drop the rest under memory pressure, and they are not the
// process's anonymous memory (what a container's memory limit counts first
// and what the Go GC walks). The file is unlinked as soon as it is created,
// so a crash leaves nothing behind; its space is freed when it is closed.
//
// The directory must be on a disk-backed file system: on a tmpfs (often
// /tmp or /dev/shm) the pages are shared memory that cannot be dropped
// without swap, which would save nothing.
package rowfile

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"unsafe"
)

// File is an array of rows of Dims float32s stored little-endian, one after
// the other, in an unlinked temporary file.
//
// Read, ReadMany, Len and Dims may be called from any number of goroutines
// at once. Write, Move, Truncate and Close need exclusive access: no other
// call on the File may run at the same time (a catalog calls them under its
// write lock and reads under its read lock).
type File struct {
	f       *os.File
	dims    int
	rowSize int64        // bytes per row
	rows    atomic.Int64 // rows in the file
	buf     []byte       // Write and Move scratch (exclusive access)
}

// littleEndian is whether float32s in memory have the file's byte order, so
// rows move between memory and file without conversion.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// Create makes an empty File of rows of dims float32s in a new file in dir
// (os.TempDir() when dir is "") and removes the file's name at once: the
// data lives until Close, and nothing is left on disk after a crash.
func Create(dir string, dims int) (*File, error) {
	if dims <= 0 {
		return nil, fmt.Errorf("rowfile: dims %d: want a positive number", dims)
	}
	f, err := os.CreateTemp(dir, "simmatch-rows-*")
	if err != nil {
		return nil, fmt.Errorf("rowfile: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("rowfile: unlink: %w", err)
	}
	return &File{f: f, dims: dims, rowSize: int64(dims) * 4, buf: make([]byte, dims*4)}, nil
}

// Dims is the number of float32s in a row.
func (x *File) Dims() int { return x.dims }

// Len is the number of rows.
func (x *File) Len() int { return int(x.rows.Load()) }

// Write stores v (len(v) == Dims()) as row row; row == Len() appends a row.
// It needs exclusive access (see File).
func (x *File) Write(row int, v []float32) error {
	n := x.Len()
	if row < 0 || row > n {
		return fmt.Errorf("rowfile: write row %d of %d", row, n)
	}
	if len(v) != x.dims {
		return fmt.Errorf("rowfile: write %d values in a row of %d", len(v), x.dims)
	}
	if _, err := x.f.WriteAt(x.encode(v), int64(row)*x.rowSize); err != nil {
		return fmt.Errorf("rowfile: write row %d: %w", row, err)
	}
	if row == n {
		x.rows.Store(int64(n + 1))
	}
	return nil
}

// encode returns v's bytes, little-endian: v itself on a little-endian
// machine, else converted into x.buf.
func (x *File) encode(v []float32) []byte {
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*4)
	}
	return encodeBinary(x.buf, v)
}

// encodeBinary puts v into b little-endian with encoding/binary and
// returns b.
func encodeBinary(b []byte, v []float32) []byte {
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// Move copies row from over row to (both < Len()); row from is unchanged.
// It needs exclusive access (see File).
func (x *File) Move(from, to int) error {
	n := x.Len()
	if from < 0 || from >= n || to < 0 || to >= n {
		return fmt.Errorf("rowfile: move row %d to %d of %d", from, to, n)
	}
	if from == to {
		return nil
	}
	if _, err := x.f.ReadAt(x.buf, int64(from)*x.rowSize); err != nil {
		return fmt.Errorf("rowfile: move row %d: %w", from, err)
	}
	if _, err := x.f.WriteAt(x.buf, int64(to)*x.rowSize); err != nil {
		return fmt.Errorf("rowfile: move to row %d: %w", to, err)
	}
	return nil
}

// Truncate keeps the first rows rows (rows <= Len()) and frees the disk
// space of the rest. It needs exclusive access (see File).
func (x *File) Truncate(rows int) error {
	if n := x.Len(); rows < 0 || rows > n {
		return fmt.Errorf("rowfile: truncate to %d rows of %d", rows, n)
	}
	if err := x.f.Truncate(int64(rows) * x.rowSize); err != nil {
		return fmt.Errorf("rowfile: truncate: %w", err)
	}
	x.rows.Store(int64(rows))
	return nil
}

// Read copies row row (< Len()) into dst (len(dst) == Dims()). It is one
// pread(2): concurrent Reads do not wait for each other.
func (x *File) Read(row int, dst []float32) error {
	if n := x.Len(); row < 0 || row >= n {
		return fmt.Errorf("rowfile: read row %d of %d", row, n)
	}
	if len(dst) != x.dims {
		return fmt.Errorf("rowfile: read a row of %d into %d values", x.dims, len(dst))
	}
	if littleEndian {
		b := unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), len(dst)*4)
		if _, err := x.f.ReadAt(b, int64(row)*x.rowSize); err != nil {
			return fmt.Errorf("rowfile: read row %d: %w", row, err)
		}
		return nil
	}
	return x.readBinary(row, dst)
}

// readBinary is Read through encoding/binary, for big-endian machines.
func (x *File) readBinary(row int, dst []float32) error {
	b := make([]byte, x.rowSize)
	if _, err := x.f.ReadAt(b, int64(row)*x.rowSize); err != nil {
		return fmt.Errorf("rowfile: read row %d: %w", row, err)
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return nil
}

// ReadMany reads row rows[i] into dst[i] for each i (len(dst) ==
// len(rows)), as Read does, and returns the first error.
func (x *File) ReadMany(rows []int, dst [][]float32) error {
	if len(rows) != len(dst) {
		return fmt.Errorf("rowfile: read %d rows into %d", len(rows), len(dst))
	}
	for i, r := range rows {
		if err := x.Read(r, dst[i]); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the file, which frees its disk space. It needs exclusive
// access (see File); the File is unusable afterwards.
func (x *File) Close() error {
	if err := x.f.Close(); err != nil {
		return fmt.Errorf("rowfile: %w", err)
	}
	return nil
}
