package bridge

import (
	"context"
	"strings"

	"github.com/simmatch/simmatch/bridge/security"
	"github.com/simmatch/simmatch/contracts"
)

// Tenants: a request whose principal is a tenant's (not an admin's) names
// its catalogs unqualified; the bridge sends processors the qualified name
// (contracts.QualifyCatalogName), so processors stay tenant-unaware and
// each tenant's catalogs are its own streams. Another tenant's catalog is
// therefore simply not found. An admin names stored catalogs as they are
// (qualified or not) and sees every one. Jobs record the tenant that
// submitted them; other tenants get the not_found of an unknown id. With
// authentication off nothing is qualified and jobs have no owner.

// tenancy maps one request's catalog names between the caller's and the
// processors' (contracts.CatalogNamespace, which a contracts.Client made
// WithTenant shares, so both give a tenant the same catalogs).
type tenancy struct {
	p *security.Principal // nil: authentication off
	// ns is the namespace of a tenant caller; the zero value for an admin
	// or with authentication off (names pass as they are).
	ns contracts.CatalogNamespace
}

func tenancyOf(ctx context.Context) tenancy {
	t := tenancy{p: security.PrincipalFrom(ctx)}
	if t.p != nil && !t.p.Admin() {
		t.ns = contracts.TenantNamespace(t.p.Tenant)
	}
	return t
}

func (t tenancy) admin() bool { return t.p != nil && t.p.Admin() }

// check validates a catalog name the caller gave in field: an admin may
// name any stored catalog (contracts.ValidateCatalogName); everyone else
// gives a plain name (contracts.ValidateUserCatalogName).
func (t tenancy) check(field, name string) *contracts.Error {
	var err error
	if t.admin() {
		err = contracts.ValidateCatalogName(name)
	} else {
		err = contracts.ValidateUserCatalogName(name)
	}
	if err == nil {
		return nil
	}
	e := *contracts.AsError(err)
	if e.Field != field {
		e.Message = field + strings.TrimPrefix(e.Message, e.Field)
		e.Field = field
	}
	return &e
}

// qualify is the stored name of the caller's catalog name.
func (t tenancy) qualify(name string) string { return t.ns.Qualify(name) }

// unqualify is the caller's name of a stored catalog, ok false when the
// catalog is not the caller's.
func (t tenancy) unqualify(stored string) (string, bool) { return t.ns.Unqualify(stored) }

// fixErr makes err name the catalogs as the caller named them.
func (t tenancy) fixErr(err error, names ...string) error {
	if err == nil || !t.ns.Scoped() {
		return err
	}
	return t.ns.FixError(contracts.AsError(err), names...)
}

// owner is the tenant the caller's jobs belong to: "" with authentication off.
func (t tenancy) owner() string {
	if t.p == nil {
		return ""
	}
	return t.p.Tenant
}

// jobAccess answers not_found, exactly as for an unknown id, when the job
// is another tenant's. Authentication off and admins see every job.
func (s *Server) jobAccess(ctx context.Context, id string) error {
	t := tenancyOf(ctx)
	if t.p == nil || t.admin() {
		return nil
	}
	return s.jobs.Owned(ctx, id, t.p.Tenant)
}
