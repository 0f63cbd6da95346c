package security

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
)

// Scope names a group of routes an API key may call. A route group declares
// the scope it needs (the bridge's requireScope).
type Scope string

// The scopes a keys file may grant.
const (
	ScopePredict      Scope = "predict"       // predict, embeddings, similarity, search
	ScopeCatalogWrite Scope = "catalog:write" // create, change and delete catalogs
	ScopeJobs         Scope = "jobs"          // submit and read asynchronous jobs
	ScopeAdmin        Scope = "admin"         // the model routes
	ScopeMetrics      Scope = "metrics"       // GET /metrics, when the bridge's metrics scope names it
	ScopeAll          Scope = "*"             // every scope, present and future
)

// knownScopes are the scopes a keys file may name; anything else is a typo
// that would silently grant nothing, so the file is refused.
var knownScopes = map[Scope]bool{ScopePredict: true, ScopeCatalogWrite: true, ScopeJobs: true, ScopeAdmin: true, ScopeMetrics: true, ScopeAll: true}

// KnownScope reports whether s is a scope a keys file may grant.
func KnownScope(s Scope) bool { return knownScopes[s] }

// maxKeyNameLen bounds a key's name, which becomes a metric label and a log field.
const maxKeyNameLen = 64

// HashKey returns the lowercase hex SHA-256 of key, the form a keys file
// stores (the same as `printf %s "$KEY" | sha256sum`).
func HashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// Key is one line of a keys file: a named key's hash, scopes and limits.
type Key struct {
	name   string
	hash   [sha256.Size]byte
	scopes map[Scope]bool
	// rate and burst, when set, override the bridge's default RateLimit for this key.
	rate  *float64
	burst *int
	// tenant is the key's tenant= field, or its name.
	tenant string
	// principal is what a request with this key is authenticated as.
	principal *Principal
}

// Name is the key's name from the keys file: a log field and metric label,
// never the key.
func (k *Key) Name() string { return k.name }

// Tenant is the tenant the key belongs to: its tenant= field in the keys
// file, or the key's name.
func (k *Key) Tenant() string { return k.tenant }

// Principal is who a request with this key is authenticated as.
func (k *Key) Principal() *Principal { return k.principal }

// Limit is the key's token bucket: def with the key's own rate and burst.
func (k *Key) Limit(def RateLimit) RateLimit {
	if k.rate != nil {
		def.Rate = *k.rate
	}
	if k.burst != nil {
		def.Burst = *k.burst
	}
	return def
}

// Allows reports whether the key grants scope.
func (k *Key) Allows(scope Scope) bool { return k.scopes[ScopeAll] || k.scopes[scope] }

// parseKeys parses the keys-file format (see docs/security.md):
//
//	# comment
//	<name> <sha256 hex of the key> <scope>[,<scope>...] [rate=<per second>] [burst=<n>] [tenant=<name>]
//
// tenant names the tenant the key belongs to (default: the key's name).
// rate and burst override the bridge's SIMMATCH_RATE_LIMIT and
// SIMMATCH_RATE_BURST for that key, each on its own.
// Errors name the line and the field, never the line's content.
func parseKeys(data []byte) ([]*Key, error) {
	var keys []*Key
	names := map[string]int{}
	hashes := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseKeyLine(strings.Fields(line))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if prev, dup := names[k.name]; dup {
			return nil, fmt.Errorf("line %d: name %q is already used on line %d", n, k.name, prev)
		}
		if prev, dup := hashes[k.hash]; dup {
			return nil, fmt.Errorf("line %d: the same key hash is already on line %d", n, prev)
		}
		names[k.name], hashes[k.hash] = n, n
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return keys, nil
}

func parseKeyLine(fields []string) (*Key, error) {
	if len(fields) < 3 {
		return nil, fmt.Errorf("want <name> <sha256 hex of the key> <scope>[,<scope>...], got %d fields", len(fields))
	}
	k := &Key{name: fields[0], scopes: map[Scope]bool{}}
	if !validKeyName(k.name) {
		return nil, fmt.Errorf("name: want 1 to %d of A-Z a-z 0-9 . _ -", maxKeyNameLen)
	}
	h, err := hex.DecodeString(fields[1])
	if err != nil || len(h) != sha256.Size {
		return nil, errors.New("hash: want the 64 hex digits of the key's SHA-256 (printf %s \"$KEY\" | sha256sum), not the key itself")
	}
	copy(k.hash[:], h)
	for s := range strings.SplitSeq(fields[2], ",") {
		if !knownScopes[Scope(s)] {
			return nil, fmt.Errorf("scope %q: want predict, catalog:write, jobs, admin or *", s)
		}
		k.scopes[Scope(s)] = true
	}
	for i, f := range fields[3:] {
		opt, val, _ := strings.Cut(f, "=")
		switch opt {
		case "rate":
			r, err := strconv.ParseFloat(val, 64)
			if err != nil || r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
				return nil, fmt.Errorf("rate: want requests per second >= 0 (0: unlimited), got %q", val)
			}
			k.rate = &r
		case "burst":
			b, err := strconv.Atoi(val)
			if err != nil || b < 0 {
				return nil, fmt.Errorf("burst: want an integer >= 0, got %q", val)
			}
			k.burst = &b
		case "tenant":
			if !ValidTenant(val) {
				return nil, fmt.Errorf("tenant: want 1 to %d of A-Z a-z 0-9 . _ -", maxTenantLen)
			}
			k.tenant = val
		default:
			return nil, fmt.Errorf("field %d: want rate=<per second>, burst=<n> or tenant=<name>", i+4)
		}
	}
	if k.tenant == "" {
		k.tenant = k.name
	}
	k.principal = &Principal{Name: k.name, Tenant: k.tenant, Method: MethodAPIKey, scopes: k.scopes, key: k}
	return k, nil
}

func validKeyName(s string) bool {
	if s == "" || len(s) > maxKeyNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// KeyStore holds the API keys of a keys file and re-reads the file when it
// changes (Watch) or when asked (Reload, e.g. on SIGHUP), as Reloaded does.
// Only the keys' SHA-256 hashes are held. A file that fails to parse keeps
// the previous keys. It is safe for concurrent use.
type KeyStore struct {
	*Reloaded[[]*Key]
}

// OpenKeyStore reads the keys file at path. Unlike a later reload, a file
// that cannot be read or parsed now is an error: the bridge must not start
// with no keys by accident. A nil logger means slog.Default().
func OpenKeyStore(path string, logger *slog.Logger) (*KeyStore, error) {
	r, err := OpenReloaded("API keys file", []string{path},
		func(data [][]byte) ([]*Key, error) { return parseKeys(data[0]) },
		func(keys []*Key) []any { return []any{"keys", len(keys)} }, logger)
	if err != nil {
		return nil, err
	}
	return &KeyStore{r}, nil
}

// Len is the number of keys in force.
func (s *KeyStore) Len() int { return len(s.Load()) }

// Lookup returns the key whose hash is SHA-256(presented), or nil. Every
// entry is compared, in constant time, so the answer's timing does not
// depend on which entry matched or how much of a hash did.
func (s *KeyStore) Lookup(presented string) *Key {
	sum := sha256.Sum256([]byte(presented))
	var found *Key
	for _, k := range s.Load() {
		if subtle.ConstantTimeCompare(sum[:], k.hash[:]) == 1 {
			found = k
		}
	}
	return found
}
