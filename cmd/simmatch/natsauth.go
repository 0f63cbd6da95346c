package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// natsCredentialsFile is the file in the data directory that holds the
// embedded NATS server's user and password, as NATS_USER and NATS_PASSWORD
// lines: a client elsewhere reads it with `set -a; . data/nats-credentials`.
const natsCredentialsFile = "nats-credentials"

// natsUser is the user of the generated credentials.
const natsUser = "simmatch"

// natsCredentials are the embedded NATS server's user and password, and the
// file they are kept in.
type natsCredentials struct {
	User, Password, Path string
}

// beyondLoopback reports whether a listen address host:port may be reached
// from other machines: an empty host, an unspecified address, any IP but a
// loopback one, and any host name but localhost (a name may resolve to
// anything).
func beyondLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return true
	}
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// embeddedNATSCredentials returns the credentials of the embedded NATS
// server in dataDir: the ones an earlier start wrote there (so clients
// configured with them keep working across restarts), else a new random
// password written to a file only the owner may read.
func embeddedNATSCredentials(dataDir string) (natsCredentials, error) {
	c := natsCredentials{Path: filepath.Join(dataDir, natsCredentialsFile)}
	data, err := os.ReadFile(c.Path)
	switch {
	case err == nil:
		if fi, err := os.Stat(c.Path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return c, fmt.Errorf("embedded NATS credentials %s: mode %v, want 0600 (chmod 600 it)", c.Path, fi.Mode().Perm())
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), "=")
			switch k {
			case "NATS_USER":
				c.User = v
			case "NATS_PASSWORD":
				c.Password = v
			}
		}
		if c.User == "" || len(c.Password) < 16 {
			return c, fmt.Errorf("embedded NATS credentials %s: want NATS_USER=... and NATS_PASSWORD=... (16 characters or more) lines; delete it to get new ones", c.Path)
		}
		return c, nil
	case !errors.Is(err, fs.ErrNotExist):
		return c, fmt.Errorf("embedded NATS credentials: %w", err)
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return c, fmt.Errorf("embedded NATS credentials: %w", err)
	}
	c.User, c.Password = natsUser, hex.EncodeToString(secret)
	content := fmt.Sprintf("# The embedded NATS server's credentials (simmatch serve, SIMMATCH_NATS_LISTEN beyond loopback).\n"+
		"# Clients elsewhere: set -a; . %s; set +a\nNATS_USER=%s\nNATS_PASSWORD=%s\n", c.Path, c.User, c.Password)
	// O_EXCL: two starts on one data directory do not overwrite each other's.
	f, err := os.OpenFile(c.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return c, fmt.Errorf("embedded NATS credentials: %w", err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		os.Remove(c.Path)
		return c, fmt.Errorf("embedded NATS credentials: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(c.Path)
		return c, fmt.Errorf("embedded NATS credentials: %w", err)
	}
	return c, nil
}
