package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/simmatch/simmatch/contracts"
)

const (
	// modelsStatusWait is how long GET /v1/models/status gathers the
	// processors' answers.
	modelsStatusWait = 500 * time.Millisecond
	// modelControlTimeout bounds load and switch, which load and validate a
	// model version (seconds; more on a busy host).
	modelControlTimeout = 3 * time.Minute
	maxModelBody        = 4 << 10
)

// modelRoutes are the admin routes of model control (processor/models).
// GET /v1/models itself is the OpenAI-shaped model list, not served here.
func (s *Server) modelRoutes(r chi.Router) {
	ctl := contracts.NewModelControl(s.cfg.NATS)
	r.Get("/v1/models/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := ctl.Status(r.Context(), modelsStatusWait)
		if err != nil {
			writeError(w, r, contracts.Errorf(contracts.CodeInternal, "gather model status: %v", err))
			return
		}
		if len(st.Processors) == 0 {
			writeError(w, r, &contracts.Error{Code: contracts.CodeNoProcessor, Message: "no processor answered the model status request; start one or retry later"})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	for path, op := range map[string]func(context.Context, string) (*contracts.ProcessorModels, error){
		"/v1/models/load":   ctl.Load,
		"/v1/models/switch": ctl.Switch,
		"/v1/models/unload": ctl.Unload,
		"/load-model":       ctl.Load, // the original service's paths
		"/switch-model":     ctl.Switch,
	} {
		r.Post(path, modelOp(op))
	}
}

// modelOp answers a load, switch or unload: {"model": "name@version"} in,
// the status of the processor that applied it out.
func modelOp(op func(context.Context, string) (*contracts.ProcessorModels, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if e := checkContentType(r.Header.Get("Content-Type")); e != nil {
			writeError(w, r, e)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxModelBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, r, &contracts.Error{Code: contracts.CodePayloadTooLarge, Limit: maxModelBody, Message: "request body is larger than the limit of 4096 bytes"})
				return
			}
			writeError(w, r, contracts.Errorf(contracts.CodeMalformedJSON, "read request body: %v", err))
			return
		}
		var req contracts.ModelRequest
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, r, contracts.Errorf(contracts.CodeMalformedJSON, `request body: want {"model": "name@version"}: %v`, err))
			return
		}
		if _, ver, err := contracts.ParseModelRef(req.Model); err != nil || ver == "" {
			msg := `want "name@version"`
			if err != nil {
				msg = err.Error()
			}
			writeError(w, r, contracts.FieldError("model", 0, "%s", msg))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), modelControlTimeout)
		defer cancel()
		st, err := op(ctx, req.Model)
		if err != nil {
			if r.Context().Err() != nil {
				clientGone(w)
				return
			}
			writeError(w, r, contracts.AsError(err))
			return
		}
		writeJSON(w, http.StatusOK, st)
	}
}
