package main

import (
	"context"
	"io"
	"testing"

	"github.com/simmatch/simmatch/internal/testenv"
)

// runServe runs serve with args, getenv and out until stop (or the end of the
// test) and returns the bridge's and the NATS URL once both serve (see
// testenv.RunCommand).
func runServe(t *testing.T, args []string, getenv func(string) string, out io.Writer) (httpURL, natsURL string, stop func()) {
	t.Helper()
	type urls struct{ h, n string }
	u, stop := testenv.RunCommand(t, func(ctx context.Context, ready func(urls)) error {
		return serve(ctx, args, getenv, out, func(h, n string) { ready(urls{h, n}) })
	})
	return u.h, u.n, stop
}
