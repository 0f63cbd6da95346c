// Package nats_test proves the least-privilege permissions of
// nats-server.conf with a real NATS server loaded from the file.
package nats_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"go.yaml.in/yaml/v3"

	"github.com/simmatch/simmatch/contracts"
	"github.com/simmatch/simmatch/internal/testenv"
)

const (
	bridgePassword    = "test-bridge-pw"
	processorPassword = "test-processor-pw"
)

// asyncErrors connects as user and collects the server's asynchronous
// errors (permission violations arrive that way).
func connectAs(t *testing.T, ns *server.Server, user, password string) (*nats.Conn, <-chan error) {
	t.Helper()
	errs := make(chan error, 16)
	nc := testenv.Connect(t, ns, nats.UserInfo(user, password), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	return nc, errs
}

// wantViolation waits for a permissions violation naming what.
func wantViolation(t *testing.T, errs <-chan error, what string) {
	t.Helper()
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), what) {
			t.Fatalf("async error %v, want a permissions violation for %s", err, what)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no permissions violation for %s", what)
	}
}

func startServer(t *testing.T) *server.Server {
	t.Helper()
	t.Setenv("NATS_BRIDGE_PASSWORD", bridgePassword)
	t.Setenv("NATS_PROCESSOR_PASSWORD", processorPassword)
	ns := testenv.StartNATSFromConfig(t, "nats-server.conf")
	if !ns.JetStreamEnabled() {
		t.Fatal("JetStream is not enabled by the config")
	}
	return ns
}

func TestPermissions(t *testing.T) {
	ns := startServer(t)
	bridge, bridgeErrs := connectAs(t, ns, "bridge", bridgePassword)
	proc, procErrs := connectAs(t, ns, "processor", processorPassword)

	// A processor serving similarity.request in its queue group, and the
	// micro service the bridge's /ready pings, on simmatch.embed.
	_, err := proc.QueueSubscribe(contracts.SubjectSimilarity, contracts.DefaultQueueGroup, func(m *nats.Msg) {
		_ = m.Respond(append([]byte("ranked:"), m.Data...))
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := micro.AddService(proc, micro.Config{Name: contracts.ServiceName, Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: "simmatch.embed", Handler: micro.HandlerFunc(func(r micro.Request) {
			_ = r.Respond([]byte("embedded"))
		})}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	if err := proc.Flush(); err != nil {
		t.Fatal(err)
	}

	t.Run("request-reply through both users", func(t *testing.T) {
		for subj, want := range map[string]string{contracts.SubjectSimilarity: "ranked:q", "simmatch.embed": "embedded"} {
			reply, err := bridge.Request(subj, []byte("q"), 5*time.Second)
			if err != nil {
				t.Fatalf("%s: %v", subj, err)
			}
			if string(reply.Data) != want {
				t.Fatalf("%s: reply %q, want %q", subj, reply.Data, want)
			}
		}
		if _, err := bridge.Request("$SRV.PING."+contracts.ServiceName, nil, 5*time.Second); err != nil {
			t.Fatalf("$SRV.PING: %v", err)
		}
	})

	t.Run("bridge cannot subscribe to the service subjects", func(t *testing.T) {
		for _, subj := range []string{contracts.SubjectSimilarity, "simmatch.embed"} {
			if _, err := bridge.QueueSubscribe(subj, contracts.DefaultQueueGroup, func(*nats.Msg) {}); err != nil {
				t.Fatal(err)
			}
			_ = bridge.Flush()
			wantViolation(t, bridgeErrs, `Subscription to "`+subj+`"`)
		}
	})

	t.Run("bridge cannot use JetStream", func(t *testing.T) {
		js, err := jetstream.New(bridge)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "stolen"}); err == nil {
			t.Fatal("the bridge created a KV bucket")
		}
		wantViolation(t, bridgeErrs, `Publish to "$JS.API.`)
	})

	t.Run("processor cannot send a request", func(t *testing.T) {
		for _, subj := range []string{contracts.SubjectSimilarity, "simmatch.embed"} {
			if _, err := proc.Request(subj, []byte("q"), 500*time.Millisecond); err == nil {
				t.Fatalf("a processor's request to %s was answered", subj)
			}
			wantViolation(t, procErrs, `Publish to "`+subj+`"`)
		}
	})

	t.Run("processor can use JetStream key-value buckets", func(t *testing.T) {
		js, err := jetstream.New(proc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "simmatch_test"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
			t.Fatalf("get: %v", err)
		}
	})

	t.Run("processor can write a catalog stream, the bridge cannot", func(t *testing.T) {
		js, err := jetstream.New(proc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SIMMATCH_CATALOG_t", Subjects: []string{"simmatch.catalogdata.t.>"}, MaxMsgsPerSubject: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, "simmatch.catalogdata.t.aWQ", []byte("record")); err != nil {
			t.Fatalf("processor stores a catalog record: %v", err)
		}
		if err := bridge.Publish("simmatch.catalogdata.t.aWQ", []byte("forged")); err != nil {
			t.Fatal(err)
		}
		_ = bridge.Flush()
		wantViolation(t, bridgeErrs, `Publish to "simmatch.catalogdata.t.aWQ"`)
	})

	t.Run("processor publishes load reports, the bridge reads them and cannot forge them", func(t *testing.T) {
		got := make(chan *nats.Msg, 1)
		if _, err := bridge.ChanSubscribe(contracts.SubjectLoad, got); err != nil {
			t.Fatal(err)
		}
		if err := bridge.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := proc.Publish(contracts.SubjectLoad, []byte(`{"id":"p"}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if string(m.Data) != `{"id":"p"}` {
				t.Fatalf("report %q", m.Data)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the bridge did not receive the processor's load report")
		}
		if err := bridge.Publish(contracts.SubjectLoad, []byte(`{"id":"forged"}`)); err != nil {
			t.Fatal(err)
		}
		_ = bridge.Flush()
		wantViolation(t, bridgeErrs, `Publish to "simmatch.load"`)
	})

	t.Run("wrong password", func(t *testing.T) {
		_, err := nats.Connect(ns.ClientURL(), nats.UserInfo("bridge", processorPassword))
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("err %v, want an authorization violation", err)
		}
	})
}

// The file refuses to load without the passwords: no default secret can slip
// into production.
func TestConfigNeedsPasswords(t *testing.T) {
	for _, k := range []string{"NATS_BRIDGE_PASSWORD", "NATS_PROCESSOR_PASSWORD"} {
		t.Setenv(k, "") // restores the variable after the test
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := server.ProcessConfigFile("nats-server.conf"); err == nil || !strings.Contains(err.Error(), "NATS_BRIDGE_PASSWORD") {
		t.Fatalf("err %v, want it to name NATS_BRIDGE_PASSWORD", err)
	}
}

// deploy/k8s/nats-values.yaml repeats the users' permissions for the Helm
// chart; they must stay those of nats-server.conf.
func TestHelmValuesMatchConfig(t *testing.T) {
	t.Setenv("NATS_BRIDGE_PASSWORD", bridgePassword)
	t.Setenv("NATS_PROCESSOR_PASSWORD", processorPassword)
	opts, err := server.ProcessConfigFile("nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("..", "k8s", "nats-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type allow struct {
		Allow []string `yaml:"allow"`
	}
	var values struct {
		Config struct {
			Merge struct {
				Authorization struct {
					Users []struct {
						User        string `yaml:"user"`
						Permissions struct {
							Publish        allow `yaml:"publish"`
							Subscribe      allow `yaml:"subscribe"`
							AllowResponses *struct {
								Max     int    `yaml:"max"`
								Expires string `yaml:"expires"`
							} `yaml:"allow_responses"`
						} `yaml:"permissions"`
					} `yaml:"users"`
				} `yaml:"authorization"`
			} `yaml:"merge"`
		} `yaml:"config"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	helm := values.Config.Merge.Authorization.Users
	if len(helm) != len(opts.Users) {
		t.Fatalf("nats-values.yaml has %d users, nats-server.conf %d", len(helm), len(opts.Users))
	}
	for i, u := range opts.Users {
		h := helm[i]
		p := u.Permissions
		if h.User != u.Username || !slices.Equal(h.Permissions.Publish.Allow, p.Publish.Allow) || !slices.Equal(h.Permissions.Subscribe.Allow, p.Subscribe.Allow) {
			t.Errorf("user %d: nats-values.yaml %+v, nats-server.conf %s %+v %+v", i, h, u.Username, p.Publish, p.Subscribe)
		}
		if (p.Response == nil) != (h.Permissions.AllowResponses == nil) {
			t.Errorf("user %s: allow_responses differs", u.Username)
		} else if p.Response != nil {
			exp, err := time.ParseDuration(h.Permissions.AllowResponses.Expires)
			if err != nil || p.Response.MaxMsgs != h.Permissions.AllowResponses.Max || p.Response.Expires != exp {
				t.Errorf("user %s: allow_responses %+v in nats-values.yaml, %+v in nats-server.conf", u.Username, h.Permissions.AllowResponses, p.Response)
			}
		}
	}
}
