// Package bridge is simmatch's HTTP API: it validates REST requests
// (POST /predict, GET /health, GET /ready, GET /openapi.yaml) and turns them
// into NATS request-reply calls to the processors through contracts.Client.
// It also serves Prometheus metrics (GET /metrics) when configured to.
// It never imports model code and builds with CGO_ENABLED=0.
package bridge
