package cli

import (
	"io"
	"log/slog"
	"net"
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

func TestFloat64Flag(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		args    []string
		want    float64
		wantErr bool
	}{
		{"default", "", nil, 0.5, false},
		{"environment", "0.25", nil, 0.25, false},
		{"flag over environment", "0.25", []string{"-th", "-0.1"}, -0.1, false},
		{"bad environment", "high", nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v float64
			f := NewFlags("test", func(k string) string {
				if k == "SIMMATCH_TH" {
					return tt.env
				}
				return ""
			}, io.Discard)
			f.Float64(&v, "th", "SIMMATCH_TH", 0.5, "a threshold")
			err := f.Parse(tt.args)
			if (err != nil) != tt.wantErr || (!tt.wantErr && v != tt.want) {
				t.Fatalf("got %v, %v; want %v, error %v", v, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestRedactURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://alice:s3cret@nats:4222", "nats://REDACTED@nats:4222"},
		{"nats://t0ken@a:4222,nats://b:4222", "nats://REDACTED@a:4222,nats://b:4222"},
		{"nats://us%zzer:pw@host", "(unparsable URL redacted)"},
		{"alice:s3cret@nats:4222", "REDACTED@nats:4222"},
		{"t0ken@nats:4222", "REDACTED@nats:4222"},
		{"nats:4222", "nats:4222"},
		{"tls://alice:s3cret@nats:4222", "tls://REDACTED@nats:4222"},
		{"ws://alice:s3cret@nats:8080/path", "ws://REDACTED@nats:8080/path"},
		{"nats://a:4222, alice:s3cret@b:4222", "nats://a:4222,REDACTED@b:4222"},
		{"al@ice:s3cret@nats:4222", "REDACTED@nats:4222"},
	}
	for _, tt := range tests {
		if got := RedactURLs(tt.in); got != tt.want {
			t.Errorf("RedactURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(RedactURLs(tt.in), "s3cret") || strings.Contains(RedactURLs(tt.in), "t0ken") {
			t.Errorf("RedactURLs(%q) leaks a credential", tt.in)
		}
	}
}

func TestBoolFlag(t *testing.T) {
	for _, tt := range []struct {
		name, env string
		args      []string
		want      bool
		wantErr   string
	}{
		{"default", "", nil, false, ""},
		{"environment", "true", nil, true, ""},
		{"flag over environment", "true", []string{"-shared=false"}, false, ""},
		{"bad environment", "yes please", nil, false, `$SIMMATCH_X="yes please": want true or false`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bool
			f := NewFlags("test", func(string) string { return tt.env }, io.Discard)
			f.Bool(&b, "shared", "SIMMATCH_X", false, "")
			err := f.Parse(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || b != tt.want {
				t.Fatalf("got %v, %v; want %v", b, err, tt.want)
			}
		})
	}
}

// Explicit tells a flag given on the command line or by its environment
// variable from one left at its default, even when the value given equals
// the default; an empty environment variable does not count.
func TestExplicit(t *testing.T) {
	env := map[string]string{"SIMMATCH_A": "x", "SIMMATCH_C": ""}
	var a, b, c, d string
	f := NewFlags("test", func(k string) string { return env[k] }, io.Discard)
	f.String(&a, "a", "SIMMATCH_A", "x", "")
	f.String(&b, "b", "SIMMATCH_B", "y", "")
	f.String(&c, "c", "SIMMATCH_C", "z", "")
	f.String(&d, "d", "SIMMATCH_D", "w", "")
	if err := f.Parse([]string{"-b", "y"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"a": true, "b": true, "c": false, "d": false, "nope": false} {
		if got := f.Explicit(name); got != want {
			t.Errorf("Explicit(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestCheckExposure: without API keys or OIDC, the bridge and the
// all-in-one (both listen through BridgeSecurity.Listen) refuse an address
// beyond loopback unless SIMMATCH_AUTH=none.
func TestCheckExposure(t *testing.T) {
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000}
	any4 := &net.TCPAddr{IP: net.IPv4zero, Port: 8000}
	any6 := &net.TCPAddr{IP: net.IPv6zero, Port: 8000}
	lan := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 8000}
	tests := []struct {
		addr           net.Addr
		open, authNone bool
		wantErr        bool
	}{
		{loop, true, false, false},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8000}, true, false, false},
		{any4, true, false, true},
		{any6, true, false, true},
		{lan, true, false, true},
		{any4, true, true, false},
		{any4, false, false, false}, // API keys or OIDC
	}
	for _, tt := range tests {
		err := CheckExposure(tt.addr, tt.open, tt.authNone)
		if (err != nil) != tt.wantErr {
			t.Errorf("CheckExposure(%v, open %t, SIMMATCH_AUTH=none %t) = %v, want error %t", tt.addr, tt.open, tt.authNone, err, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "SIMMATCH_AUTH=none") {
			t.Errorf("the error does not say how to allow it: %v", err)
		}
	}
}

// TestListenRefusesOpenAPIBeyondLoopback: Security + Listen, the path of
// the bridge and the all-in-one, on 0.0.0.0 without keys.
func TestListenRefusesOpenAPIBeyondLoopback(t *testing.T) {
	ctx := t.Context()
	logger := slog.New(slog.DiscardHandler)
	for _, auth := range []string{"", "none"} {
		sec, err := Bridge{Auth: auth, PublicPaths: "none"}.Security(ctx, logger)
		if err != nil {
			t.Fatal(err)
		}
		ln, _, err := sec.Listen("0.0.0.0:0")
		if auth == "" && err == nil {
			ln.Close()
			t.Errorf("0.0.0.0 without keys nor SIMMATCH_AUTH=none: listening, want a refusal")
		}
		if auth == "none" {
			if err != nil {
				t.Errorf("SIMMATCH_AUTH=none: %v", err)
			} else {
				ln.Close()
			}
		}
		if ln, _, err := sec.Listen("127.0.0.1:0"); err != nil {
			t.Errorf("loopback (SIMMATCH_AUTH=%q): %v", auth, err)
		} else {
			ln.Close()
		}
	}
	if _, err := (Bridge{Auth: "nope"}).Security(ctx, logger); err == nil {
		t.Errorf("SIMMATCH_AUTH=nope accepted")
	}
}
