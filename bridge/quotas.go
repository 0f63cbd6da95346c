package bridge

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"

	"github.com/simmatch/simmatch/bridge/security"
)

// Quotas bound what each tenant may hold and run (docs/security.md,
// Quotas): the bridge refuses a write or a job that would pass one with
// quota_exceeded, before any work is done. Admins are exempt; with
// authentication off there are no tenants and no quotas. It is immutable.
type Quotas struct {
	def     Quota            // the * line; Unlimited everywhere without one
	tenants map[string]Quota // one line per tenant
}

// Quota is one tenant's limits; a field of Unlimited (-1) bounds nothing.
type Quota struct {
	// Catalogs is the number of catalogs the tenant may hold.
	Catalogs int64
	// Products is the number of products, summed over its catalogs.
	Products int64
	// Bytes is what its catalogs' JetStream streams may hold, summed.
	Bytes int64
	// Jobs is the number of its jobs that may be submitting, queued or
	// running at once.
	Jobs int64
	// Upload bounds one job submission's body: JSON lines and JSON.
	Upload int64
	// Rate is the tenant's request rate, all its keys and tokens together
	// (each key's own rate= still applies too); a zero Rate bounds nothing.
	Rate security.RateLimit
}

// Unlimited is a Quota field that bounds nothing.
const Unlimited = -1

// NoQuota is a Quota that bounds nothing.
var NoQuota = Quota{Catalogs: Unlimited, Products: Unlimited, Bytes: Unlimited, Jobs: Unlimited, Upload: Unlimited}

// The quotas' names: the fields of a quotas file, and the field of a
// quota_exceeded error.
const (
	quotaCatalogs = "catalogs"
	quotaProducts = "products"
	quotaBytes    = "bytes"
	quotaJobs     = "jobs"
	quotaUpload   = "upload"
	quotaRate     = "rate"
	quotaBurst    = "burst"
)

// For is the quota of tenant: its own line, else the * line, else none.
func (q *Quotas) For(tenant string) Quota {
	if q == nil {
		return NoQuota
	}
	if t, ok := q.tenants[tenant]; ok {
		return t
	}
	return q.def
}

// storage reports whether q bounds what a tenant's catalogs hold.
func (q Quota) storage() bool {
	return q.Catalogs != Unlimited || q.Products != Unlimited || q.Bytes != Unlimited
}

// QuotaSource gives the quotas in force: a *Quotas, or a *QuotasFile
// that follows its file.
type QuotaSource interface {
	Current() *Quotas
}

// Current is q itself: quotas that never change.
func (q *Quotas) Current() *Quotas { return q }

// QuotasFile is a quotas file (ParseQuotas), re-read when it changes
// (Watch) or when asked (Reload, e.g. on SIGHUP), like the API keys file:
// a file that fails to parse keeps the previous quotas.
type QuotasFile struct {
	*security.Reloaded[*Quotas]
}

// Current is the quotas of the file's last good content.
func (f *QuotasFile) Current() *Quotas { return f.Load() }

// OpenQuotas reads the quotas file at path (ParseQuotas). Unlike a later
// reload, a file that cannot be read or parsed now is an error. A nil
// logger means slog.Default().
func OpenQuotas(path string, logger *slog.Logger) (*QuotasFile, error) {
	r, err := security.OpenReloaded("quotas file", []string{path}, func(data [][]byte) (*Quotas, error) { return ParseQuotas(data[0]) },
		func(q *Quotas) []any { return []any{"tenants", len(q.tenants), "default", q.def != NoQuota} }, logger)
	if err != nil {
		return nil, err
	}
	return &QuotasFile{r}, nil
}

// ParseQuotas parses the quotas-file format (see docs/security.md):
//
//	# comment
//	<tenant|*> [catalogs=<n>] [products=<n>] [bytes=<size>] [jobs=<n>] [upload=<size>] [rate=<requests/s>] [burst=<n>]
//
// * is the quota of every tenant without a line of its own; a field left
// out bounds nothing (a tenant's line does not inherit from *). Sizes are
// bytes, with an optional unit: KB, MB, GB, TB (powers of 1000) or KiB,
// MiB, GiB, TiB (powers of 1024). Errors name the line and the field.
func ParseQuotas(data []byte) (*Quotas, error) {
	q := &Quotas{def: NoQuota, tenants: map[string]Quota{}}
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		who := fields[0]
		if who != "*" && !security.ValidTenant(who) {
			return nil, fmt.Errorf("line %d: tenant: want * or 1 to 64 of A-Z a-z 0-9 . _ -", n)
		}
		if prev, dup := seen[who]; dup {
			return nil, fmt.Errorf("line %d: tenant %q is already on line %d", n, who, prev)
		}
		seen[who] = n
		quota, err := parseQuotaFields(fields[1:])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if who == "*" {
			q.def = quota
		} else {
			q.tenants[who] = quota
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return q, nil
}

func parseQuotaFields(fields []string) (Quota, error) {
	quota := NoQuota
	set := map[string]bool{}
	for i, f := range fields {
		name, val, ok := strings.Cut(f, "=")
		var dst *int64
		size := false
		switch name {
		case quotaCatalogs:
			dst = &quota.Catalogs
		case quotaProducts:
			dst = &quota.Products
		case quotaJobs:
			dst = &quota.Jobs
		case quotaBytes:
			dst, size = &quota.Bytes, true
		case quotaUpload:
			dst, size = &quota.Upload, true
		case quotaRate, quotaBurst:
		default:
			return quota, fmt.Errorf("field %d: want catalogs=<n>, products=<n>, bytes=<size>, jobs=<n>, upload=<size>, rate=<requests/s> or burst=<n>", i+2)
		}
		if !ok {
			return quota, fmt.Errorf("%s: want %s=<value>", name, name)
		}
		if set[name] {
			return quota, fmt.Errorf("%s: given twice", name)
		}
		set[name] = true
		var err error
		switch {
		case name == quotaRate:
			quota.Rate.Rate, err = strconv.ParseFloat(val, 64)
			if err != nil || quota.Rate.Rate < 0 || math.IsInf(quota.Rate.Rate, 0) {
				return quota, fmt.Errorf("%s: want requests per second >= 0, got %q", name, val)
			}
		case name == quotaBurst:
			quota.Rate.Burst, err = strconv.Atoi(val)
			if err != nil || quota.Rate.Burst < 0 {
				return quota, fmt.Errorf("%s: want an integer >= 0, got %q", name, val)
			}
		case size:
			if *dst, err = parseSize(val); err != nil {
				return quota, fmt.Errorf("%s: want a size in bytes, optionally with KB, MB, GB, TB, KiB, MiB, GiB or TiB (e.g. 512MiB), got %q", name, val)
			}
		default:
			*dst, err = strconv.ParseInt(val, 10, 64)
			if err != nil || *dst < 0 {
				return quota, fmt.Errorf("%s: want an integer >= 0, got %q", name, val)
			}
		}
	}
	return quota, nil
}

// sizeUnits are the units a size may end with, longest first.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// parseSize parses a size: an integer number of bytes, with an optional unit.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = num, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bridge: size %q", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("bridge: size %q overflows", s)
	}
	return n * mult, nil
}
