package bridge

import (
	"context"
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
)

// modelRoutes are the admin routes of model control (processor/models).
// GET /v1/models itself is the OpenAI-shaped model list, not served here.
func (s *Server) modelRoutes(r chi.Router) {
	r.Get("/v1/models/status", func(w http.ResponseWriter, r *http.Request) {
		relay(w, r, 0, func(ctx context.Context) (*contracts.ModelsStatus, error) {
			return s.modelStatus(ctx, modelsStatusWait)
		}, asIs, writeError)
	})
	for path, op := range map[string]func(context.Context, string) (*contracts.ProcessorModels, error){
		"/v1/models/load":   s.models.Load,
		"/v1/models/switch": s.models.Switch,
		"/v1/models/unload": s.models.Unload,
		"/load-model":       s.models.Load, // the original service's paths
		"/switch-model":     s.models.Switch,
	} {
		r.Post(path, s.modelOp(op))
	}
}

// modelStatus gathers the processors' model status for wait: a
// no_processor error when none answered.
func (s *Server) modelStatus(ctx context.Context, wait time.Duration) (*contracts.ModelsStatus, error) {
	st, err := s.models.Status(ctx, wait)
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeInternal, "gather model status: %v", err)
	}
	if len(st.Processors) == 0 {
		return nil, &contracts.Error{Code: contracts.CodeNoProcessor, Message: "no processor answered the model status request; start one or retry later"}
	}
	return st, nil
}

// modelOp answers a load, switch or unload: {"model": "name@version"} in,
// the status of the processor that applied it out.
func (s *Server) modelOp(op func(context.Context, string) (*contracts.ProcessorModels, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, ok := decode[contracts.ModelRequest](w, r, s.modelLimit(), writeError)
		if !ok {
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
		relay(w, r, modelControlTimeout, func(ctx context.Context) (*contracts.ProcessorModels, error) {
			return op(ctx, req.Model)
		}, asIs, writeError)
	}
}
