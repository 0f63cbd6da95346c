package cli

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/simmatch/simmatch/internal/testenv"
)

// Each credential method connects to a real server that requires it, and
// wrong credentials fail at once with an error that says what to check and
// does not quote the secret.
func TestConnectNATSAuth(t *testing.T) {
	const password, token = "pw-7c1e9a3f5b", "tok-2d8f6a4c0e"
	nkeyOpt, nkeyFile := testenv.NKeyUser(t)
	_, otherNKey := testenv.NKeyUser(t)
	jwtOpt, credsFile := testenv.JWTUser(t)
	strangerAccount, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	strangerCreds := testenv.UserCreds(t, strangerAccount)
	ca := testenv.NewCA(t, "nats CA")
	caFile, clientCert, clientKey := writeCA(t, ca)
	pwDir := t.TempDir()
	passwordFile, wrongPasswordFile := pwDir+"/password", pwDir+"/wrong"
	testenv.WriteFile(t, passwordFile, []byte(password+"\n")) // as `echo pw > file` writes it
	testenv.WriteFile(t, wrongPasswordFile, []byte("wrong-"+password))

	userServer := testenv.StartNATS(t, testenv.WithUser("simmatch", password))
	tokenServer := testenv.StartNATS(t, testenv.WithToken(token))
	nkeyServer := testenv.StartNATS(t, nkeyOpt)
	jwtServer := testenv.StartNATS(t, jwtOpt)
	tlsServer := testenv.StartNATS(t, testenv.WithTLS(t, ca, false))
	mtlsServer := testenv.StartNATS(t, testenv.WithTLS(t, ca, true))
	withPassword := func(u, user, pw string) string {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		p.User = url.UserPassword(user, pw)
		return p.String()
	}

	tests := []struct {
		name    string
		url     string
		auth    NATSAuth
		wantErr string // "" = connects
	}{
		{"user and password", userServer.ClientURL(), NATSAuth{User: "simmatch", Password: password}, ""},
		{"password from a file", userServer.ClientURL(), NATSAuth{User: "simmatch", PasswordFile: passwordFile}, ""},
		{"wrong password from a file", userServer.ClientURL(), NATSAuth{User: "simmatch", PasswordFile: wrongPasswordFile}, "refused the credentials"},
		{"password in the URL", withPassword(userServer.ClientURL(), "simmatch", password), NATSAuth{}, ""},
		{"wrong password", userServer.ClientURL(), NATSAuth{User: "simmatch", Password: "wrong-" + password}, "refused the credentials"},
		{"no credentials", userServer.ClientURL(), NATSAuth{}, "refused the credentials"},
		{"token", tokenServer.ClientURL(), NATSAuth{Token: token}, ""},
		{"wrong token", tokenServer.ClientURL(), NATSAuth{Token: "x" + token}, "refused the credentials"},
		{"nkey", nkeyServer.ClientURL(), NATSAuth{NKeyFile: nkeyFile}, ""},
		{"unknown nkey", nkeyServer.ClientURL(), NATSAuth{NKeyFile: otherNKey}, "refused the credentials"},
		{"creds file", jwtServer.ClientURL(), NATSAuth{CredsFile: credsFile}, ""},
		{"creds of an unknown account", jwtServer.ClientURL(), NATSAuth{CredsFile: strangerCreds}, "refused the credentials"},
		{"TLS with the CA", tlsServer.ClientURL(), NATSAuth{CAFile: caFile}, ""},
		{"TLS without the CA", tlsServer.ClientURL(), NATSAuth{}, "TLS failed"},
		{"mutual TLS", mtlsServer.ClientURL(), NATSAuth{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey}, ""},
		{"mutual TLS without a client certificate", mtlsServer.ClientURL(), NATSAuth{CAFile: caFile}, "connect to NATS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			nc, err := ConnectNATS(Common{NATSURL: tt.url, NATS: tt.auth}, "test", slog.New(slog.NewTextHandler(&logs, nil)))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				defer nc.Close()
				if !nc.IsConnected() {
					t.Fatalf("status %v, want connected", nc.Status())
				}
				return
			}
			if err == nil {
				nc.Close()
				t.Fatal("connected, want an error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %q, want it to contain %q", err, tt.wantErr)
			}
			for _, secret := range []string{password, token} {
				if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
					t.Fatalf("a secret leaks: err %q, logs %q", err, logs.String())
				}
			}
		})
	}
}

func writeCA(t *testing.T, ca *testenv.CA) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caFile = dir + "/ca.pem"
	testenv.WriteFile(t, caFile, ca.PEM)
	certFile, keyFile = ca.Client(t, "simmatch").WriteFiles(t, dir, "client")
	return caFile, certFile, keyFile
}

func TestNATSAuthOptionsConflicts(t *testing.T) {
	pwFile := t.TempDir() + "/password"
	testenv.WriteFile(t, pwFile, []byte("pw"))
	tests := []struct {
		name string
		auth NATSAuth
		want string
	}{
		{"user without password", NATSAuth{User: "u"}, "NATS_USER and NATS_PASSWORD"},
		{"password without user", NATSAuth{Password: "p"}, "NATS_USER and NATS_PASSWORD"},
		{"two methods", NATSAuth{Token: "t", CredsFile: "c"}, "only one of"},
		{"cert without key", NATSAuth{CertFile: "c"}, "NATS_CERT_FILE and NATS_KEY_FILE"},
		{"missing nkey file", NATSAuth{NKeyFile: "/nonexistent/seed"}, "NATS_NKEY_FILE"},
		{"password and password file", NATSAuth{User: "u", Password: "p", PasswordFile: "/nonexistent/pw"}, "set only one"},
		{"missing password file", NATSAuth{User: "u", PasswordFile: "/nonexistent/pw"}, "NATS_PASSWORD_FILE"},
		{"password file without user", NATSAuth{PasswordFile: pwFile}, "NATS_USER and NATS_PASSWORD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.auth.Options(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

// A server that is not up yet is retried in the background: the commands
// may start before NATS (docker compose, Kubernetes).
func TestConnectNATSRetriesUntilTheServerIsUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var logs bytes.Buffer
	nc, err := ConnectNATS(Common{NATSURL: fmt.Sprintf("nats://127.0.0.1:%d", port)}, "test", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("connect before the server is up: %v", err)
	}
	defer nc.Close()
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("no log line says NATS is being retried: %s", logs.String())
	}
	testenv.StartNATS(t, func(o *server.Options) { o.Port = port })
	testenv.WaitFor(t, 10*time.Second, "the connection once the server is up", nc.IsConnected)
}
