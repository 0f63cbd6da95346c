// Package bridge is simmatch's HTTP API: it validates REST requests
// (POST /predict, GET /health, GET /ready, GET /openapi.yaml) and turns them
// into NATS request-reply calls to the processors through contracts.Client.
// It also serves Prometheus metrics (GET /metrics) when configured to.
// It never imports model code and builds with CGO_ENABLED=0.
//
// Security is opt-in: API keys with scopes per route group and per-key rate
// limits (KeyStore, Config.Keys, Config.RateLimit), and HTTPS with
// certificates reloaded without a restart (CertReloader).
package bridge
