package bridge

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
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

// modelsListWait is how long GET /v1/models gathers the processors' model
// status.
const modelsListWait = 250 * time.Millisecond

// listModels answers GET /v1/models from the processors' live model status
// (the default version each serves now, so a switch shows at once), with
// the processors' start times (their $SRV.STATS) as created.
func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	relay(w, r, s.cfg.ReadyTimeout, func(ctx context.Context) (openAIModelList, error) {
		started := make(chan map[string]time.Time, 1)
		go func() {
			m := map[string]time.Time{}
			stats, _ := gatherStats(ctx, s.cfg.NATS) // created is informative: none on failure
			for _, st := range stats {
				m[st.ID] = st.Started
			}
			started <- m
		}()
		st, err := s.modelStatus(ctx, modelsListWait)
		created := <-started
		if err != nil {
			return openAIModelList{}, err
		}
		return modelList(st, created), nil
	}, asIs, writeOpenAIError)
}

// modelList is one entry per default model version the processors serve.
func modelList(st *contracts.ModelsStatus, started map[string]time.Time) openAIModelList {
	byID := map[string]*openAIModel{}
	for _, p := range st.Processors {
		c := started[p.Processor].Unix()
		for _, v := range p.Models {
			if !v.Default || v.State != contracts.ModelServing {
				continue
			}
			key := v.Name + "\x00" + v.Version
			m := byID[key]
			if m == nil {
				m = &openAIModel{ID: v.Name, Object: "model", Created: c, OwnedBy: "simmatch", Version: v.Version, Dimensions: v.Dimensions}
				byID[key] = m
			}
			m.Processors++
			if c < m.Created {
				m.Created = c
			}
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
	return out
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
