package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/simmatch/simmatch/cmd/internal/cli"
)

const secretsUsage = `Usage: simmatch secrets [flags]

Writes what NATS with TLS and one password per role needs into -dir, once:
a later run keeps what is there (renewing only a server certificate that
expires within 30 days or lacks a -hosts name). docker-compose.yml runs it
as its one-shot "secrets" service; deploy/k8s can take its files as Secrets.

  DIR/ca/ca.crt, ca.key          the CA (its key is read only here, to renew)
  DIR/nats/tls.crt, tls.key      the NATS server's certificate and key
  DIR/nats/ca.crt                the CA certificate
  DIR/nats/passwords.conf        NATS_<ROLE>_PASSWORD variables that
                                 deploy/nats/nats-server.conf includes
  DIR/<role>/password, ca.crt    each client's password (NATS_PASSWORD_FILE)
                                 and CA (NATS_CA_FILE)

Roles are bridge and processor. Keys, passwords and passwords.conf are
0600. Your own secrets: NATS_BRIDGE_PASSWORD and NATS_PROCESSOR_PASSWORD
replace the generated passwords; -tls-cert-file, -tls-key-file and
-tls-ca-file replace the generated CA and certificate.
`

// natsRoles are the NATS users of deploy/nats/nats-server.conf.
var natsRoles = []string{"bridge", "processor"}

const (
	// minPasswordLen is the shortest password accepted from the environment.
	minPasswordLen = 16
	// serverCertLifetime and caLifetime: the server certificate is renewed
	// by any later run within renewBefore of its end; the CA is not.
	serverCertLifetime = 825 * 24 * time.Hour
	caLifetime         = 10 * 365 * 24 * time.Hour
	renewBefore        = 30 * 24 * time.Hour
)

// secretsConfig is what `simmatch secrets` writes and from what.
type secretsConfig struct {
	Dir   string
	Hosts []string // DNS names and IP addresses of the NATS server certificate
	// Passwords are the roles' passwords given by the user; a missing role
	// keeps its existing password or gets a random one.
	Passwords map[string]string
	// CertFile, KeyFile and CAFile: the user's own server certificate, key
	// and CA, used instead of generated ones (all three or none).
	CertFile, KeyFile, CAFile string
}

func runSecrets(_ context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var dir, hosts string
	var c secretsConfig
	f := cli.NewFlags("simmatch secrets", getenv, stdout)
	f.String(&dir, "dir", "SIMMATCH_SECRETS_DIR", "secrets", "directory to write into (created if missing)")
	f.String(&hosts, "hosts", "SIMMATCH_SECRETS_HOSTS", "nats,localhost,127.0.0.1", "comma-separated DNS names and IP addresses the NATS server certificate is valid for")
	f.String(&c.CertFile, "tls-cert-file", "SIMMATCH_SECRETS_TLS_CERT_FILE", "", "your own PEM server certificate for NATS (with -tls-key-file and -tls-ca-file)")
	f.String(&c.KeyFile, "tls-key-file", "SIMMATCH_SECRETS_TLS_KEY_FILE", "", "the PEM private key of -tls-cert-file")
	f.String(&c.CAFile, "tls-ca-file", "SIMMATCH_SECRETS_TLS_CA_FILE", "", "the PEM CA that issued -tls-cert-file (the clients verify NATS with it)")
	f.SetUsage(secretsUsage)
	if err := f.Parse(args); err != nil {
		return err
	}
	if len(f.Args()) > 0 {
		return usageError(fmt.Errorf("secrets: unexpected arguments %q", f.Args()))
	}
	c.Dir = dir
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.Hosts = append(c.Hosts, h)
		}
	}
	c.Passwords = map[string]string{}
	for _, r := range natsRoles {
		if pw := getenv(passwordVar(r)); pw != "" {
			c.Passwords[r] = pw
		}
	}
	report, err := writeSecrets(c, time.Now())
	for _, line := range report {
		fmt.Fprintln(stdout, line)
	}
	return err
}

// passwordVar is the nats-server.conf variable (and environment variable)
// holding role's password.
func passwordVar(role string) string {
	return "NATS_" + strings.ToUpper(role) + "_PASSWORD"
}

// writeSecrets brings c.Dir to the layout of secretsUsage, keeping what is
// already there and valid; it returns one line per file it wrote or kept
// (never a secret).
func writeSecrets(c secretsConfig, now time.Time) ([]string, error) {
	var report []string
	if len(c.Hosts) == 0 {
		return nil, usageError(errors.New("secrets: -hosts is empty"))
	}
	own := c.CertFile != "" || c.KeyFile != "" || c.CAFile != ""
	if own && (c.CertFile == "" || c.KeyFile == "" || c.CAFile == "") {
		return nil, usageError(errors.New("secrets: -tls-cert-file, -tls-key-file and -tls-ca-file go together"))
	}
	for r, pw := range c.Passwords {
		if err := checkPassword(pw); err != nil {
			return nil, fmt.Errorf("secrets: %s: %w", passwordVar(r), err)
		}
	}
	for _, sub := range append([]string{"ca", "nats"}, natsRoles...) {
		if err := os.MkdirAll(filepath.Join(c.Dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
	}
	p := func(parts ...string) string { return filepath.Join(append([]string{c.Dir}, parts...)...) }
	put := func(path string, data []byte, mode os.FileMode) error {
		changed, err := writeIfChanged(path, data, mode)
		if err != nil {
			return fmt.Errorf("secrets: %w", err)
		}
		verb := "kept"
		if changed {
			verb = "wrote"
		}
		report = append(report, fmt.Sprintf("%s %s", verb, path))
		return nil
	}

	// The CA and the server certificate.
	var caPEM, certPEM, keyPEM []byte
	if own {
		var err error
		if caPEM, certPEM, keyPEM, err = readOwnTLS(c); err != nil {
			return report, err
		}
	} else {
		ca, caKey, fresh, err := loadOrCreateCA(p("ca"), now)
		if err != nil {
			return report, err
		}
		caPEM = pemBlock("CERTIFICATE", ca.Raw)
		if fresh {
			keyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
			if err != nil {
				return report, fmt.Errorf("secrets: %w", err)
			}
			// The key first: a CA certificate without its key cannot renew.
			if err := put(p("ca", "ca.key"), pemBlock("PRIVATE KEY", keyDER), 0o600); err != nil {
				return report, err
			}
		}
		if err := put(p("ca", "ca.crt"), caPEM, 0o644); err != nil {
			return report, err
		}
		certPEM, keyPEM, err = serverCert(p("nats"), ca, caKey, c.Hosts, now)
		if err != nil {
			return report, err
		}
	}
	// The key before the certificate: a reader never pairs a new
	// certificate with an old key for long.
	if err := put(p("nats", "tls.key"), keyPEM, 0o600); err != nil {
		return report, err
	}
	if err := put(p("nats", "tls.crt"), certPEM, 0o644); err != nil {
		return report, err
	}
	for _, sub := range append([]string{"nats"}, natsRoles...) {
		if err := put(p(sub, "ca.crt"), caPEM, 0o644); err != nil {
			return report, err
		}
	}

	// The passwords: the user's, else the existing ones, else random.
	var conf bytes.Buffer
	conf.WriteString("# Written by `simmatch secrets`: the NATS users' passwords, as the variables\n" +
		"# deploy/nats/nats-server.conf includes. Each client reads its own from\n" +
		"# ../<role>/password. Keep this file 0600.\n")
	for _, r := range natsRoles {
		pw, ok := c.Passwords[r]
		if !ok {
			b, err := os.ReadFile(p(r, "password"))
			switch {
			case err == nil && checkPassword(string(b)) == nil:
				pw = string(b)
			case err == nil || errors.Is(err, fs.ErrNotExist):
				secret := make([]byte, 24)
				if _, err := rand.Read(secret); err != nil {
					return report, fmt.Errorf("secrets: %w", err)
				}
				pw = hex.EncodeToString(secret)
			default:
				return report, fmt.Errorf("secrets: %w", err)
			}
		}
		// No trailing newline: `kubectl create secret --from-file` keeps it.
		if err := put(p(r, "password"), []byte(pw), 0o600); err != nil {
			return report, err
		}
		fmt.Fprintf(&conf, "%s: %q\n", passwordVar(r), pw)
	}
	if err := put(p("nats", "passwords.conf"), conf.Bytes(), 0o600); err != nil {
		return report, err
	}
	return report, nil
}

// checkPassword refuses passwords that are short or need quoting in
// nats-server's configuration.
func checkPassword(pw string) error {
	if len(pw) < minPasswordLen {
		return fmt.Errorf("a password of %d characters, want %d or more", len(pw), minPasswordLen)
	}
	if strings.ContainsFunc(pw, func(r rune) bool { return r < 0x21 || r == 0x7f || r == '"' || r == '\\' }) {
		return errors.New("the password holds a space, a quote, a backslash or a control character")
	}
	return nil
}

// writeIfChanged writes data to path (through a temporary file and a
// rename) unless it already holds exactly that, and sets its mode either way.
func writeIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, os.Chmod(path, mode)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return false, err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	return true, os.Rename(tmp.Name(), path)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// readOwnTLS reads the user's certificate, key and CA, and checks that
// they belong together.
func readOwnTLS(c secretsConfig) (caPEM, certPEM, keyPEM []byte, err error) {
	for _, x := range []struct {
		file string
		out  *[]byte
	}{{c.CAFile, &caPEM}, {c.CertFile, &certPEM}, {c.KeyFile, &keyPEM}} {
		if *x.out, err = os.ReadFile(x.file); err != nil {
			return nil, nil, nil, fmt.Errorf("secrets: %w", err)
		}
	}
	pair, err := tlsPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("secrets: %s and %s: %w", c.CertFile, c.KeyFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, nil, fmt.Errorf("secrets: %s holds no PEM certificate", c.CAFile)
	}
	if _, err := pair.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, nil, nil, fmt.Errorf("secrets: %s does not verify with %s: %w", c.CertFile, c.CAFile, err)
	}
	return caPEM, certPEM, keyPEM, nil
}

// tlsPair parses a PEM certificate and checks that the PEM key is its own.
func tlsPair(certPEM, keyPEM []byte) (*x509.Certificate, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, errors.New("not a PEM certificate and key")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("the key is not the certificate's")
	}
	return cert, nil
}

// parseKey parses a PKCS#8, SEC 1 (EC) or PKCS#1 (RSA) private key.
func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, errors.New("unsupported private key type")
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("unsupported private key format")
}

// loadOrCreateCA returns the CA in dir, or a new one (fresh) when dir holds
// none.
func loadOrCreateCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, bool, error) {
	certPEM, certErr := os.ReadFile(filepath.Join(dir, "ca.crt"))
	keyPEM, keyErr := os.ReadFile(filepath.Join(dir, "ca.key"))
	switch {
	case certErr == nil && keyErr == nil:
		cert, err := tlsPair(certPEM, keyPEM)
		if err != nil {
			return nil, nil, false, fmt.Errorf("secrets: %s: %w (delete the directory to start over)", dir, err)
		}
		kb, _ := pem.Decode(keyPEM)
		k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
		key, ok := k.(*ecdsa.PrivateKey)
		if err != nil || !ok || !cert.IsCA {
			return nil, nil, false, fmt.Errorf("secrets: %s: not a CA written by simmatch secrets (delete the directory to start over)", dir)
		}
		return cert, key, false, nil
	case !errors.Is(certErr, fs.ErrNotExist) && certErr != nil:
		return nil, nil, false, fmt.Errorf("secrets: %w", certErr)
	case certErr == nil:
		return nil, nil, false, fmt.Errorf("secrets: %s has ca.crt but no ca.key: %w (delete the directory to start over)", dir, keyErr)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, false, fmt.Errorf("secrets: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "simmatch NATS CA", Organization: []string{"simmatch"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, false, fmt.Errorf("secrets: create the CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, false, fmt.Errorf("secrets: %w", err)
	}
	return cert, key, true, nil
}

// serverCert returns the server certificate and key in dir when they are
// still good (issued by ca, valid beyond renewBefore, for every host), else
// a new pair.
func serverCert(dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	certPEM, certErr := os.ReadFile(filepath.Join(dir, "tls.crt"))
	keyPEM, keyErr := os.ReadFile(filepath.Join(dir, "tls.key"))
	if certErr == nil && keyErr == nil {
		if cert, err := tlsPair(certPEM, keyPEM); err == nil && serverCertGood(cert, ca, hosts, now) {
			return certPEM, keyPEM, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("secrets: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"simmatch"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverCertLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("secrets: create the server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("secrets: %w", err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER), nil
}

// serverCertGood reports whether cert verifies with ca for every host and
// stays valid beyond renewBefore.
func serverCertGood(cert, ca *x509.Certificate, hosts []string, now time.Time) bool {
	if now.Add(renewBefore).After(cert.NotAfter) && ca.NotAfter.After(cert.NotAfter) {
		return false
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	opts := x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := cert.Verify(opts); err != nil {
		return false
	}
	return !slices.ContainsFunc(hosts, func(h string) bool {
		if strings.HasPrefix(h, "*.") { // a wildcard name is not a host to verify
			return !slices.Contains(cert.DNSNames, h)
		}
		return cert.VerifyHostname(h) != nil
	})
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

func keyID(pub *ecdsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return sum[:20]
}
