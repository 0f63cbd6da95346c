package bridge

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

// GET /v1/models answers in OpenAI's shape ({"object": "list", "data":
// [{"id", "object": "model", "created", "owned_by"}]}), one entry per distinct
// model the running processors serve, with simmatch's own fields beside
// OpenAI's: version, dimensions and the number of processors serving it.
// OpenAI's SDKs ignore fields they do not know, so model administration
// (versions, state, memory per processor) can add fields to these entries
// without a second, clashing GET /v1/models.

type openAIModel struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	Created    int64  `json:"created"`
	OwnedBy    string `json:"owned_by"`
	Version    string `json:"version"`
	Dimensions int    `json:"dimensions"`
	Processors int    `json:"processors"`
}

type openAIModelList struct {
	Object string        `json:"object"`
	Data   []openAIModel `json:"data"`
}

// serviceStats is the part of a micro $SRV.STATS answer the bridge reads.
type serviceStats struct {
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata"`
	Started  time.Time         `json:"started"`
}

// modelsGatherIdle is how long the gathering of $SRV.STATS answers waits for
// one more processor after the last answer.
const modelsGatherIdle = 100 * time.Millisecond

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	stats, err := gatherStats(ctx, s.cfg.NATS)
	if err != nil {
		writeOpenAIError(w, r, contracts.Errorf(contracts.CodeInternal, "list processors: %v", err))
		return
	}
	if len(stats) == 0 {
		writeOpenAIError(w, r, &contracts.Error{Code: contracts.CodeNoProcessor,
			Message: "no processor answered within " + s.cfg.ReadyTimeout.String() + "; start one or retry later"})
		return
	}
	byID := map[string]*openAIModel{}
	for _, st := range stats {
		name, ver := st.Metadata["model.name"], st.Metadata["model.version"]
		key := name + "\x00" + ver
		m := byID[key]
		if m == nil {
			dims, _ := strconv.Atoi(st.Metadata["model.dimensions"])
			m = &openAIModel{ID: name, Object: "model", Created: st.Started.Unix(), OwnedBy: "simmatch", Version: ver, Dimensions: dims}
			byID[key] = m
		}
		m.Processors++
		if c := st.Started.Unix(); c < m.Created {
			m.Created = c
		}
	}
	out := openAIModelList{Object: "list", Data: make([]openAIModel, 0, len(byID))}
	for _, m := range byID {
		out.Data = append(out.Data, *m)
	}
	sort.Slice(out.Data, func(i, j int) bool {
		a, b := out.Data[i], out.Data[j]
		return a.ID < b.ID || a.ID == b.ID && a.Version < b.Version
	})
	writeJSON(w, http.StatusOK, out)
}

// gatherStats asks every processor of the micro service for its stats and
// collects the answers until none has come for modelsGatherIdle, or ctx ends.
func gatherStats(ctx context.Context, nc *nats.Conn) ([]serviceStats, error) {
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$SRV.STATS."+contracts.ServiceName, inbox, nil); err != nil {
		return nil, err
	}
	var out []serviceStats
	seen := map[string]bool{}
	idle := time.NewTimer(time.Hour) // armed by the first answer
	defer idle.Stop()
	for {
		select {
		case m := <-ch:
			var st serviceStats
			if json.Unmarshal(m.Data, &st) == nil && !seen[st.ID] {
				seen[st.ID] = true
				out = append(out, st)
			}
			idle.Reset(modelsGatherIdle)
		case <-idle.C:
			return out, nil
		case <-ctx.Done():
			return out, nil
		}
	}
}
