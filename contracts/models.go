package contracts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Subjects of model control. Load, switch and unload go to one processor of
// the queue group, which validates the change and records it as the desired
// state every processor converges to; status is answered by every processor.
const (
	SubjectModelsLoad   = "simmatch.models.load"
	SubjectModelsSwitch = "simmatch.models.switch"
	SubjectModelsUnload = "simmatch.models.unload"
	SubjectModelsStatus = "simmatch.models.status"
)

// maxModelRef bounds a model reference; names and versions are directory names.
const maxModelRef = 128

// ParseModelRef splits "name" or "name@version" into its parts; version is
// empty when ref names no version. Names and versions are directory names of
// the model store: letters, digits, '.', '_' and '-', not starting with '.'.
func ParseModelRef(ref string) (name, version string, err error) {
	if len(ref) > maxModelRef {
		return "", "", fmt.Errorf("is %d bytes; the limit is %d", len(ref), maxModelRef)
	}
	name, version, hasVersion := strings.Cut(ref, "@")
	if err := checkModelPart("name", name); err != nil {
		return "", "", err
	}
	if hasVersion {
		if err := checkModelPart("version", version); err != nil {
			return "", "", err
		}
	}
	return name, version, nil
}

func checkModelPart(what, s string) error {
	if s == "" {
		return fmt.Errorf(`want "name" or "name@version": the %s is empty`, what)
	}
	if s[0] == '.' {
		return fmt.Errorf("the %s %q must not start with '.'", what, s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("the %s %q may hold only letters, digits, '.', '_' and '-'", what, s)
		}
	}
	return nil
}

// ModelRef formats name and version as "name@version".
func ModelRef(name, version string) string { return name + "@" + version }

// ModelRequest is the body of load, switch and unload: the model
// "name@version" (switch and unload also accept "name" for the default).
type ModelRequest struct {
	Model string `json:"model"`
}

// Model states in ModelVersionStatus.State.
const (
	ModelLoading  = "loading"  // loading and validating; not serving yet
	ModelServing  = "serving"  // serving requests
	ModelDraining = "draining" // unloaded: finishing its in-flight requests, then freed
)

// ModelVersionStatus is one loaded version of a model on one processor.
type ModelVersionStatus struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	Dimensions int    `json:"dimensions,omitempty"`
	State      string `json:"state"`
	// Default is true for the version that serves requests naming only the model.
	Default bool `json:"default"`
	// InFlight is the requests this version is serving now.
	InFlight int64 `json:"in_flight"`
	// FileBytes is the size of its ONNX graph, a floor of the memory it holds.
	FileBytes int64 `json:"file_bytes"`
	// MaxBatchTokens is its scheduler's batch budget (padded tokens).
	MaxBatchTokens int `json:"max_batch_tokens,omitempty"`
	// Prompts are the instructions the version prepends to texts by input
	// type (InputQuery, InputDocument), from its directory's
	// config_sentence_transformers.json; none for all-MiniLM-L6-v2.
	Prompts map[string]string `json:"prompts,omitempty"`
}

// ProcessorModels is one processor's answer to a status request.
type ProcessorModels struct {
	// Processor is the processor's micro service id.
	Processor string `json:"processor"`
	// RSSBytes is the processor's resident memory (0 where unknown).
	RSSBytes int64 `json:"rss_bytes"`
	// DesiredState is "jetstream" when the processor follows the
	// simmatch_models key-value bucket, "local" when it is controlled alone.
	DesiredState string               `json:"desired_state"`
	Models       []ModelVersionStatus `json:"models"`
	// DefaultModel is the "name@version" that serves requests naming no
	// model, "" while none does (loading, or a switch under way).
	DefaultModel string `json:"default_model"`
	// Catalogs is the state of the catalogs the processor follows; nil when
	// it serves no catalogs.
	Catalogs *CatalogsState `json:"catalogs,omitempty"`
	Timed
}

// CatalogsState is what a processor has loaded of the stored catalogs: the
// bridge's /ready waits for a processor whose catalogs are caught up.
type CatalogsState struct {
	// Listed is false until the processor has listed the stored catalogs at
	// start and begun following each.
	Listed bool `json:"listed"`
	// Following is how many catalogs the processor follows.
	Following int `json:"following"`
	// Loading names the followed catalogs that have not yet applied their
	// stream up to where it stood when the processor began following them.
	Loading []string `json:"loading"`
	// NotLoaded names the stored catalogs the processor does not hold
	// because they do not fit its catalogs' memory budget
	// (SIMMATCH_CATALOG_MEMORY_BYTES): it answers their requests 503.
	NotLoaded []string `json:"not_loaded,omitempty"`
}

// Ready reports whether p serves requests naming no model and has its
// catalogs caught up; if not, missing says what is missing, in words.
func (p ProcessorModels) Ready() (ok bool, missing string) {
	var miss []string
	if p.DefaultModel == "" {
		m := "no default model serving"
		for _, v := range p.Models {
			if v.State == ModelLoading {
				m += " (" + ModelRef(v.Name, v.Version) + " is loading)"
				break
			}
		}
		miss = append(miss, m)
	}
	if c := p.Catalogs; c != nil {
		if !c.Listed {
			miss = append(miss, "the stored catalogs are not listed yet")
		}
		if len(c.Loading) > 0 {
			miss = append(miss, fmt.Sprintf("catalogs loading: %s", strings.Join(c.Loading, ", ")))
		}
	}
	return len(miss) == 0, strings.Join(miss, "; ")
}

// ModelsStatus gathers the answers of every processor to a status request.
type ModelsStatus struct {
	Processors []ProcessorModels `json:"processors"`
}

// ModelControl sends model control requests over NATS: load, switch and
// unload through the client's one call path (acknowledged, sent again to
// another processor when one dies), status gathered from every processor.
type ModelControl struct {
	nc     *nats.Conn
	client *Client
}

// NewModelControl returns a ModelControl that sends on nc. A call whose
// context has no deadline waits up to five minutes (a load takes seconds).
func NewModelControl(nc *nats.Conn) *ModelControl {
	c, _ := NewClient(nc, WithTimeout(5*time.Minute)) // fails only on a nil nc, which fails at the first call too
	return &ModelControl{nc: nc, client: c}
}

// Load loads model ("name@version") on the processors and waits until the
// processor that took the request has validated it.
func (c *ModelControl) Load(ctx context.Context, model string) (*ProcessorModels, error) {
	return c.do(ctx, SubjectModelsLoad, model)
}

// Switch makes model ("name@version") the default version of its name,
// loading it first when needed.
func (c *ModelControl) Switch(ctx context.Context, model string) (*ProcessorModels, error) {
	return c.do(ctx, SubjectModelsSwitch, model)
}

// Unload unloads model ("name@version"); its in-flight requests finish on it.
func (c *ModelControl) Unload(ctx context.Context, model string) (*ProcessorModels, error) {
	return c.do(ctx, SubjectModelsUnload, model)
}

func (c *ModelControl) do(ctx context.Context, subject, model string) (*ProcessorModels, error) {
	if c.client == nil {
		return nil, errors.New("contracts: model control without a NATS connection")
	}
	return do[ProcessorModels](ctx, c.client, subject, ModelRequest{Model: model}, "")
}

// Status asks every processor for its models and gathers the answers that
// arrive within wait (or until ctx ends).
func (c *ModelControl) Status(ctx context.Context, wait time.Duration) (*ModelsStatus, error) {
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishRequest(SubjectModelsStatus, inbox, nil); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	st := &ModelsStatus{Processors: []ProcessorModels{}}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return st, nil
			}
			return nil, err
		}
		var p ProcessorModels
		if json.Unmarshal(m.Data, &p) == nil {
			st.Processors = append(st.Processors, p)
		}
	}
}
