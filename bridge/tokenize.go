package bridge

import (
	"context"
	"net/http"
	"strconv"

	"github.com/simmatch/simmatch/contracts"
)

// teiTokenize answers TEI's POST /tokenize: per input, its tokens
// ({"id", "text", "special", "start", "stop"}, UTF-8 byte offsets into the
// input; null for special tokens), never truncated. The header
// X-Max-Tokens says the model's window.
func (s *Server) teiTokenize(w http.ResponseWriter, r *http.Request) {
	in, ok := decode[contracts.TokenizeRequest](w, r, s.similarityLimit(), writeError)
	if !ok {
		return
	}
	in.RequestID = infoFrom(r.Context()).id
	if err := in.Validate(s.cfg.Limits); err != nil {
		writeError(w, r, contracts.AsError(err))
		return
	}
	relay(w, r, s.cfg.RequestTimeout, func(ctx context.Context) (*contracts.TokenizeResponse, error) {
		return s.client.Tokenize(ctx, in)
	}, func(h http.Header, resp *contracts.TokenizeResponse) (int, any, *contracts.Error) {
		if len(resp.Tokens) != len(in.Inputs) {
			return 0, nil, contracts.Errorf(contracts.CodeInternal, "processor tokenized %d of %d inputs", len(resp.Tokens), len(in.Inputs))
		}
		h.Set("X-Max-Tokens", strconv.Itoa(resp.MaxTokens))
		return http.StatusOK, resp.Tokens, nil
	}, writeError)
}

// teiDecode answers TEI's POST /decode: one text per id sequence.
func (s *Server) teiDecode(w http.ResponseWriter, r *http.Request) {
	in, ok := decode[contracts.DecodeIDsRequest](w, r, s.similarityLimit(), writeError)
	if !ok {
		return
	}
	in.RequestID = infoFrom(r.Context()).id
	if err := in.Validate(s.cfg.Limits); err != nil {
		writeError(w, r, contracts.AsError(err))
		return
	}
	relay(w, r, s.cfg.RequestTimeout, func(ctx context.Context) (*contracts.DecodeIDsResponse, error) {
		return s.client.DecodeIDs(ctx, in)
	}, func(_ http.Header, resp *contracts.DecodeIDsResponse) (int, any, *contracts.Error) {
		if len(resp.Texts) != len(in.IDs.Seqs) {
			return 0, nil, contracts.Errorf(contracts.CodeInternal, "processor decoded %d of %d sequences", len(resp.Texts), len(in.IDs.Seqs))
		}
		return http.StatusOK, resp.Texts, nil
	}, writeError)
}
