package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// natsHeaderRoom is kept free in a NATS message for the headers the client
// adds (trace context, request id, timeout), so that a body under the limit
// always fits under the server's max_payload.
const natsHeaderRoom = 4 << 10

// predict answers POST /predict: validate, send to a processor, relay its answer.
func (s *Server) predict(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, ok := s.readBody(w, r, writeError)
	if !ok {
		return
	}
	if e, refuse := s.gate.refuse(body, s.cfg.RequestTimeout, time.Now()); refuse {
		writeError(w, r, e) // every processor would refuse it: not decoded, not sent
		return
	}
	lim := s.cfg.Limits
	lim.MaxBodyBytes = s.bodyLimit(s.cfg.Limits.MaxBodyBytes)
	req, err := contracts.DecodeRequest(body, lim)
	if err != nil {
		writeError(w, r, contracts.AsError(err))
		return
	}
	if req.RequestID == "" {
		req.RequestID = infoFrom(r.Context()).id
	} else {
		setRequestID(w, r, req.RequestID)
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	resp, err := s.client.Match(ctx, req)
	if err != nil {
		if r.Context().Err() != nil {
			clientGone(w)
			return
		}
		writeError(w, r, contracts.AsError(err))
		return
	}
	if resp.RequestID == "" {
		resp.RequestID = req.RequestID
	}
	setTiming(w, start, resp.Timing)
	writeJSON(w, http.StatusOK, resp)
}

// readBody checks the content type and reads the body within the request
// body limit. When it cannot, it has answered (with writeErr, or as
// clientGone when the client left) and ok is false.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request,
	writeErr func(http.ResponseWriter, *http.Request, *contracts.Error)) (body []byte, ok bool) {
	if e := checkContentType(r.Header.Get("Content-Type")); e != nil {
		writeErr(w, r, e)
		return nil, false
	}
	return readBodyLimit(w, r, s.bodyLimit(s.cfg.Limits.MaxBodyBytes), writeErr)
}

// readBodyLimit reads a body of at most limit bytes, or answers the error
// with writeErr and returns false.
func readBodyLimit(w http.ResponseWriter, r *http.Request, limit int,
	writeErr func(http.ResponseWriter, *http.Request, *contracts.Error)) ([]byte, bool) {
	tooLarge := &contracts.Error{Code: contracts.CodePayloadTooLarge, Limit: limit,
		Message: fmt.Sprintf("request body is larger than the limit of %d bytes", limit)}
	if r.ContentLength > int64(limit) { // known up front: do not read it
		writeErr(w, r, tooLarge)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			writeErr(w, r, tooLarge)
		case r.Context().Err() != nil:
			clientGone(w)
		default:
			writeErr(w, r, contracts.Errorf(contracts.CodeMalformedJSON, "read request body: %v", err))
		}
		return nil, false
	}
	return body, true
}

// bodyLimit is the largest body a route reads: limit, capped so that the
// request still fits in one NATS message. The server's max_payload is read
// per request because a reconnect may reach a server with another one;
// before the first connect it is unknown (0).
func (s *Server) bodyLimit(limit int) int {
	if mp := int(s.cfg.NATS.MaxPayload()) - natsHeaderRoom; mp > 0 && (limit <= 0 || mp < limit) {
		limit = mp
	}
	if limit <= 0 {
		limit = contracts.DefaultLimits.MaxBodyBytes
	}
	return limit
}

// checkContentType accepts application/json, with no charset or a UTF-8 one:
// JSON between systems is UTF-8 (RFC 8259), and the decoder rejects anything else.
func checkContentType(v string) *contracts.Error {
	if v == "" {
		return contracts.Errorf(contracts.CodeUnsupportedMediaType, "Content-Type is missing; want application/json")
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil || mt != "application/json" {
		return contracts.Errorf(contracts.CodeUnsupportedMediaType, "Content-Type %q is not supported; want application/json", v)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return contracts.Errorf(contracts.CodeUnsupportedMediaType, "charset %q is not supported; JSON must be UTF-8", cs)
	}
	return nil
}

// clientGone records that the caller left before its answer was ready. It is
// not an error of the service, so it is neither logged as one nor traced as one.
func clientGone(w http.ResponseWriter) {
	w.WriteHeader(statusClientClosedRequest)
}
