package models_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/models"
)

// startControl serves model control for r on ns, stopped when the test ends.
func startControl(t testing.TB, ns *server.Server, r *models.Registry, p *processor.Processor) *models.Control {
	t.Helper()
	c, err := models.StartControl(context.Background(), models.ControlConfig{NATS: testenv.Connect(t, ns), Registry: r, Processor: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// defaultOf is the default version of name in a processor's status.
func defaultOf(p contracts.ProcessorModels, name string) string {
	for _, m := range p.Models {
		if m.Name == name && m.Default {
			return m.Version
		}
	}
	return ""
}

func loaded(p contracts.ProcessorModels, name string) []string {
	var l []string
	for _, m := range p.Models {
		if m.Name == name && m.State == contracts.ModelServing {
			l = append(l, m.Version)
		}
	}
	return l
}

// TestFleetFollowsTheDesiredState switches one processor of a fleet over
// NATS: the switch lands in the JetStream bucket, and a processor that
// starts later adopts it; an unload reaches both.
func TestFleetFollowsTheDesiredState(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	ctl := contracts.NewModelControl(testenv.Connect(t, ns))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	ra, name := newRegistry(t, prometheus.NewRegistry(), "fp32")
	startControl(t, ns, ra, startProcessor(t, ns, ra))

	st, err := ctl.Switch(ctx, name+"@int8")
	if err != nil {
		t.Fatal(err)
	}
	if got := defaultOf(*st, name); got != "int8" {
		t.Fatalf("after switch: default %q, want int8 (%+v)", got, st)
	}
	c := newClient(t, ns)
	if resp, err := match(t, c, ""); err != nil || resp.Model.Version != "int8" {
		t.Fatalf("after switch: %+v, %v; want int8", resp, err)
	}

	// A processor joining later starts on fp32 (its -model-dir) and converges.
	// It says so in its log, since its operator may expect its own version.
	rb, _ := newRegistry(t, prometheus.NewRegistry(), "fp32")
	pb := startProcessor(t, ns, rb)
	var logs testenv.LogBuffer
	cb, err := models.StartControl(context.Background(), models.ControlConfig{NATS: testenv.Connect(t, ns), Registry: rb, Processor: pb,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cb.Stop)
	testenv.WaitFor(t, 2*time.Minute, "processor b adopts int8 as the default", func() bool {
		return rb.Info().Version == "int8"
	})
	if l := logs.String(); !strings.Contains(l, "the fleet's default differs from this processor's") ||
		!strings.Contains(l, "fleet_default=int8") || !strings.Contains(l, "was=fp32") {
		t.Errorf("processor b's log does not say it left its own version for the fleet's:\n%s", l)
	}

	// Unloading fp32 reaches both; the default cannot be unloaded.
	if _, err := ctl.Unload(ctx, name+"@int8"); !isCode(err, contracts.CodeInvalidRequest) {
		t.Fatalf("unload of the default: got %v, want invalid_request", err)
	}
	if _, err := ctl.Unload(ctx, name+"@fp32"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "both processors hold only int8", func() bool {
		s, err := ctl.Status(ctx, 300*time.Millisecond)
		if err != nil || len(s.Processors) != 2 {
			return false
		}
		for _, p := range s.Processors {
			if l := loaded(p, name); len(l) != 1 || l[0] != "int8" || p.DesiredState != "jetstream" {
				return false
			}
		}
		return true
	})
	if _, err := ctl.Switch(ctx, name+"@nope"); !isCode(err, contracts.CodeNotFound) {
		t.Fatalf("switch to a version not in the store: got %v, want not_found", err)
	}
}

// TestOwnerRecordsItsDefault starts processors on a desired state whose
// recorded default is fp32: one started with int8 and not owning the state
// follows fp32 (a processor joining a fleet); one started with int8 that owns
// it (the all-in-one given a model at start) records int8 over fp32, and
// every processor converges to int8.
func TestOwnerRecordsItsDefault(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	js, err := jetstream.New(testenv.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, name := testenv.ModelStore(t)
	recorded := func() models.Desired {
		t.Helper()
		kv, err := js.KeyValue(ctx, models.DefaultBucket)
		if err != nil {
			t.Fatal(err)
		}
		var d models.Desired
		if e, err := kv.Get(ctx, name); err != nil {
			t.Fatal(err)
		} else if err := json.Unmarshal(e.Value(), &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	start := func(r *models.Registry, _ string, own bool) *testenv.LogBuffer {
		t.Helper()
		var logs testenv.LogBuffer
		c, err := models.StartControl(ctx, models.ControlConfig{NATS: testenv.Connect(t, ns), Registry: r, Processor: startProcessor(t, ns, r), Own: own,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Stop)
		return &logs
	}

	// a records fp32: nobody had recorded the name.
	ra, _ := newRegistry(t, prometheus.NewRegistry(), "fp32")
	start(ra, "a", false)
	if d := recorded(); d.Default != "fp32" {
		t.Fatalf("recorded %+v, want fp32 the default", d)
	}

	// b, started with int8 without owning the state: the recorded fp32 wins.
	rb, _ := newRegistry(t, prometheus.NewRegistry(), "int8")
	start(rb, "b", false)
	testenv.WaitFor(t, 2*time.Minute, "processor b follows the recorded fp32", func() bool {
		return rb.Info().Version == "fp32"
	})
	if d := recorded(); d.Default != "fp32" {
		t.Fatalf("after b: recorded %+v, want fp32 still the default", d)
	}

	// c, started with int8 and owning the state: int8 is recorded over fp32,
	// which is no longer desired, and every processor converges to it.
	rc, _ := newRegistry(t, prometheus.NewRegistry(), "int8")
	logs := start(rc, "c", true)
	if d := recorded(); d.Default != "int8" || len(d.Versions) != 1 || d.Versions[0] != "int8" {
		t.Fatalf("after c: recorded %+v, want int8 the default and only version", d)
	}
	if l := logs.String(); !strings.Contains(l, "the model given at start is now the recorded default") ||
		!strings.Contains(l, "model="+name+"@int8") || !strings.Contains(l, "was="+name+"@fp32") {
		t.Errorf("processor c's log does not say it recorded its default over fp32:\n%s", l)
	}
	for id, r := range map[string]*models.Registry{"a": ra, "b": rb, "c": rc} {
		testenv.WaitFor(t, 2*time.Minute, "processor "+id+" serves int8 alone", func() bool {
			for _, s := range r.Status() {
				if s.Version == "fp32" && s.State == contracts.ModelServing {
					return false
				}
			}
			return r.Info().Version == "int8"
		})
	}
}

// TestLocalControlWithoutJetStream controls a processor whose server has no
// JetStream: control works on the processor alone and says so.
func TestLocalControlWithoutJetStream(t *testing.T) {
	ns := testenv.StartNATS(t)
	r, name := newRegistry(t, prometheus.NewRegistry(), "fp32")
	startControl(t, ns, r, startProcessor(t, ns, r))
	ctl := contracts.NewModelControl(testenv.Connect(t, ns))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := ctl.Load(ctx, name+"@int8"); err != nil {
		t.Fatal(err)
	}
	st, err := ctl.Switch(ctx, name+"@int8")
	if err != nil {
		t.Fatal(err)
	}
	if st.DesiredState != "local" || defaultOf(*st, name) != "int8" || st.RSSBytes <= 0 {
		t.Fatalf("status %+v: want local control, int8 the default, an RSS", st)
	}
	if _, err := ctl.Unload(ctx, name+"@fp32"); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Load(ctx, "bad name"); !isCode(err, contracts.CodeInvalidRequest) {
		t.Fatalf("load of a malformed name: got %v, want invalid_request", err)
	}
}

func isCode(err error, code contracts.Code) bool {
	var e *contracts.Error
	return errors.As(err, &e) && e.Code == code
}

// The control subjects decode as strictly as every other door: a body that
// is not valid UTF-8 is malformed_json naming it, never a model name with
// its bytes replaced.
func TestControlRefusesInvalidUTF8(t *testing.T) {
	ns := testenv.StartNATS(t)
	r, _ := newRegistry(t, prometheus.NewRegistry(), "fp32")
	startControl(t, ns, r, startProcessor(t, ns, r))
	nc := testenv.Connect(t, ns)
	for _, subject := range []string{contracts.SubjectModelsLoad, contracts.SubjectModelsSwitch, contracts.SubjectModelsUnload} {
		m, err := nc.Request(subject, []byte("{\"model\": \"all-MiniLM-L6-v2@\xff\"}"), 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		if code := m.Header.Get(contracts.HeaderErrorCode); code != string(contracts.CodeMalformedJSON) || !strings.Contains(m.Header.Get(contracts.HeaderError), "UTF-8") {
			t.Errorf("%s: %q %q, want malformed_json naming UTF-8", subject, code, m.Header.Get(contracts.HeaderError))
		}
	}
}
