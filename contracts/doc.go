// Package contracts is simmatch's wire: the NATS subject and queue group, the
// v1 request and response types, the error model with its stable codes, the
// trace-context carrier for NATS headers, the acknowledgement protocol that
// lets callers re-send a request whose processor died (progress.go), and a
// typed client that does so. Other services import it to call the processors
// directly over NATS, without the HTTP bridge.
//
// Tenants: a Client made WithTenant acts in that tenant's namespace: it
// qualifies every catalog name it sends and unqualifies every name it gets
// back (CatalogNamespace), as the bridge does for the tenant's API keys, so
// both reach the same catalogs. NATS access is trusted: the trust boundary
// is the NATS account and its credentials, not the tenant. Whoever holds
// NATS credentials that may publish requests can make a client for any
// tenant, or none, and read or change every tenant's catalogs and jobs;
// WithTenant keeps a well-behaved service inside its tenant's names, it does
// not stop a misbehaving one. Give NATS credentials only to services you
// would trust as an admin.
//
// It depends only on the standard library, nats.go and the OpenTelemetry API.
package contracts
