package testenv

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestClusterReplicatesAcrossANodeLoss(t *testing.T) {
	c := StartCluster(t, 3)
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "probe", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	c.Kill(0)
	WaitFor(t, 20*time.Second, "the value readable after a node loss", func() bool {
		e, err := kv.Get(ctx, "k")
		return err == nil && string(e.Value()) == "v"
	})
}

func TestJetStreamServer(t *testing.T) {
	ns := StartNATS(t, WithJetStream(t, ""))
	if !ns.JetStreamEnabled() {
		t.Fatal("JetStream is not enabled")
	}
}
