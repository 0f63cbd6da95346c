package processor_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/simmatch/simmatch/contracts"
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
	if info.Name != contracts.ServiceName || len(info.Endpoints) != 1 {
		t.Fatalf("info = %+v, want service %q with one endpoint", info, contracts.ServiceName)
	}
	ep := info.Endpoints[0]
	if ep.Subject != contracts.SubjectSimilarity || ep.QueueGroup != contracts.DefaultQueueGroup {
		t.Fatalf("endpoint = %+v, want subject %q in queue group %q", ep, contracts.SubjectSimilarity, contracts.DefaultQueueGroup)
	}
	if info.Metadata["model.name"] != "all-MiniLM-L6-v2" || info.Metadata["model.dimensions"] != "384" {
		t.Fatalf("metadata = %v, want the model's name and dimensions", info.Metadata)
	}

	if _, err := nc.Request("$SRV.PING."+contracts.ServiceName, nil, 5*time.Second); err != nil {
		t.Fatalf("PING: %v", err)
	}
	msg, err = nc.Request("$SRV.STATS."+contracts.ServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(msg.Data, &stats); err != nil || len(stats.Endpoints) != 1 {
		t.Fatalf("STATS = %s (%v)", msg.Data, err)
	}
}
