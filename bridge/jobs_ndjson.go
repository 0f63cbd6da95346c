package bridge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/simmatch/simmatch/contracts"
)

// A query job may be sent as JSON lines (Content-Type application/x-ndjson)
// instead of one JSON body: the first line is a JSON object with the job's
// options (product_descriptions or catalog, top_k, threshold, notify: a
// JSON job without query), and every following line is one query, a JSON
// string or {"query": "..."}. Blank lines are skipped. The bridge reads the
// body as a stream and queues each chunk as it fills (jobstore.Stream), so
// its memory stays flat whatever the job's size. The body is bounded by
// JobLimits.MaxNDJSONBytes (SIMMATCH_JOB_MAX_NDJSON_BYTES), or the tenant's
// upload quota when lower (Quotas), the queries by JobLimits.MaxQueries.
// A line that is not valid, or a body cut off at its limit, leaves no job.

// isNDJSON says whether a Content-Type is JSON lines.
func isNDJSON(v string) bool {
	mt, _, err := mime.ParseMediaType(v)
	return err == nil && (mt == "application/x-ndjson" || mt == "application/jsonl")
}

// ndjsonLimit bounds an NDJSON job body.
func (s *Server) ndjsonLimit() int {
	if n := s.cfg.JobLimits.MaxNDJSONBytes; n > 0 {
		return n
	}
	return contracts.DefaultJobMaxNDJSONBytes
}

// queryLineLimit bounds one query line: a query of MaxTextChars characters,
// each escaped (\uXXXX) at worst, in {"query": ...}.
func (s *Server) queryLineLimit() int {
	if c := s.cfg.JobLimits.MaxTextChars; c > 0 {
		return 6*c + 1024
	}
	return 1 << 20
}

// lineError is the error of line n of an NDJSON body.
func lineError(n int, err error) *contracts.Error {
	e := *contracts.AsError(err)
	if e.Field == "" || e.Field == "query[0]" || e.Field == "query" {
		e.Field = fmt.Sprintf("line %d", n)
	} else {
		e.Field = fmt.Sprintf("line %d: %s", n, e.Field)
	}
	e.Message = fmt.Sprintf("line %d: %s", n, e.Message)
	return &e
}

// submitNDJSON answers POST /v1/jobs with a JSON lines body: 202 with the
// queued job and its Location.
func (s *Server) submitNDJSON(w http.ResponseWriter, r *http.Request) {
	t := tenancyOf(r.Context())
	limit := s.ndjsonLimit()
	limit, tooLarge := s.uploadLimit(r, t, limit, &contracts.Error{Code: contracts.CodePayloadTooLarge, Limit: limit,
		Message: fmt.Sprintf("request body is larger than the limit of %d bytes for a job sent as JSON lines", limit)})
	if r.ContentLength > int64(limit) {
		writeError(w, r, tooLarge)
		return
	}
	lim := s.cfg.JobLimits
	lr := &lineReader{br: bufio.NewReaderSize(http.MaxBytesReader(w, r.Body, int64(limit)), 64<<10)}
	fail := func(n int, err error) {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			writeError(w, r, tooLarge)
		case r.Context().Err() != nil:
			clientGone(w)
		case errors.Is(err, errLineTooLong), errors.Is(err, errReadBody):
			writeError(w, r, lineError(n, contracts.Errorf(contracts.CodeMalformedJSON, "%v", err)))
		case errors.Is(err, contracts.ErrInsufficientStorage), errors.Is(err, contracts.ErrTimeout):
			writeError(w, r, contracts.AsError(err)) // the store's, not the line's
		default:
			writeError(w, r, lineError(n, err))
		}
	}

	// The options line: as large as a JSON job may be.
	line, n, err := lr.next(lim.MaxBodyBytes)
	if err == io.EOF {
		writeError(w, r, contracts.Errorf(contracts.CodeMalformedJSON, "the body is empty: the first line holds the job's options, each next line one query"))
		return
	}
	if err != nil {
		fail(n, err)
		return
	}
	req := new(contracts.JobRequest)
	if err := contracts.DecodeStrict(line, 0, req); err != nil {
		fail(n, err)
		return
	}
	var name string
	if req.Catalog != "" {
		if e := t.check("catalog", req.Catalog); e != nil {
			fail(n, e)
			return
		}
		name = req.Catalog
	}
	if err := req.ValidateOptions(lim); err != nil {
		fail(n, err)
		return
	}
	req.Catalog = t.qualify(req.Catalog)
	lr.buf = nil // the options line's buffer may be large: query lines are small

	// The first query line is checked before the job exists, so that a
	// body of the wrong shape leaves nothing behind.
	q, n, err := s.nextQuery(lr, req)
	if err == io.EOF {
		writeError(w, r, contracts.FieldError("query", 0, "required: at least one query line after the options line"))
		return
	}
	if err != nil {
		fail(n, err)
		return
	}
	release, err := s.admitJob(r.Context(), t)
	if err != nil {
		if r.Context().Err() != nil {
			clientGone(w)
			return
		}
		writeError(w, r, contracts.AsError(err))
		return
	}
	st, err := s.jobs.BeginFor(r.Context(), t.owner(), req)
	release() // the job's entry exists: the next check counts it
	if err != nil {
		if r.Context().Err() != nil {
			clientGone(w)
			return
		}
		writeError(w, r, contracts.AsError(t.fixErr(err, name)))
		return
	}
	for {
		if lim.MaxQueries > 0 && st.Total() >= lim.MaxQueries {
			st.Abort("too many queries")
			writeError(w, r, lineError(n, &contracts.Error{Code: contracts.CodePayloadTooLarge, Field: "query", Limit: lim.MaxQueries,
				Message: fmt.Sprintf("the job has more than %d queries, the limit for a job", lim.MaxQueries)}))
			return
		}
		if err := st.Add(r.Context(), q); err != nil {
			st.Abort(err.Error())
			fail(n, err)
			return
		}
		q, n, err = s.nextQuery(lr, req)
		if err == io.EOF {
			break
		}
		if err != nil {
			st.Abort(err.Error())
			fail(n, err)
			return
		}
	}
	status, err := st.Commit(r.Context())
	if err != nil {
		st.Abort(err.Error())
		if r.Context().Err() != nil {
			clientGone(w)
			return
		}
		writeError(w, r, contracts.AsError(t.fixErr(err, name)))
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+status.ID)
	setTiming(w, requestStart(r), contracts.Timing{})
	writeJSON(w, http.StatusAccepted, status)
}

// nextQuery reads and checks the next query line; io.EOF ends the body.
// n is the line's number.
func (s *Server) nextQuery(lr *lineReader, req *contracts.JobRequest) (string, int, error) {
	line, n, err := lr.next(s.queryLineLimit())
	if err != nil {
		return "", n, err
	}
	var q string
	if line[0] == '"' {
		err = contracts.DecodeStrict(line, 0, &q)
	} else {
		var obj struct {
			Query *string `json:"query"`
		}
		err = contracts.DecodeStrict(line, 0, &obj)
		if err == nil && obj.Query == nil {
			err = contracts.FieldError("query", 0, `required: each line after the first is a query, a JSON string or {"query": "..."}`)
		}
		if obj.Query != nil {
			q = *obj.Query
		}
	}
	if err != nil {
		return "", n, err
	}
	if err := req.ValidateQuery(q, s.cfg.JobLimits); err != nil {
		return "", n, err
	}
	return q, n, nil
}

var (
	errLineTooLong = errors.New("the line is longer than the limit")
	errReadBody    = errors.New("read request body")
)

// lineReader reads the non-blank lines of a body, each at most a given
// size, reusing one buffer.
type lineReader struct {
	br  *bufio.Reader
	buf []byte
	n   int // the number of the last line read
}

// next returns the next non-blank line (without its end), valid until the
// next call, and its number; io.EOF when none is left.
func (lr *lineReader) next(max int) ([]byte, int, error) {
	for {
		lr.buf = lr.buf[:0]
		lr.n++
		for {
			chunk, err := lr.br.ReadSlice('\n')
			if len(lr.buf)+len(chunk) > max+2 {
				return nil, lr.n, fmt.Errorf("%w of %d bytes", errLineTooLong, max)
			}
			lr.buf = append(lr.buf, chunk...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF {
				if len(bytes.TrimSpace(lr.buf)) == 0 {
					return nil, lr.n, io.EOF
				}
				break
			}
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					return nil, lr.n, err
				}
				return nil, lr.n, fmt.Errorf("%w: %v", errReadBody, err)
			}
			break
		}
		if line := bytes.TrimSpace(lr.buf); len(line) > 0 {
			return line, lr.n, nil
		}
	}
}
