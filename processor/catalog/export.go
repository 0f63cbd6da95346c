package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/contracts"
)

// Export calls fn with every product of a catalog, in stream order, read
// straight from JetStream (no processor involved). It returns the number of
// products, or a not_found *contracts.Error for an unknown catalog.
func Export(ctx context.Context, js jetstream.JetStream, name string, fn func(contracts.Product) error) (int, error) {
	st, err := js.Stream(ctx, streamName(name))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, &contracts.Error{Code: contracts.CodeNotFound, Field: "catalog", Message: fmt.Sprintf("catalog %q does not exist", name)}
	}
	if err != nil {
		return 0, fmt.Errorf("catalog: export %s: %w", name, err)
	}
	info := st.CachedInfo()
	if info.State.Msgs == 0 {
		return 0, nil
	}
	dims := modelFromMetadata(info.Config.Metadata).Dimensions
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, fmt.Errorf("catalog: export %s: %w", name, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return 0, fmt.Errorf("catalog: export %s: %w", name, err)
	}
	defer msgs.Stop()
	n := 0
	for {
		m, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			return n, fmt.Errorf("catalog: export %s after %d products: %w", name, n, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return n, err
		}
		rec, err := decodeRecord(m.Subject(), m.Headers(), m.Data(), dims)
		if err != nil {
			return n, err
		}
		if !rec.deleted && rec.control == nil {
			if err := fn(rec.product); err != nil {
				return n, err
			}
			n++
		}
		if md.NumPending == 0 {
			return n, nil
		}
	}
}
