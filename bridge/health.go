package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

// statusBody is the body of the /health and /ready answers.
type statusBody struct {
	Status string `json:"status"`
}

// health answers GET /health: the process is alive. It checks nothing else,
// so a NATS outage never gets a healthy bridge restarted.
func health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, statusBody{Status: "ok"})
}

// ready answers GET /ready: 200 when the bridge can serve /predict right now,
// that is, NATS is connected and at least one processor answers with its
// default model serving and the catalogs it follows caught up (its answer
// to the models status request, simmatch.models.status). Otherwise 503,
// whose message says what is missing on each processor that answered.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if st := s.cfg.NATS.Status(); st != nats.CONNECTED {
		writeError(w, r, contracts.Errorf(contracts.CodeNoProcessor,
			"not ready: the NATS connection is %s", strings.ToLower(st.String())))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	if err := s.client.Ping(ctx); err != nil {
		var msg string
		switch {
		case r.Context().Err() != nil:
			clientGone(w)
			return
		case errors.Is(err, contracts.ErrNoProcessor):
			msg = "not ready: no processor is running (nothing answers $SRV.PING." + contracts.ServiceName + ")"
		case errors.Is(err, contracts.ErrTimeout):
			msg = fmt.Sprintf("not ready: no processor answered $SRV.PING.%s within %v", contracts.ServiceName, s.cfg.ReadyTimeout)
		default:
			msg = "not ready: ping the processors: " + contracts.AsError(err).Message
		}
		writeError(w, r, contracts.Errorf(contracts.CodeNoProcessor, "%s", msg))
		return
	}
	p, missing, err := s.readyProcessor(ctx)
	switch {
	case r.Context().Err() != nil:
		clientGone(w)
	case err != nil:
		writeError(w, r, contracts.Errorf(contracts.CodeNoProcessor, "not ready: ask the processors' status: %v", err))
	case p == nil:
		writeError(w, r, contracts.Errorf(contracts.CodeNoProcessor, "not ready: %s", missing))
	default:
		writeJSON(w, http.StatusOK, readyBody{Status: "ready", Processor: p.Processor, DefaultModel: p.DefaultModel, Catalogs: p.Catalogs})
	}
}

// readyBody is the body of a 200 /ready: the processor found ready.
type readyBody struct {
	Status       string                   `json:"status"`
	Processor    string                   `json:"processor"`
	DefaultModel string                   `json:"default_model"`
	Catalogs     *contracts.CatalogsState `json:"catalogs,omitempty"`
}

// readyProcessor asks every processor for its status and returns the first
// that is ready, or nil and what the others miss once ctx ends.
func (s *Server) readyProcessor(ctx context.Context) (*contracts.ProcessorModels, string, error) {
	nc := s.cfg.NATS
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, "", err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(contracts.SubjectModelsStatus, inbox, nil); err != nil {
		return nil, "", err
	}
	var missing []string
	wait := ctx
	for {
		m, err := sub.NextMsgWithContext(wait)
		if err != nil {
			if len(missing) == 0 {
				return nil, fmt.Sprintf("no processor answered %s within %v", contracts.SubjectModelsStatus, s.cfg.ReadyTimeout), nil
			}
			return nil, "no processor is ready: " + strings.Join(missing, "; "), nil
		}
		var p contracts.ProcessorModels
		if json.Unmarshal(m.Data, &p) != nil {
			continue
		}
		ok, why := p.Ready()
		if ok {
			return &p, "", nil
		}
		missing = append(missing, "processor "+p.Processor+": "+why)
		// The processors answer together: once one has said it is not
		// ready, the others get readyQuiet more, not the whole timeout.
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, readyQuiet)
		defer cancel()
	}
}

// readyQuiet is how long /ready waits for another processor's status after
// one answered not ready.
const readyQuiet = 250 * time.Millisecond
