package contracts

import (
	"errors"
	"fmt"
	"strings"
)

// HeaderTenant carries the tenant a request is made for: the bridge writes
// its caller's (with the other Simmatch-* principal headers), a Client
// made WithTenant its own. Processors do not need it (catalog names are
// qualified), and may trust it only as far as they trust whoever holds NATS
// credentials (see the package doc).
const HeaderTenant = "Simmatch-Tenant"

// MaxTenantBytes bounds a tenant's name.
const MaxTenantBytes = 64

// ValidateTenant checks a tenant's name: 1 to MaxTenantBytes letters,
// digits, '.', '_' or '-' (the charset of the bridge's key names and
// tenants).
func ValidateTenant(tenant string) error {
	if tenant == "" || len(tenant) > MaxTenantBytes {
		return fmt.Errorf("contracts: tenant %q: want 1 to %d letters, digits, '.', '_' or '-'", tenant, MaxTenantBytes)
	}
	for i := 0; i < len(tenant); i++ {
		c := tenant[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("contracts: tenant %q: want 1 to %d letters, digits, '.', '_' or '-'", tenant, MaxTenantBytes)
		}
	}
	return nil
}

// CatalogNamespace maps one tenant's catalog names to the stored names
// processors take (QualifyCatalogName) and back. The bridge uses one per
// request, a Client made WithTenant one for every call. The zero value is
// no tenant: names pass as they are.
type CatalogNamespace struct {
	tenant string
	prefix string // TenantCatalogPrefix(tenant); "" for no tenant
}

// TenantNamespace is tenant's namespace; "" is the zero value (no tenant).
func TenantNamespace(tenant string) CatalogNamespace {
	if tenant == "" {
		return CatalogNamespace{}
	}
	return CatalogNamespace{tenant: tenant, prefix: TenantCatalogPrefix(tenant)}
}

// Tenant is the namespace's tenant, "" for none.
func (n CatalogNamespace) Tenant() string { return n.tenant }

// Scoped reports whether names are qualified (a tenant's namespace).
func (n CatalogNamespace) Scoped() bool { return n.prefix != "" }

// Check validates a catalog name given in field: in a tenant's namespace a
// plain name (ValidateUserCatalogName: a name holding '=' would reach into
// another tenant's), otherwise any stored name (ValidateCatalogName). The
// error names field.
func (n CatalogNamespace) Check(field, name string) error {
	var err error
	if n.Scoped() {
		err = ValidateUserCatalogName(name)
	} else {
		err = ValidateCatalogName(name)
	}
	if err != nil && field != "catalog" {
		return renameField(err, field)
	}
	return err
}

// Qualify is the stored name of a catalog name of the namespace.
func (n CatalogNamespace) Qualify(name string) string {
	if n.prefix == "" || name == "" {
		return name
	}
	return n.prefix + name
}

// Unqualify is the namespace's name of a stored catalog, ok false when the
// catalog is not the namespace's.
func (n CatalogNamespace) Unqualify(stored string) (string, bool) {
	if n.prefix == "" {
		return stored, true
	}
	name, ok := strings.CutPrefix(stored, n.prefix)
	if !ok || strings.Contains(name, TenantSeparator) {
		return "", false // another tenant's, e.g. eu.acme's "eu=acme=shop" for tenant eu
	}
	return name, true
}

// FixError makes err, when it is an *Error, name the catalogs names as the
// namespace does instead of by their stored names. Other errors (a
// cancelled context) name no catalog and are returned as they are.
func (n CatalogNamespace) FixError(err error, names ...string) error {
	var ce *Error
	if n.prefix == "" || !errors.As(err, &ce) {
		return err
	}
	e := *ce
	for _, name := range names {
		if name != "" {
			e.Message = strings.ReplaceAll(e.Message, n.prefix+name, name)
		}
	}
	return &e
}

// Strip removes the namespace's prefix from a text that names only the
// namespace's catalogs by their stored names (a job's error).
func (n CatalogNamespace) Strip(s string) string {
	if n.prefix == "" {
		return s
	}
	return strings.ReplaceAll(s, n.prefix, "")
}

// CatalogRef is one catalog name a job request gives: the field, as errors
// name it, and the name, which a namespace may qualify in place.
type CatalogRef struct {
	Field string
	Name  *string
}

// CatalogRefs are the catalog names r gives: a match's source and target, a
// dedupe's catalog, or a query job's catalog; none for a job on
// descriptions.
func (r *JobRequest) CatalogRefs() []CatalogRef {
	switch {
	case r.Match != nil:
		return []CatalogRef{{"match.source", &r.Match.Source}, {"match.target", &r.Match.Target}}
	case r.Dedupe != nil:
		return []CatalogRef{{"dedupe.catalog", &r.Dedupe.Catalog}}
	case r.Catalog != "":
		return []CatalogRef{{"catalog", &r.Catalog}}
	}
	return nil
}

// QualifyJob returns a copy of r whose catalog names are qualified (r is
// left as it is), and the names as r gave them, for FixError. A name that
// Check refuses is an invalid_request naming its field.
func (n CatalogNamespace) QualifyJob(r *JobRequest) (*JobRequest, []string, error) {
	q := *r
	if r.Match != nil {
		m := *r.Match
		q.Match = &m
	}
	if r.Dedupe != nil {
		d := *r.Dedupe
		q.Dedupe = &d
	}
	refs := q.CatalogRefs()
	names := make([]string, len(refs))
	for i, c := range refs {
		names[i] = *c.Name
		if *c.Name == "" {
			continue // Validate says it is required
		}
		if err := n.Check(c.Field, *c.Name); err != nil {
			return nil, nil, err
		}
		*c.Name = n.Qualify(*c.Name)
	}
	return &q, names, nil
}
