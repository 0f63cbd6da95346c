package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

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
// that is, NATS is connected and at least one processor answers a ping.
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
	writeJSON(w, http.StatusOK, statusBody{Status: "ready"})
}
