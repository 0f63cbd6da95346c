package bridge

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

func TestNewConfig(t *testing.T) {
	nc := connect(t, startNATS(t))
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{"no NATS", Config{}, "bridge: config: NATS connection is required", nil},
		{"negative request timeout", Config{NATS: nc, RequestTimeout: -time.Second}, "bridge: config: RequestTimeout", nil},
		{"negative ready timeout", Config{NATS: nc, ReadyTimeout: -time.Second}, "bridge: config: ReadyTimeout", nil},
		{"negative limit", Config{NATS: nc, Limits: contracts.Limits{MaxQueries: -1}}, "bridge: config: limits", nil},
		{"defaults", Config{NATS: nc}, "", func(t *testing.T, c Config) {
			if c.Limits != contracts.DefaultLimits || c.RequestTimeout != DefaultRequestTimeout ||
				c.ReadyTimeout != DefaultReadyTimeout || c.Subject != contracts.SubjectSimilarity || c.Logger == nil {
				t.Errorf("defaults not applied: %+v", c)
			}
		}},
		{"given values kept", Config{NATS: nc, Limits: contracts.Limits{MaxQueries: 3}, RequestTimeout: time.Minute, ReadyTimeout: 2 * time.Second, Subject: "other"}, "", func(t *testing.T, c Config) {
			if c.Limits != (contracts.Limits{MaxQueries: 3}) || c.RequestTimeout != time.Minute || c.ReadyTimeout != 2*time.Second || c.Subject != "other" {
				t.Errorf("values changed: %+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s.cfg)
		})
	}
}

// Requests go to the configured subject.
func TestSubject(t *testing.T) {
	ns := startNATS(t)
	startFake(t, ns, rank(t)) // on the default subject: must not be used
	b := startBridge(t, ns, func(c *Config) { c.Subject = "elsewhere" })
	resp, body := b.post(t, "/predict", "application/json", original)
	e := decodeError(t, resp, body)
	if resp.StatusCode != 503 || e.Code != contracts.CodeNoProcessor || !strings.Contains(e.Message, "elsewhere") {
		t.Fatalf("got %d %+v, want 503 no_processor naming the subject", resp.StatusCode, e)
	}
}

func TestSecurityConfig(t *testing.T) {
	nc := connect(t, startNATS(t))
	for _, cfg := range []Config{
		{NATS: nc, PublicPaths: []string{"health"}},
		{NATS: nc, RateLimit: RateLimit{Rate: -1}},
		{NATS: nc, RateLimit: RateLimit{Rate: 1, Burst: -1}},
		{NATS: nc, RateLimit: RateLimit{Rate: math.Inf(1)}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v: want an error", cfg)
		}
	}
}
