package bridge

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/simmatch/simmatch/contracts"
)

// The one ingress: every route with a body reads it with readBody and
// decodes it with decode (or parse), so every door gets the same content
// type, size, UTF-8, unknown-field and trailing-data checks, answered in its
// own error shape.

// errorWriter answers an error in a door's shape: writeError (simmatch's),
// writeOpenAIError, or a writer that renames fields (renamedWriter).
type errorWriter func(http.ResponseWriter, *http.Request, *contracts.Error)

// natsHeaderRoom is kept free in a NATS message for the headers the client
// adds (trace context, request id, timeout), so that a body under the limit
// always fits under the server's max_payload.
const natsHeaderRoom = 4 << 10

// maxModelBody bounds a model control body: {"model": "name@version"}.
const maxModelBody = 4 << 10

// decode reads r's JSON body (at most limit bytes, see readBody) into a T.
// When it cannot, it has answered with writeErr (or as clientGone) and ok is
// false.
func decode[T any](w http.ResponseWriter, r *http.Request, limit int, writeErr errorWriter) (v *T, ok bool) {
	body, ok := readBody(w, r, limit, writeErr)
	if !ok {
		return nil, false
	}
	return parse[T](w, r, body, writeErr)
}

// parse decodes a body readBody has read into a T with the one strict
// decoder (contracts.DecodeStrict).
func parse[T any](w http.ResponseWriter, r *http.Request, body []byte, writeErr errorWriter) (*T, bool) {
	v := new(T)
	if err := contracts.DecodeStrict(body, 0, v); err != nil {
		writeErr(w, r, contracts.AsError(err))
		return nil, false
	}
	return v, true
}

// readBody checks the content type and reads a body of at most limit bytes.
// When it cannot, it has answered (with writeErr, or as clientGone when the
// client left) and ok is false.
func readBody(w http.ResponseWriter, r *http.Request, limit int, writeErr errorWriter) ([]byte, bool) {
	if e := checkContentType(r.Header.Get("Content-Type")); e != nil {
		writeErr(w, r, e)
		return nil, false
	}
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

// Body limits per route family.

// similarityLimit bounds /predict, /v1/embeddings, /embed and /similarity.
func (s *Server) similarityLimit() int { return s.bodyLimit(s.cfg.Limits.MaxBodyBytes) }

// catalogLimit bounds the catalog routes.
func (s *Server) catalogLimit() int { return s.bodyLimit(s.cfg.CatalogLimits.MaxBodyBytes) }

// jobLimit bounds POST /v1/jobs. A job is stored in JetStream in chunks,
// never sent as one message, so max_payload does not cap it.
func (s *Server) jobLimit() int { return s.cfg.JobLimits.MaxBodyBytes }

// modelLimit bounds the model control routes.
func (s *Server) modelLimit() int { return s.bodyLimit(maxModelBody) }

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
