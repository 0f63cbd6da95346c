package bridge

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/simmatch/simmatch/contracts"
)

// jobRoutes adds the asynchronous jobs API (jobs live in JetStream; see contracts.Jobs).
func (s *Server) jobRoutes(r chi.Router) {
	r.Post("/v1/jobs", s.submitJob)
	r.Get("/v1/jobs/{id}", s.jobStatus)
	r.Delete("/v1/jobs/{id}", s.cancelJob)
	r.Get("/v1/jobs/{id}/results", s.jobResults)
}

// submitJob answers POST /v1/jobs: 202 with the queued job and its Location.
func (s *Server) submitJob(w http.ResponseWriter, r *http.Request) {
	if e := checkContentType(r.Header.Get("Content-Type")); e != nil {
		writeError(w, r, e)
		return
	}
	lim := s.cfg.JobLimits
	tooLarge := &contracts.Error{Code: contracts.CodePayloadTooLarge, Limit: lim.MaxBodyBytes,
		Message: fmt.Sprintf("request body is larger than the job limit of %d bytes", lim.MaxBodyBytes)}
	if r.ContentLength > int64(lim.MaxBodyBytes) {
		writeError(w, r, tooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(lim.MaxBodyBytes)))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			writeError(w, r, tooLarge)
		case r.Context().Err() != nil:
			clientGone(w)
		default:
			writeError(w, r, contracts.Errorf(contracts.CodeMalformedJSON, "read request body: %v", err))
		}
		return
	}
	req, err := contracts.DecodeJobRequest(body, lim)
	if err != nil {
		writeError(w, r, contracts.AsError(err))
		return
	}
	st, err := s.jobs.Submit(r.Context(), req)
	if err != nil {
		writeError(w, r, contracts.AsError(err))
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+st.ID)
	writeJSON(w, http.StatusAccepted, st)
}

func (s *Server) jobStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.jobs.Status(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, contracts.AsError(err))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	st, err := s.jobs.Cancel(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, contracts.AsError(err))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// jobResults streams a done job's results as JSON lines, one
// {"query", "matches"} per query in request order.
func (s *Server) jobResults(w http.ResponseWriter, r *http.Request) {
	var bw *bufio.Writer
	var enc *json.Encoder
	err := s.jobs.Results(r.Context(), chi.URLParam(r, "id"), func(res contracts.JobResult) error {
		if bw == nil {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			bw = bufio.NewWriterSize(w, 64<<10)
			enc = json.NewEncoder(bw)
		}
		return enc.Encode(res)
	})
	if bw == nil {
		if err != nil {
			writeError(w, r, contracts.AsError(err))
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		return
	}
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil && r.Context().Err() == nil {
		// The status is sent: the only way left to say "incomplete" is to
		// break the connection.
		s.cfg.Logger.ErrorContext(r.Context(), "job results: stream broken", "err", err)
		panic(http.ErrAbortHandler)
	}
}
