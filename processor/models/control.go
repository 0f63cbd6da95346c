package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor"
)

// DefaultBucket is the JetStream key-value bucket of the desired state: one
// key per model name, its value a Desired.
const DefaultBucket = "simmatch_models"

// Desired is the desired state of one model name: the versions every
// processor loads and the default among them.
type Desired struct {
	Default  string   `json:"default"`
	Versions []string `json:"versions"`
}

// ControlConfig configures StartControl. NATS, Registry and Processor are required.
type ControlConfig struct {
	NATS     *nats.Conn
	Registry *Registry
	// Processor serves the control endpoints (simmatch.models.*) through its
	// pipeline; its micro service id names it in status answers.
	Processor *processor.Processor
	// Bucket and Replicas of the desired state; default DefaultBucket, 1.
	Bucket   string
	Replicas int
	// MaxBytes bounds the bucket; 0: 256 MiB.
	MaxBytes int64
	// Own says this process owns the desired state: the registry's defaults
	// at start are recorded even over a recorded default (the all-in-one,
	// given a model explicitly). Without it a recorded name wins and this
	// processor follows the fleet (a processor joining a fleet).
	Own bool
	// Catalogs, when set, reports the catalogs' loading state in status
	// answers (catalog.Service.State); nil: the processor serves no catalogs.
	Catalogs func() contracts.CatalogsState
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Control serves model control over NATS and keeps the registry converged
// to the desired state in JetStream, or controls it alone when JetStream is
// not available. Stop it before closing the registry.
type Control struct {
	cfg ControlConfig
	kv  jetstream.KeyValue // nil: local control only
	ops sync.Mutex         // one control operation at a time on this processor

	mu      sync.Mutex
	applied uint64        // the last desired-state revision applied
	changed chan struct{} // closed and replaced when applied moves
	watcher jetstream.KeyWatcher
	done    chan struct{}
	seen    map[string]bool // names applied once: the start-up differences are reported
}

// StartControl serves simmatch.models.<op> on the processor and, when the
// server has JetStream, opens the desired-state bucket, records the
// registry's models in it for names it does not hold yet (and over the
// recorded default when cfg.Own), and converges to it from now on.
func StartControl(ctx context.Context, cfg ControlConfig) (*Control, error) {
	if cfg.NATS == nil || cfg.Registry == nil || cfg.Processor == nil {
		return nil, errors.New("models: ControlConfig.NATS, Registry and Processor are required")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 256 << 20
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Control{cfg: cfg, changed: make(chan struct{}), done: make(chan struct{})}
	if err := c.openBucket(ctx); err != nil {
		cfg.Logger.Warn("model desired state: JetStream is not available, so model control is local to this processor "+
			"(load, switch and unload reach one processor; enable JetStream on the NATS server to control a fleet)", "err", err)
		c.kv = nil
		close(c.done)
	}
	if err := cfg.Processor.Add(c.endpoints()...); err != nil {
		c.Stop()
		return nil, fmt.Errorf("models: %w", err)
	}
	return c, nil
}

func (c *Control) openBucket(ctx context.Context) error {
	js, err := jetstream.New(c.cfg.NATS)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: c.cfg.Bucket, Replicas: c.cfg.Replicas, MaxBytes: c.cfg.MaxBytes,
		Description: "simmatch: desired model versions and the default per model name"})
	if err != nil {
		return fmt.Errorf("open key-value bucket %s: %w", c.cfg.Bucket, err)
	}
	// What this processor loaded at start is the desired state of a name
	// nobody has recorded yet; a recorded name wins, unless this process
	// owns the desired state (Own): then its default replaces the recorded
	// one.
	for name, def := range c.cfg.Registry.Defaults() {
		b, _ := json.Marshal(Desired{Default: def, Versions: []string{def}})
		_, err := kv.Create(ctx, name, b)
		if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("record %s in %s: %w", name, c.cfg.Bucket, err)
		}
		if err != nil && c.cfg.Own {
			if err := c.recordOwn(ctx, kv, name, def); err != nil {
				return err
			}
		}
	}
	w, err := kv.WatchAll(context.Background())
	if err != nil {
		return fmt.Errorf("watch %s: %w", c.cfg.Bucket, err)
	}
	c.kv, c.watcher = kv, w
	c.cfg.Logger.Info("model desired state: following the JetStream key-value bucket", "bucket", c.cfg.Bucket)
	go c.watch()
	return nil
}

// recordOwn makes def the recorded default of name over the recorded one
// (compare-and-set, retried on a concurrent change). The versions loaded
// besides the old default stay desired; the old default, which the start
// given now replaces, does not.
func (c *Control) recordOwn(ctx context.Context, kv jetstream.KeyValue, name, def string) error {
	for range 10 {
		e, err := kv.Get(ctx, name)
		if err != nil {
			return fmt.Errorf("read %s in %s: %w", name, c.cfg.Bucket, err)
		}
		var d Desired
		if err := json.Unmarshal(e.Value(), &d); err != nil {
			c.cfg.Logger.Warn("model desired state: replacing a recorded value that is not JSON", "key", name, "err", err)
		}
		if d.Default == def && slices.Contains(d.Versions, def) {
			return nil
		}
		was := d.Default
		d.Versions = slices.DeleteFunc(d.Versions, func(v string) bool { return v == was || v == def })
		d.Default, d.Versions = def, append(d.Versions, def)
		b, _ := json.Marshal(d)
		if _, err := kv.Update(ctx, name, b, e.Revision()); err != nil {
			if strings.Contains(err.Error(), "wrong last sequence") {
				continue // changed meanwhile: edit the new value
			}
			return fmt.Errorf("record %s in %s: %w", name, c.cfg.Bucket, err)
		}
		c.cfg.Logger.Info("model desired state: the model given at start is now the recorded default",
			"model", contracts.ModelRef(name, def), "was", contracts.ModelRef(name, was), "versions", d.Versions)
		return nil
	}
	return fmt.Errorf("record %s in %s: the desired state keeps changing", name, c.cfg.Bucket)
}

// watch applies every change of the desired state, in order.
func (c *Control) watch() {
	defer close(c.done)
	for e := range c.watcher.Updates() {
		if e == nil {
			continue // the initial values are in
		}
		if e.Operation() == jetstream.KeyValuePut {
			var d Desired
			if err := json.Unmarshal(e.Value(), &d); err != nil {
				c.cfg.Logger.Error("model desired state: ignoring a value that is not JSON", "key", e.Key(), "err", err)
			} else {
				c.apply(e.Key(), d)
			}
		}
		c.mu.Lock()
		c.applied = e.Revision()
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
}

// apply converges the registry to d for name: load the missing versions
// (each validated), switch the default, unload the versions not wanted.
func (c *Control) apply(name string, d Desired) {
	r := c.cfg.Registry
	ctx := context.Background()
	for _, v := range d.Versions {
		if err := r.Load(ctx, contracts.ModelRef(name, v)); err != nil {
			c.cfg.Logger.Error("model desired state: cannot load a desired version; serving what is loaded", "model", contracts.ModelRef(name, v), "err", err)
		}
	}
	c.mu.Lock()
	first := !c.seen[name]
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	c.seen[name] = true
	c.mu.Unlock()
	if cur := r.Defaults()[name]; first && d.Default != "" && cur != "" && cur != d.Default {
		// A processor started with another version (e.g. SIMMATCH_MODEL_DIR)
		// than the fleet's recorded default: say so, or the operator sees
		// the other version served without knowing why.
		c.cfg.Logger.Warn("model desired state: the fleet's default differs from this processor's; following the fleet",
			"model", name, "fleet_default", d.Default, "was", cur,
			"hint", "to make "+contracts.ModelRef(name, cur)+" the default everywhere: POST /v1/models/switch {\"model\": \""+contracts.ModelRef(name, cur)+"\"} (admin), or `nats kv del "+c.cfg.Bucket+" "+name+"` to forget the recorded state")
	}
	if d.Default != "" {
		if err := r.Switch(contracts.ModelRef(name, d.Default)); err != nil {
			c.cfg.Logger.Error("model desired state: cannot switch to the desired default", "model", contracts.ModelRef(name, d.Default), "err", err)
		}
	}
	for _, s := range r.Status() {
		if s.Name == name && s.State == contracts.ModelServing && !slices.Contains(d.Versions, s.Version) {
			if err := r.Unload(contracts.ModelRef(name, s.Version)); err != nil {
				c.cfg.Logger.Error("model desired state: cannot unload a version", "model", contracts.ModelRef(name, s.Version), "err", err)
			}
		}
	}
}

// DesiredDefault is the desired default version of model name: from the
// desired-state bucket, or the registry's default under local control; ""
// when there is none or the bucket does not answer.
func (c *Control) DesiredDefault(name string) string {
	if c.kv == nil {
		return c.cfg.Registry.Defaults()[name]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := c.kv.Get(ctx, name)
	if err != nil {
		return ""
	}
	var d Desired
	if json.Unmarshal(e.Value(), &d) != nil {
		return ""
	}
	return d.Default
}

// update changes name's desired state with edit (compare-and-set, retried
// on a concurrent change) and waits until this processor has applied it.
func (c *Control) update(ctx context.Context, name string, edit func(*Desired) error) error {
	for range 10 {
		var d Desired
		var rev uint64
		e, err := c.kv.Get(ctx, name)
		switch {
		case err == nil:
			if err := json.Unmarshal(e.Value(), &d); err != nil {
				return fmt.Errorf("models: desired state of %s: %w", name, err)
			}
			rev = e.Revision()
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return fmt.Errorf("models: read desired state of %s: %w", name, err)
		}
		if err := edit(&d); err != nil {
			return err
		}
		b, _ := json.Marshal(d)
		if rev == 0 {
			rev, err = c.kv.Create(ctx, name, b)
		} else {
			rev, err = c.kv.Update(ctx, name, b, rev)
		}
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) || strings.Contains(err.Error(), "wrong last sequence") {
				continue // changed meanwhile: edit the new value
			}
			return fmt.Errorf("models: write desired state of %s: %w", name, err)
		}
		return c.waitApplied(ctx, rev)
	}
	return fmt.Errorf("models: desired state of %s keeps changing; retry", name)
}

func (c *Control) waitApplied(ctx context.Context, rev uint64) error {
	for {
		c.mu.Lock()
		applied, ch := c.applied, c.changed
		c.mu.Unlock()
		if applied >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("models: waiting for this processor to apply the desired state: %w", ctx.Err())
		}
	}
}

// Load loads ref ("name@version") here, validating it, then records it in
// the desired state so every processor loads it.
func (c *Control) Load(ctx context.Context, ref string) error {
	c.ops.Lock()
	defer c.ops.Unlock()
	name, ver, err := c.parse(ref)
	if err != nil {
		return err
	}
	if err := c.cfg.Registry.Load(ctx, ref); err != nil || c.kv == nil {
		return err
	}
	return c.update(ctx, name, func(d *Desired) error {
		if !slices.Contains(d.Versions, ver) {
			d.Versions = append(d.Versions, ver)
		}
		if d.Default == "" {
			d.Default = ver
		}
		return nil
	})
}

// Switch loads ref here if needed, then makes it the default of its name.
func (c *Control) Switch(ctx context.Context, ref string) error {
	c.ops.Lock()
	defer c.ops.Unlock()
	name, ver, err := c.parse(ref)
	if err != nil {
		return err
	}
	if err := c.cfg.Registry.Load(ctx, ref); err != nil {
		return err
	}
	if c.kv == nil {
		return c.cfg.Registry.Switch(ref)
	}
	return c.update(ctx, name, func(d *Desired) error {
		if !slices.Contains(d.Versions, ver) {
			d.Versions = append(d.Versions, ver)
		}
		d.Default = ver
		return nil
	})
}

// Unload removes ref from what is loaded; the default version cannot be
// unloaded (switch first).
func (c *Control) Unload(ctx context.Context, ref string) error {
	c.ops.Lock()
	defer c.ops.Unlock()
	name, ver, err := c.parse(ref)
	if err != nil {
		return err
	}
	if c.kv == nil {
		return c.cfg.Registry.Unload(ref)
	}
	return c.update(ctx, name, func(d *Desired) error {
		if !slices.Contains(d.Versions, ver) {
			return fmt.Errorf("%w: %s is not in the desired state (desired versions of %s: %s)", ErrNotFound, ref, name, strings.Join(d.Versions, ", "))
		}
		if d.Default == ver {
			return fmt.Errorf("%w: %s is the default of %s; switch to another version first", ErrDefault, ref, name)
		}
		d.Versions = slices.DeleteFunc(d.Versions, func(v string) bool { return v == ver })
		return nil
	})
}

func (c *Control) parse(ref string) (name, ver string, err error) {
	name, ver, err = contracts.ParseModelRef(ref)
	if err != nil {
		return "", "", contracts.FieldError("model", 0, "%v", err)
	}
	if ver == "" {
		return "", "", contracts.FieldError("model", 0, "want name@version, got %q", ref)
	}
	return name, ver, nil
}

// Status is this processor's answer to a status request.
func (c *Control) Status() contracts.ProcessorModels {
	mode := "local"
	if c.kv != nil {
		mode = "jetstream"
	}
	st := contracts.ProcessorModels{Processor: c.cfg.Processor.Info().ID, RSSBytes: RSS(), DesiredState: mode,
		Models: c.cfg.Registry.Status(), DefaultModel: c.cfg.Registry.Primary()}
	if c.cfg.Catalogs != nil {
		cs := c.cfg.Catalogs()
		st.Catalogs = &cs
	}
	return st
}

// Stop ends the watch of the desired state. Stop the processor first: its
// control requests in flight wait for the watch.
func (c *Control) Stop() {
	if c.watcher != nil {
		_ = c.watcher.Stop()
		<-c.done
	}
}

// endpoints are the control operations: load, switch and unload go to one
// processor of the queue group (a load takes seconds: they wait up to five
// minutes); every processor answers status.
func (c *Control) endpoints() []processor.Endpoint {
	op := func(name, subject string, run func(context.Context, string) error) processor.Endpoint {
		ep := processor.Handle(name, subject, decodeModelRequest, func(ctx context.Context, req contracts.ModelRequest) (contracts.ProcessorModels, error) {
			if err := run(ctx, req.Model); err != nil {
				return contracts.ProcessorModels{}, controlError(err)
			}
			return c.Status(), nil
		})
		ep.Timeout = 5 * time.Minute
		return ep
	}
	return []processor.Endpoint{
		op("models-load", contracts.SubjectModelsLoad, c.Load),
		op("models-switch", contracts.SubjectModelsSwitch, c.Switch),
		op("models-unload", contracts.SubjectModelsUnload, c.Unload),
		{Name: "models-status", Subject: contracts.SubjectModelsStatus, Broadcast: true,
			Serve: func(context.Context, processor.Request) (any, error) { return c.Status(), nil }},
	}
}

// decodeModelRequest decodes {"model": "name@version"} with the strict
// decoder every door uses (UTF-8, unknown fields, trailing data).
func decodeModelRequest(b []byte) (contracts.ModelRequest, error) {
	var req contracts.ModelRequest
	err := contracts.DecodeStrict(b, 4<<10, &req)
	return req, err
}

// controlError maps a control error to the wire.
func controlError(err error) *contracts.Error {
	var e *contracts.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, ErrNotFound):
		return &contracts.Error{Code: contracts.CodeNotFound, Message: err.Error()}
	case errors.Is(err, ErrRefused), errors.Is(err, ErrDefault):
		return &contracts.Error{Code: contracts.CodeInvalidRequest, Field: "model", Message: err.Error()}
	}
	return contracts.AsError(err)
}

// RSS is the process's resident memory in bytes, from /proc (0 where there
// is none).
func RSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
