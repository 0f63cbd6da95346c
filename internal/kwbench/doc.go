// Package kwbench measures processor/catalog/keyword against bleve on the
// same synthetic catalog: build time, heap per million products, and p50/p99
// of a top-10 query. It is a nested module so that bleve never enters the
// main module's go.mod; run it with `make bench-keyword` (see
// docs/keyword.md for the figures).
package kwbench
