package bridge

import (
	"context"
	"net/http"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// predict answers POST /predict: validate, send to a processor, relay its answer.
func (s *Server) predict(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, s.similarityLimit(), writeError)
	if !ok {
		return
	}
	if e, refuse := s.gate.refuse(body, s.cfg.RequestTimeout, time.Now()); refuse {
		writeError(w, r, e) // every processor would refuse it: not decoded, not sent
		return
	}
	req, ok := parse[contracts.Request](w, r, body, writeError)
	if !ok {
		return
	}
	t, cat := tenancyOf(r.Context()), req.Catalog
	if cat != "" {
		if e := t.check("catalog", cat); e != nil {
			writeError(w, r, e)
			return
		}
	}
	if err := req.Validate(s.cfg.Limits); err != nil {
		writeError(w, r, contracts.AsError(err))
		return
	}
	req.Catalog = t.qualify(cat)
	req.RequestID = bodyRequestID(w, r, req.RequestID)
	relay(w, r, s.cfg.RequestTimeout, func(ctx context.Context) (*contracts.Response, error) {
		resp, err := s.client.Match(ctx, req)
		return resp, t.fixErr(err, cat)
	}, func(h http.Header, resp *contracts.Response) (int, any, *contracts.Error) {
		if resp.RequestID == "" {
			resp.RequestID = req.RequestID
		}
		if t := resp.Truncated; t != nil {
			setTruncated(h, "query", t.Query)
			if len(t.ProductDescriptions) > 0 {
				names := h.Get(headerTruncated)
				setTruncated(h, "product_descriptions", t.ProductDescriptions)
				if names != "" {
					h.Set(headerTruncated, names+","+h.Get(headerTruncated))
				}
			}
		}
		return http.StatusOK, resp, nil
	}, writeError)
}
