package bridge

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/simmatch/simmatch/contracts"
)

// jobRoutes adds the asynchronous jobs API (jobs live in JetStream; see processor/jobs/jobstore).
func (s *Server) jobRoutes(r chi.Router) {
	r.Post("/v1/jobs", s.submitJob)
	r.Get("/v1/jobs/{id}", s.jobStatus)
	r.Delete("/v1/jobs/{id}", s.cancelJob)
	r.Get("/v1/jobs/{id}/results", s.jobResults)
}

// submitJob answers POST /v1/jobs: 202 with the queued job and its Location.
// A body of Content-Type application/x-ndjson is streamed (submitNDJSON).
func (s *Server) submitJob(w http.ResponseWriter, r *http.Request) {
	if isNDJSON(r.Header.Get("Content-Type")) {
		s.submitNDJSON(w, r)
		return
	}
	t := tenancyOf(r.Context())
	limit, quotaErr := s.uploadLimit(r, t, s.jobLimit(), nil)
	req, ok := decode[contracts.JobRequest](w, r, limit, func(w http.ResponseWriter, r *http.Request, e *contracts.Error) {
		if quotaErr != nil && e.Code == contracts.CodePayloadTooLarge {
			e = quotaErr // the tenant's upload quota, not the route's limit
		}
		writeError(w, r, e)
	})
	if !ok {
		return
	}
	cats := req.CatalogRefs()
	names := make([]string, len(cats))
	for i, c := range cats {
		if *c.Name == "" {
			continue // Validate says it is required
		}
		if e := t.check(c.Field, *c.Name); e != nil {
			writeError(w, r, e)
			return
		}
		names[i] = *c.Name
	}
	if err := req.Validate(s.cfg.JobLimits); err != nil {
		writeError(w, r, contracts.AsError(err))
		return
	}
	for _, c := range cats {
		*c.Name = t.qualify(*c.Name)
	}
	relay(w, r, 0, func(ctx context.Context) (*contracts.JobStatus, error) {
		release, err := s.admitJob(ctx, t)
		if err != nil {
			return nil, err
		}
		defer release()
		st, err := s.jobs.SubmitFor(ctx, t.owner(), req)
		return st, t.fixErr(err, names...)
	}, func(h http.Header, st *contracts.JobStatus) (int, any, *contracts.Error) {
		h.Set("Location", "/v1/jobs/"+st.ID)
		return http.StatusAccepted, st, nil
	}, writeError)
}

func (s *Server) jobStatus(w http.ResponseWriter, r *http.Request) {
	s.jobCall(w, r, s.jobs.Status)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	s.jobCall(w, r, s.jobs.Cancel)
}

// jobCall answers with call's status of the path's job, when the caller
// may see it (jobAccess). A tenant reads a failed job's error with its own
// catalog names.
func (s *Server) jobCall(w http.ResponseWriter, r *http.Request, call func(context.Context, string) (*contracts.JobStatus, error)) {
	id := chi.URLParam(r, "id")
	relay(w, r, 0, func(ctx context.Context) (*contracts.JobStatus, error) {
		if err := s.jobAccess(ctx, id); err != nil {
			return nil, err
		}
		st, err := call(ctx, id)
		if err == nil {
			st.Error = tenancyOf(r.Context()).ns.Strip(st.Error)
		}
		return st, err
	}, asIs, writeError)
}

// jobResults streams a done job's results as JSON lines: a query job's
// {"query", "matches"} per query in request order, a match job's
// {"source_id", "matches"} per source product, a dedupe job's
// {"cluster", "pairs"} per cluster.
func (s *Server) jobResults(w http.ResponseWriter, r *http.Request) {
	var bw *bufio.Writer
	var enc *json.Encoder
	id := chi.URLParam(r, "id")
	if err := s.jobAccess(r.Context(), id); err != nil {
		writeError(w, r, contracts.AsError(err))
		return
	}
	err := s.jobs.Lines(r.Context(), id, func(res any) error {
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
