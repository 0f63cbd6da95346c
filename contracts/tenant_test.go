package contracts_test

import (
	"strings"
	"testing"

	"github.com/simmatch/simmatch/contracts"
)

// A qualified name is one to one with its tenant and name, processors take
// it, and users cannot give one.
func TestQualifyCatalogName(t *testing.T) {
	long := strings.Repeat("t", 64)
	for _, tt := range []struct{ tenant, name, want string }{
		{"acme", "shop", "acme=shop"},
		{"eu.acme", "shop", "eu=acme=shop"},
		{"eu", "acme", "eu=acme"},
		{".a.", "b", "=a==b"},
		{"a_b-c", "x-y_z", "a_b-c=x-y_z"},
		{long, strings.Repeat("n", 64), long + "=" + strings.Repeat("n", 64)},
	} {
		q := contracts.QualifyCatalogName(tt.tenant, tt.name)
		if q != tt.want {
			t.Errorf("QualifyCatalogName(%q, %q) = %q, want %q", tt.tenant, tt.name, q, tt.want)
		}
		if tenant, name, ok := contracts.SplitCatalogName(q); !ok || tenant != tt.tenant || name != tt.name {
			t.Errorf("SplitCatalogName(%q) = %q, %q, %v", q, tenant, name, ok)
		}
		if err := contracts.ValidateCatalogName(q); err != nil {
			t.Errorf("processors refuse %q: %v", q, err)
		}
		if err := contracts.ValidateUserCatalogName(q); err == nil {
			t.Errorf("users may give %q", q)
		}
		if !strings.HasPrefix(q, contracts.TenantCatalogPrefix(tt.tenant)) {
			t.Errorf("%q lacks its tenant's prefix", q)
		}
	}
	if _, name, ok := contracts.SplitCatalogName("shop"); ok || name != "shop" {
		t.Errorf("an unqualified name splits: %q %v", name, ok)
	}
	for _, bad := range []string{"", "a~b", "a.b", "=shop", "acme=", "a b", strings.Repeat("t", 65) + "=shop", "acme=" + strings.Repeat("n", 65)} {
		if err := contracts.ValidateCatalogName(bad); err == nil {
			t.Errorf("processors take %q", bad)
		}
	}
	for _, good := range []string{"shop", "a-b_c", strings.Repeat("n", 64)} {
		if err := contracts.ValidateUserCatalogName(good); err != nil {
			t.Errorf("users may not give %q: %v", good, err)
		}
	}
	for _, bad := range []string{"", "sh~op", "acme=shop", "a.b", strings.Repeat("n", 65)} {
		if err := contracts.ValidateUserCatalogName(bad); err == nil {
			t.Errorf("users may give %q", bad)
		}
	}
}

// A job's catalog fields take qualified names (processors validate them),
// and their errors name the field.
func TestJobCatalogFieldsTakeQualifiedNames(t *testing.T) {
	ok := contracts.JobRequest{Match: &contracts.MatchJob{Source: "acme=shop", Target: "eu=acme=shop"}}
	if err := ok.Validate(contracts.DefaultJobLimits); err != nil {
		t.Errorf("qualified match: %v", err)
	}
	bad := contracts.JobRequest{Match: &contracts.MatchJob{Source: "acme=shop", Target: "a~b"}}
	e := contracts.AsError(bad.Validate(contracts.DefaultJobLimits))
	if e == nil || e.Field != "match.target" || !strings.HasPrefix(e.Message, "match.target: \"a~b\" is not a catalog name") {
		t.Errorf("bad target: %+v", e)
	}
}
