package processor_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/processor"
	"github.com/simmatch/simmatch/processor/cache"
)

// Processors are a NATS micro service: `nats micro ls` and `nats micro info
// simmatch` work through these $SRV subjects.
func TestMicroDiscovery(t *testing.T) {
	ns := startNATS(t)
	startProcessor(t, ns, nil)
	nc := connect(t, ns)

	msg, err := nc.Request("$SRV.INFO."+contracts.ServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	eps := map[string]micro.EndpointInfo{}
	for _, ep := range info.Endpoints {
		eps[ep.Name] = ep
	}
	if info.Name != contracts.ServiceName || len(eps) != len(info.Endpoints) {
		t.Fatalf("info = %+v, want service %q with uniquely named endpoints", info, contracts.ServiceName)
	}
	for name, subject := range map[string]string{"similarity": contracts.SubjectSimilarity, "embed": contracts.SubjectEmbed} {
		if ep := eps[name]; ep.Subject != subject || ep.QueueGroup != contracts.DefaultQueueGroup {
			t.Fatalf("endpoint %s = %+v, want subject %q in queue group %q", name, ep, subject, contracts.DefaultQueueGroup)
		}
	}
	// One model for good (no registry): the metadata names it.
	if info.Metadata["api"] != contracts.APIVersion || info.Metadata["model.name"] != "all-MiniLM-L6-v2" || info.Metadata["model.dimensions"] != "384" {
		t.Fatalf("metadata = %v, want the API version, the model's name and dimensions", info.Metadata)
	}

	if _, err := nc.Request("$SRV.PING."+contracts.ServiceName, nil, 5*time.Second); err != nil {
		t.Fatalf("PING: %v", err)
	}
	msg, err = nc.Request("$SRV.STATS."+contracts.ServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(msg.Data, &stats); err != nil || len(stats.Endpoints) != len(info.Endpoints) {
		t.Fatalf("STATS = %s (%v)", msg.Data, err)
	}
}

// Config.StatsData reaches $SRV.STATS as each endpoint's data: here the
// embedding cache's counters, with the cache in front of the scheduler, as
// the commands wire it.
func TestMicroStatsData(t *testing.T) {
	ns := startNATS(t)
	c, err := cache.New(cache.Config{Inner: startScheduler(t, nil), Bytes: cache.DefaultBytes})
	if err != nil {
		t.Fatal(err)
	}
	startProcessor(t, ns, func(cfg *processor.Config) {
		cfg.Embedder = c
		cfg.StatsData = func() any { return map[string]any{"cache": c.Stats()} }
	})
	nc := connect(t, ns)
	client := newClient(t, nc, nil)
	req := &contracts.Request{Query: contracts.Queries{"cut wood"}, ProductDescriptions: []string{"a saw", "a hammer"}}
	first, err := client.Match(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := client.Match(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first.Results, second.Results) {
		t.Fatalf("answer from the cache %+v differs from the first %+v", second.Results, first.Results)
	}

	msg, err := nc.Request("$SRV.STATS."+contracts.ServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(msg.Data, &stats); err != nil || len(stats.Endpoints) == 0 || stats.Endpoints[0].Name != "similarity" {
		t.Fatalf("STATS = %s (%v)", msg.Data, err)
	}
	var data struct{ Cache cache.Stats }
	if err := json.Unmarshal(stats.Endpoints[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	if l := data.Cache.Local; l.Hits != 3 || l.Misses != 3 || l.Entries != 3 {
		t.Fatalf("cache stats in $SRV.STATS = %+v, want 3 hits, 3 misses, 3 entries", l)
	}
}
