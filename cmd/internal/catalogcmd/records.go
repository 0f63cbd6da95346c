package catalogcmd

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/simmatch/simmatch/contracts"
)

// record is one product read from a file, with where it was.
type record struct {
	product contracts.Product
	line    int   // 1-based line where the record starts
	end     int64 // byte offset just after the record
}

// reader yields the records of a JSON lines or CSV file from a byte offset.
type reader interface {
	next() (record, error) // io.EOF at the end
}

// lineError names the file and line of a bad record.
type lineError struct {
	file string
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.file, e.line, e.err) }
func (e *lineError) Unwrap() error { return e.err }

// format picks the file format from its name: .csv is CSV, anything else
// (.jsonl, .ndjson, .json) JSON lines.
func format(path, flag string) (string, error) {
	switch flag {
	case "csv", "jsonl":
		return flag, nil
	case "", "auto":
		if strings.HasSuffix(strings.ToLower(path), ".csv") {
			return "csv", nil
		}
		return "jsonl", nil
	}
	return "", fmt.Errorf("-format %q: want auto, csv or jsonl", flag)
}

// openReader opens path at offset (a record boundary from a checkpoint),
// firstLine being the line number there.
func openReader(f *os.File, kind string, offset int64, firstLine int) (reader, error) {
	if kind == "csv" {
		return newCSVReader(f, offset, firstLine)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	return &jsonlReader{file: f.Name(), r: bufio.NewReaderSize(f, 1<<20), off: offset, line: firstLine - 1}, nil
}

type jsonlReader struct {
	file string
	r    *bufio.Reader
	off  int64
	line int
}

func (j *jsonlReader) next() (record, error) {
	for {
		b, err := j.r.ReadBytes('\n')
		if len(b) == 0 && err != nil {
			return record{}, err
		}
		j.off += int64(len(b))
		j.line++
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var p contracts.Product
		if err := dec.Decode(&p); err != nil {
			return record{}, &lineError{j.file, j.line, fmt.Errorf("want a JSON object {\"id\", \"description\", \"metadata\"}: %w", err)}
		}
		return record{product: p, line: j.line, end: j.off}, nil
	}
}

// csvReader reads CSV with a header row: id, description, and either a
// metadata column holding a JSON object or any other columns, each a
// metadata key (empty cells are left out).
type csvReader struct {
	file     string
	r        *csv.Reader
	base     int64 // byte offset where r starts
	baseLine int   // line number where r starts, minus 1
	header   []string
	idCol    int
	descCol  int
}

func newCSVReader(f *os.File, offset int64, firstLine int) (*csvReader, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	hr := csv.NewReader(bufio.NewReader(f))
	header, err := hr.Read()
	if err != nil {
		return nil, &lineError{f.Name(), 1, fmt.Errorf("read the CSV header row: %w", err)}
	}
	c := &csvReader{file: f.Name(), header: header, idCol: -1, descCol: -1}
	for i, h := range header {
		switch strings.TrimSpace(strings.ToLower(h)) {
		case "id":
			c.idCol = i
		case "description":
			c.descCol = i
		}
	}
	if c.idCol < 0 || c.descCol < 0 {
		return nil, &lineError{f.Name(), 1, fmt.Errorf("the CSV header %q needs an id and a description column", header)}
	}
	if offset == 0 { // start after the header
		offset, firstLine = hr.InputOffset(), 2
		if l, _ := hr.FieldPos(0); l > 1 {
			firstLine = l + 1
		}
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	c.r = csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	c.r.FieldsPerRecord = len(header)
	c.base, c.baseLine = offset, firstLine-1
	return c, nil
}

func (c *csvReader) next() (record, error) {
	row, err := c.r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return record{}, io.EOF
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return record{}, &lineError{c.file, c.baseLine + pe.StartLine, pe.Err}
		}
		return record{}, err
	}
	l, _ := c.r.FieldPos(0)
	line := c.baseLine + l
	p := contracts.Product{ID: row[c.idCol], Description: row[c.descCol]}
	for i, v := range row {
		if i == c.idCol || i == c.descCol || v == "" {
			continue
		}
		if p.Metadata == nil {
			p.Metadata = map[string]string{}
		}
		if strings.EqualFold(strings.TrimSpace(c.header[i]), "metadata") {
			var m map[string]string
			if err := json.Unmarshal([]byte(v), &m); err != nil {
				return record{}, &lineError{c.file, line, fmt.Errorf("metadata column: want a JSON object of strings: %w", err)}
			}
			for k, mv := range m {
				p.Metadata[k] = mv
			}
			continue
		}
		p.Metadata[c.header[i]] = v
	}
	return record{product: p, line: line, end: c.base + c.r.InputOffset()}, nil
}
