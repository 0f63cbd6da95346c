package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/internal/testenv"
)

// runSecretsCmd runs `simmatch secrets -dir dir args...` with env as the
// environment and returns its output.
func runSecretsCmd(t *testing.T, dir string, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"secrets", "-dir", dir}, args...), func(k string) string { return env[k] }, &out)
	return out.String(), err
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// snapshot returns every file under dir with its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files[p] = readString(t, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestSecretsGenerates(t *testing.T) {
	dir := t.TempDir()
	out, err := runSecretsCmd(t, dir, nil)
	if err != nil {
		t.Fatalf("secrets: %v\n%s", err, out)
	}

	modes := map[string]os.FileMode{
		"ca/ca.key": 0o600, "nats/tls.key": 0o600, "nats/passwords.conf": 0o600,
		"bridge/password": 0o600, "processor/password": 0o600,
		"ca/ca.crt": 0o644, "nats/tls.crt": 0o644, "nats/ca.crt": 0o644, "bridge/ca.crt": 0o644, "processor/ca.crt": 0o644,
	}
	for rel, want := range modes {
		fi, err := os.Stat(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", rel, fi.Mode().Perm(), want)
		}
	}
	snap := snapshot(t, dir)
	if len(snap) != len(modes) {
		t.Errorf("%d files, want %d: %v", len(snap), len(modes), snap)
	}
	for p, content := range snap {
		if !strings.Contains(out, "wrote "+p) {
			t.Errorf("output does not name %s:\n%s", p, out)
		}
		if strings.HasSuffix(p, ".key") || strings.HasSuffix(p, "password") {
			if strings.Contains(out, content) {
				t.Errorf("the output shows the content of %s", p)
			}
		}
	}

	// The CA verifies the server certificate for the compose host name,
	// localhost and 127.0.0.1; every directory holds the same CA.
	ca := readCert(t, filepath.Join(dir, "ca", "ca.crt"))
	if !ca.IsCA {
		t.Fatal("ca.crt is not a CA")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv := readCert(t, filepath.Join(dir, "nats", "tls.crt"))
	for _, host := range []string{"nats", "localhost", "127.0.0.1"} {
		if _, err := srv.Verify(x509.VerifyOptions{DNSName: host, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if err := srv.VerifyHostname("nats.example.com"); err == nil {
		t.Error("the server certificate is valid for a name it was not asked for")
	}
	for _, sub := range []string{"nats", "bridge", "processor"} {
		if got := readString(t, filepath.Join(dir, sub, "ca.crt")); got != snap[filepath.Join(dir, "ca", "ca.crt")] {
			t.Errorf("%s/ca.crt differs from ca/ca.crt", sub)
		}
	}

	// Random passwords, different per role, repeated in passwords.conf.
	bridgePW, procPW := readString(t, filepath.Join(dir, "bridge", "password")), readString(t, filepath.Join(dir, "processor", "password"))
	if len(bridgePW) < 32 || len(procPW) < 32 || bridgePW == procPW || strings.ContainsAny(bridgePW, "\n ") {
		t.Errorf("passwords %d and %d characters, equal %v: want two random ones", len(bridgePW), len(procPW), bridgePW == procPW)
	}
	conf := readString(t, filepath.Join(dir, "nats", "passwords.conf"))
	for _, want := range []string{`NATS_BRIDGE_PASSWORD: "` + bridgePW + `"`, `NATS_PROCESSOR_PASSWORD: "` + procPW + `"`} {
		if !strings.Contains(conf, want) {
			t.Errorf("passwords.conf lacks %s:\n%s", want, conf)
		}
	}

	t.Run("a second run keeps everything", func(t *testing.T) {
		out, err := runSecretsCmd(t, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "wrote") {
			t.Errorf("second run wrote:\n%s", out)
		}
		for p, content := range snapshot(t, dir) {
			if snap[p] != content {
				t.Errorf("%s changed", p)
			}
		}
	})

	t.Run("a password from the environment replaces the generated one", func(t *testing.T) {
		const mine = "my-own-bridge-password-42"
		if _, err := runSecretsCmd(t, dir, map[string]string{"NATS_BRIDGE_PASSWORD": mine}); err != nil {
			t.Fatal(err)
		}
		if got := readString(t, filepath.Join(dir, "bridge", "password")); got != mine {
			t.Errorf("bridge/password = %q, want %q", got, mine)
		}
		if got := readString(t, filepath.Join(dir, "processor", "password")); got != procPW {
			t.Error("the processor's password changed")
		}
		if conf := readString(t, filepath.Join(dir, "nats", "passwords.conf")); !strings.Contains(conf, `"`+mine+`"`) {
			t.Errorf("passwords.conf does not hold the new password:\n%s", conf)
		}
		if got := readString(t, filepath.Join(dir, "nats", "tls.crt")); got != snap[filepath.Join(dir, "nats", "tls.crt")] {
			t.Error("the server certificate changed")
		}
	})

	t.Run("renewal", func(t *testing.T) {
		c := secretsConfig{Dir: dir, Hosts: []string{"nats", "localhost", "127.0.0.1"}}
		// Within 30 days of its end the server certificate is renewed by the same CA.
		late := srv.NotAfter.Add(-20 * 24 * time.Hour)
		if _, err := writeSecrets(c, late); err != nil {
			t.Fatal(err)
		}
		renewed := readCert(t, filepath.Join(dir, "nats", "tls.crt"))
		if !renewed.NotAfter.After(srv.NotAfter) {
			t.Errorf("not renewed: valid until %v", renewed.NotAfter)
		}
		if _, err := renewed.Verify(x509.VerifyOptions{DNSName: "nats", Roots: pool, CurrentTime: late}); err != nil {
			t.Errorf("the renewed certificate does not verify with the same CA: %v", err)
		}
		// A new host name gets a new certificate.
		c.Hosts = append(c.Hosts, "nats.simmatch.svc")
		if _, err := writeSecrets(c, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := readCert(t, filepath.Join(dir, "nats", "tls.crt")).VerifyHostname("nats.simmatch.svc"); err != nil {
			t.Error(err)
		}
		if got := readString(t, filepath.Join(dir, "ca", "ca.crt")); got != snap[filepath.Join(dir, "ca", "ca.crt")] {
			t.Error("the CA changed")
		}
		// A wildcard name (the k8s headless Service) is kept by the next run.
		out, err := runSecretsCmd(t, dir, nil, "-hosts", "nats,*.nats-headless,10.0.0.1")
		if err != nil || !strings.Contains(out, "wrote "+filepath.Join(dir, "nats", "tls.crt")) {
			t.Fatalf("err %v:\n%s", err, out)
		}
		if out, err := runSecretsCmd(t, dir, nil, "-hosts", "nats,*.nats-headless,10.0.0.1"); err != nil || strings.Contains(out, "wrote") {
			t.Fatalf("err %v, the same hosts again wrote:\n%s", err, out)
		}
		wild := readCert(t, filepath.Join(dir, "nats", "tls.crt"))
		if wild.VerifyHostname("nats-1.nats-headless") != nil || wild.VerifyHostname("10.0.0.1") != nil {
			t.Errorf("names %v, IPs %v", wild.DNSNames, wild.IPAddresses)
		}
	})
}

func TestSecretsOwnCertificate(t *testing.T) {
	ca := testenv.NewCA(t, "my CA")
	own := t.TempDir()
	caFile := filepath.Join(own, "ca.pem")
	testenv.WriteFile(t, caFile, ca.PEM)
	certFile, keyFile := ca.Server(t, "nats").WriteFiles(t, own, "nats")
	otherCert, _ := testenv.NewCA(t, "other CA").Server(t, "nats").WriteFiles(t, own, "other")

	dir := t.TempDir()
	if _, err := runSecretsCmd(t, dir, nil, "-tls-cert-file", certFile, "-tls-key-file", keyFile, "-tls-ca-file", caFile); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"nats/tls.crt": certFile, "nats/tls.key": keyFile, "nats/ca.crt": caFile, "bridge/ca.crt": caFile, "processor/ca.crt": caFile} {
		if readString(t, filepath.Join(dir, rel)) != readString(t, want) {
			t.Errorf("%s is not a copy of %s", rel, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", "ca.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a CA was generated next to the user's: %v", err)
	}

	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"a certificate from another CA", nil, []string{"-tls-cert-file", otherCert, "-tls-key-file", keyFile, "-tls-ca-file", caFile}, "not the certificate's"},
		{"a certificate without its key", nil, []string{"-tls-cert-file", certFile, "-tls-ca-file", caFile}, "go together"},
		{"a short password", map[string]string{"NATS_PROCESSOR_PASSWORD": "short"}, nil, "NATS_PROCESSOR_PASSWORD"},
		{"a password with a quote", map[string]string{"NATS_BRIDGE_PASSWORD": `long-enough-but-"quoted"`}, nil, "quote"},
		{"no hosts", nil, []string{"-hosts", " , "}, "-hosts is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := runSecretsCmd(t, t.TempDir(), tt.env, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want it to say %q", err, tt.want)
			}
		})
	}
}

// composeNATS starts a real NATS server from the compose set-up:
// deploy/nats/compose.conf (TLS) including nats-server.conf, with the
// certificate and passwords.conf `simmatch secrets` wrote into secrets/nats
// where the compose file mounts them (/etc/nats/auth, here a test
// directory). It returns the server's host:port.
func composeNATS(t *testing.T, secrets string) string {
	t.Helper()
	etc := t.TempDir()
	repo := filepath.Join("..", "..", "deploy", "nats")
	for _, f := range []string{"nats-server.conf", "compose.conf"} {
		b, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatal(err)
		}
		testenv.WriteFile(t, filepath.Join(etc, f), bytes.ReplaceAll(b, []byte("/etc/nats/"), []byte(etc+"/")))
	}
	if err := os.Symlink(filepath.Join(secrets, "nats"), filepath.Join(etc, "auth")); err != nil {
		t.Fatal(err)
	}
	ns := testenv.StartNATSFromConfig(t, filepath.Join(etc, "compose.conf"))
	if !ns.JetStreamEnabled() {
		t.Fatal("no JetStream")
	}
	return strings.TrimPrefix(ns.Addr().String(), "tcp://")
}

// The compose set-up end to end: NATS requires TLS and each role's
// generated password, and the clients connect with the files `simmatch
// secrets` gave them (NATS_PASSWORD_FILE, NATS_CA_FILE) over tls://.
func TestSecretsComposeNATS(t *testing.T) {
	secrets := t.TempDir()
	if _, err := runSecretsCmd(t, secrets, nil); err != nil {
		t.Fatal(err)
	}
	hostPort := composeNATS(t, secrets)
	tlsURL := "tls://" + hostPort // as compose's NATS_URL: tls://nats:4222
	localhost := strings.Replace(tlsURL, "127.0.0.1", "localhost", 1)
	role := func(r string) cli.NATSAuth {
		return cli.NATSAuth{User: r, PasswordFile: filepath.Join(secrets, r, "password"), CAFile: filepath.Join(secrets, r, "ca.crt")}
	}
	otherCA := filepath.Join(t.TempDir(), "ca.pem")
	testenv.WriteFile(t, otherCA, testenv.NewCA(t, "other").PEM)
	wrong := filepath.Join(t.TempDir(), "password")
	testenv.WriteFile(t, wrong, []byte("not-the-generated-password"))

	for _, tt := range []struct {
		name    string
		url     string
		auth    cli.NATSAuth
		wantErr string // "" = connects
	}{
		{"bridge", tlsURL, role("bridge"), ""},
		{"processor", tlsURL, role("processor"), ""},
		{"by name", localhost, role("bridge"), ""},
		{"bridge with the processor's password", tlsURL, cli.NATSAuth{User: "bridge", PasswordFile: filepath.Join(secrets, "processor", "password"), CAFile: role("bridge").CAFile}, "refused the credentials"},
		{"wrong password", tlsURL, cli.NATSAuth{User: "processor", PasswordFile: wrong, CAFile: role("processor").CAFile}, "refused the credentials"},
		{"no password", tlsURL, cli.NATSAuth{CAFile: role("bridge").CAFile}, "refused the credentials"},
		{"another CA", tlsURL, cli.NATSAuth{User: "bridge", PasswordFile: role("bridge").PasswordFile, CAFile: otherCA}, "TLS failed"},
		{"the system's CAs", tlsURL, cli.NATSAuth{User: "bridge", PasswordFile: role("bridge").PasswordFile}, "TLS failed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := cli.ConnectNATS(cli.Common{NATSURL: tt.url, NATS: tt.auth}, "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				if !nc.TLSRequired() {
					t.Error("connected without TLS")
				}
				if _, err := nc.TLSConnectionState(); err != nil {
					t.Errorf("connected without TLS: %v", err)
				}
				return
			}
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
		})
	}

	t.Run("no TLS", func(t *testing.T) {
		// A client that sends its password in the clear gets no answer: the
		// server wants a TLS handshake after its INFO, and hangs up.
		conn, err := net.Dial("tcp", hostPort)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		info, err := r.ReadString('\n')
		if err != nil || !strings.Contains(info, `"tls_required":true`) {
			t.Fatalf("INFO %q (%v), want tls_required", info, err)
		}
		pw := readString(t, filepath.Join(secrets, "bridge", "password"))
		if _, err := fmt.Fprintf(conn, "CONNECT {\"user\":\"bridge\",\"pass\":%q,\"verbose\":false}\r\nPING\r\n", pw); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(r)
		if strings.Contains(string(rest), "PONG") {
			t.Fatalf("a plain connection was answered: %q", rest)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server kept the plain connection open")
		}
	})
}
