package testenv

import (
	"crypto/tls"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// WithUser makes the server require this user and password.
func WithUser(user, password string) NATSOption {
	return func(o *server.Options) { o.Username, o.Password = user, password }
}

// WithToken makes the server require this token.
func WithToken(token string) NATSOption {
	return func(o *server.Options) { o.Authorization = token }
}

// NKeyUser makes an NKey user: the server option that admits it and the
// path of a file (in a test directory) holding its seed.
func NKeyUser(t testing.TB) (NATSOption, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "user.nk")
	WriteFile(t, file, seed)
	return func(o *server.Options) { o.Nkeys = append(o.Nkeys, &server.NkeyUser{Nkey: pub}) }, file
}

// JWTUser sets up decentralized authentication (an operator, an account, a
// user) as nsc would: the server option that trusts the operator and knows
// the account, and the path of the user's creds file.
func JWTUser(t testing.TB) (NATSOption, string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	okp, err := nkeys.CreateOperator()
	must(err)
	opub, err := okp.PublicKey()
	must(err)
	ojwt, err := jwt.NewOperatorClaims(opub).Encode(okp)
	must(err)
	operator, err := jwt.DecodeOperatorClaims(ojwt)
	must(err)
	akp, err := nkeys.CreateAccount()
	must(err)
	apub, err := akp.PublicKey()
	must(err)
	ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
	must(err)
	return func(o *server.Options) {
		resolver := &server.MemAccResolver{}
		must(resolver.Store(apub, ajwt))
		o.TrustedOperators = append(o.TrustedOperators, operator)
		o.AccountResolver = resolver
	}, UserCreds(t, akp)
}

// UserCreds writes a creds file for a new user signed by account and
// returns its path.
func UserCreds(t testing.TB, account nkeys.KeyPair) string {
	t.Helper()
	ukp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	upub, _ := ukp.PublicKey()
	ujwt, err := jwt.NewUserClaims(upub).Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "user.creds")
	WriteFile(t, file, creds)
	return file
}

// WithTLS makes the server speak TLS with a certificate from ca; with
// verifyClients it also requires client certificates signed by ca.
func WithTLS(t testing.TB, ca *CA, verifyClients bool) NATSOption {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{ca.Server(t, "nats").TLSCertificate(t)}}
	if verifyClients {
		cfg.ClientCAs = ca.Pool()
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return func(o *server.Options) { o.TLSConfig, o.TLS, o.TLSVerify = cfg, true, verifyClients }
}

// StartNATSFromConfig runs a real NATS server in-process with the options
// of a nats-server configuration file (server.ProcessConfigFile), on a
// random loopback port, with JetStream's store (if enabled) in a test
// directory; opts apply last.
func StartNATSFromConfig(t testing.TB, path string, opts ...NATSOption) *server.Server {
	t.Helper()
	fromFile, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("testenv: %s: %v", path, err)
	}
	dir := t.TempDir()
	return StartNATS(t, append([]NATSOption{func(o *server.Options) {
		base := *o
		*o = *fromFile
		o.Host, o.Port, o.NoLog, o.NoSigs = base.Host, base.Port, true, true
		o.HTTPPort, o.Cluster.Port, o.LeafNode.Port = 0, 0, 0
		if o.JetStream {
			o.StoreDir = dir
		}
	}}, opts...)...)
}
