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
	// Prompts are the version's instructions by input type (query, document).
	Prompts map[string]string `json:"prompts,omitempty"`
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

// modelsListWait is how long GET /v1/models gathers the model status of
// the processors under model control.
const modelsListWait = 250 * time.Millisecond

// listModels answers GET /v1/models. Every processor answers its micro
// stats ($SRV.STATS: its start and the model it started with); a processor
// under model control also answers its live status, whose default version
// wins, so a switch shows at once and no remembered model is ever served.
func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	relay(w, r, s.cfg.ReadyTimeout, func(ctx context.Context) (openAIModelList, error) {
		live := make(chan *contracts.ModelsStatus, 1)
		go func() {
			st, _ := s.models.Status(ctx, modelsListWait) // none: no processor under model control
			live <- st
		}()
		stats, err := gatherStats(ctx, s.cfg.NATS)
		st := <-live
		if err != nil {
			return openAIModelList{}, contracts.Errorf(contracts.CodeInternal, "list processors: %v", err)
		}
		if len(stats) == 0 {
			return openAIModelList{}, &contracts.Error{Code: contracts.CodeNoProcessor,
				Message: "no processor answered within " + s.cfg.ReadyTimeout.String() + "; start one or retry later"}
		}
		return modelList(stats, st), nil
	}, asIs, writeOpenAIError)
}

// modelList is one entry per default model version the processors serve:
// from a processor's live status when it answered one, else from its stats.
func modelList(stats []serviceStats, live *contracts.ModelsStatus) openAIModelList {
	defaults := map[string][]contracts.ModelInfo{}
	prompts := map[string]map[string]string{} // by name@version
	if live != nil {
		for _, p := range live.Processors {
			for _, v := range p.Models {
				if v.Default && v.State == contracts.ModelServing {
					defaults[p.Processor] = append(defaults[p.Processor], contracts.ModelInfo{Name: v.Name, Version: v.Version, Dimensions: v.Dimensions})
					if len(v.Prompts) > 0 {
						prompts[contracts.ModelRef(v.Name, v.Version)] = v.Prompts
					}
				}
			}
		}
	}
	byID := map[string]*openAIModel{}
	for _, st := range stats {
		served, ok := defaults[st.ID]
		if !ok {
			dims, _ := strconv.Atoi(st.Metadata["model.dimensions"])
			served = []contracts.ModelInfo{{Name: st.Metadata["model.name"], Version: st.Metadata["model.version"], Dimensions: dims}}
		}
		for _, mi := range served {
			key := mi.Name + "\x00" + mi.Version
			m := byID[key]
			if m == nil {
				m = &openAIModel{ID: mi.Name, Object: "model", Created: st.Started.Unix(), OwnedBy: "simmatch", Version: mi.Version, Dimensions: mi.Dimensions,
					Prompts: prompts[contracts.ModelRef(mi.Name, mi.Version)]}
				byID[key] = m
			}
			m.Processors++
			if c := st.Started.Unix(); c < m.Created {
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
