package cli

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestFlagPrecedence(t *testing.T) {
	env := map[string]string{"SIMMATCH_HTTP_ADDR": ":9000", "SIMMATCH_REQUEST_TIMEOUT": "3s", "SIMMATCH_MAX_QUERIES": "7"}
	tests := []struct {
		name        string
		args        []string
		wantAddr    string
		wantTimeout time.Duration
		wantQueries int
	}{
		{"environment over default", nil, ":9000", 3 * time.Second, 7},
		{"flag over environment", []string{"-http-addr", "127.0.0.1:1", "-request-timeout", "1s", "-max-queries", "2"}, "127.0.0.1:1", time.Second, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Bridge
			var c Common
			f := NewFlags("test", func(k string) string { return env[k] }, io.Discard)
			f.Bridge(&b)
			f.Common(&c, true)
			var lim = struct{ q int }{}
			f.Int(&lim.q, "max-queries", "SIMMATCH_MAX_QUERIES", 32, "")
			if err := f.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if b.HTTPAddr != tt.wantAddr || b.RequestTimeout != tt.wantTimeout || lim.q != tt.wantQueries {
				t.Fatalf("got %q %v %d, want %q %v %d", b.HTTPAddr, b.RequestTimeout, lim.q, tt.wantAddr, tt.wantTimeout, tt.wantQueries)
			}
			if c.NATSURL != "nats://127.0.0.1:4222" {
				t.Fatalf("NATS URL default %q", c.NATSURL)
			}
		})
	}
}

func TestBadEnvironmentValueIsReported(t *testing.T) {
	var b Bridge
	f := NewFlags("test", func(k string) string {
		if k == "SIMMATCH_REQUEST_TIMEOUT" {
			return "ten seconds"
		}
		return ""
	}, io.Discard)
	f.Bridge(&b)
	err := f.Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "SIMMATCH_REQUEST_TIMEOUT") {
		t.Fatalf("err = %v, want it to name SIMMATCH_REQUEST_TIMEOUT", err)
	}
}

func TestNewLogger(t *testing.T) {
	for _, c := range []Common{{LogLevel: "loud", LogFormat: "json"}, {LogLevel: "info", LogFormat: "xml"}} {
		if _, err := NewLogger(c, io.Discard); err == nil {
			t.Errorf("%+v: want an error", c)
		}
	}
	if _, err := NewLogger(Common{LogLevel: "debug", LogFormat: "text"}, io.Discard); err != nil {
		t.Fatal(err)
	}
}
