package cache

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simmatch/simmatch/internal/testenv"
	"github.com/simmatch/simmatch/processor/embedding"
)

// sharedCache is a cache over its own counting view of the real model, with
// the shared tier in bucket on its own connection to ns, bound and ready.
func sharedCache(t *testing.T, ns *server.Server, bucket string, local int64, mod func(*SharedConfig)) (*Cache, *counting) {
	t.Helper()
	inner := &counting{Embedder: realModel(t, "1")}
	sc := &SharedConfig{NATS: testenv.Connect(t, ns), Bucket: bucket}
	if mod != nil {
		mod(sc)
	}
	c := newCache(t, Config{Inner: inner, Bytes: local, Shared: sc})
	testenv.WaitFor(t, 10*time.Second, "the shared bucket to be bound", func() bool { return c.Stats().Shared.Ready })
	return c, inner
}

// A second processor's cache answers from the bucket without running the model.
func TestSharedTierServesASecondInstance(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	a, innerA := sharedCache(t, ns, "emb", DefaultBytes, nil)
	b, innerB := sharedCache(t, ns, "emb", DefaultBytes, nil)
	in := texts("shared", 40)

	fromA := embed(t, a, in...)
	testenv.WaitFor(t, 10*time.Second, "A's writes to the bucket", func() bool { return a.Stats().Shared.Puts == int64(len(in)) })
	fromB := embed(t, b, in...)
	if n := innerB.calls.Load(); n != 0 {
		t.Fatalf("B ran the model %d times, want 0: every text is in the bucket", n)
	}
	sameBits(t, "B's hits from the bucket vs A's misses", fromA, fromB)
	if st := b.Stats().Shared; st.Hits != int64(len(in)) || st.Misses != 0 {
		t.Fatalf("B's shared stats %+v: want %d hits", st, len(in))
	}
	// B now holds them locally too.
	embed(t, b, in...)
	if st := b.Stats(); st.Local.Hits != int64(len(in)) || st.Shared.Hits != int64(len(in)) {
		t.Fatalf("B's stats %+v: the second call should be local hits only", st)
	}
	if innerA.calls.Load() != 1 {
		t.Fatalf("A ran the model %d times, want 1", innerA.calls.Load())
	}

	// The other model version shares nothing, even in the same bucket.
	v2 := &counting{Embedder: realModel(t, "2")}
	c2 := newCache(t, Config{Inner: v2, Shared: &SharedConfig{NATS: testenv.Connect(t, ns), Bucket: "emb"}})
	testenv.WaitFor(t, 10*time.Second, "the shared bucket to be bound", func() bool { return c2.Stats().Shared.Ready })
	embed(t, c2, in[:3]...)
	if v2.texts.Load() != 3 || c2.Stats().Shared.Hits != 0 {
		t.Fatalf("version 2 took %d texts from the bucket of version 1", 3-v2.texts.Load())
	}
}

// Entries leave the bucket after the TTL; the next lookup is a miss.
func TestSharedTTLExpiry(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	ttl := func(s *SharedConfig) { s.TTL = time.Second }
	a, _ := sharedCache(t, ns, "short", 0, ttl)
	in := []string{"a paddle board"}
	embed(t, a, in...)
	testenv.WaitFor(t, 10*time.Second, "the write to the bucket", func() bool { return a.Stats().Shared.Puts == 1 })

	js, err := jetstream.New(testenv.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), "short")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(context.Background()); err != nil || st.TTL() != time.Second {
		t.Fatalf("bucket status %v, %v: want TTL 1s", st, err)
	}
	k := sharedKey(realModel(t, "1").Info(), in[0])
	if _, err := kv.Get(context.Background(), k); err != nil {
		t.Fatalf("fresh entry: %v", err)
	}
	testenv.WaitFor(t, 20*time.Second, "the entry to expire", func() bool {
		_, err := kv.Get(context.Background(), k)
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
	b, innerB := sharedCache(t, ns, "short", 0, ttl)
	embed(t, b, in...)
	if innerB.calls.Load() != 1 || b.Stats().Shared.Misses != 1 {
		t.Fatalf("after expiry: %d model calls, stats %+v; want a miss and one model call", innerB.calls.Load(), b.Stats().Shared)
	}
}

// Whatever happens to the bucket, requests are answered from the model.
func TestSharedTierFailuresNeverFailRequests(t *testing.T) {
	t.Run("no JetStream", func(t *testing.T) {
		ns := testenv.StartNATS(t) // JetStream off: the bucket cannot be made
		inner := &counting{Embedder: realModel(t, "1")}
		c := newCache(t, Config{Inner: inner, Bytes: DefaultBytes, Shared: &SharedConfig{NATS: testenv.Connect(t, ns)}})
		testenv.WaitFor(t, 10*time.Second, "a failed bind", func() bool { return c.Stats().Shared.Errors["bind"] > 0 })
		embed(t, c, "a bike helmet")
		embed(t, c, "a bike helmet")
		if st := c.Stats(); inner.calls.Load() != 1 || st.Local.Hits != 1 || st.Shared.Ready || st.Shared.Skipped != 1 {
			t.Fatalf("stats %+v, %d model calls: want the local tier working and the shared one skipped", st, inner.calls.Load())
		}
	})
	t.Run("bucket deleted", func(t *testing.T) {
		ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
		c, inner := sharedCache(t, ns, "gone", 0, nil)
		js, err := jetstream.New(testenv.Connect(t, ns))
		if err != nil {
			t.Fatal(err)
		}
		if err := js.DeleteKeyValue(context.Background(), "gone"); err != nil {
			t.Fatal(err)
		}
		embed(t, c, texts("gone", 3)...)
		if st := c.Stats().Shared; st.Errors["get"] == 0 || inner.texts.Load() != 3 {
			t.Fatalf("stats %+v, %d texts embedded: want get errors counted and the texts embedded", st, inner.texts.Load())
		}
	})
	t.Run("server down", func(t *testing.T) {
		ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
		c, inner := sharedCache(t, ns, "down", DefaultBytes, nil)
		ns.Shutdown()
		ns.WaitForShutdown()
		start := time.Now()
		embed(t, c, texts("down", 3)...)
		first := time.Since(start)
		// The first lookups may fail (the client has not yet seen the
		// server go); from then on the bucket is left alone.
		if st := c.Stats().Shared; st.Skipped+st.Errors["get"] != 3 || inner.texts.Load() != 3 {
			t.Fatalf("stats %+v, %d texts embedded: want 3 lookups failed or skipped and the texts embedded", st, inner.texts.Load())
		}
		start = time.Now()
		embed(t, c, texts("down-again", 3)...)
		if st := c.Stats().Shared; st.Skipped < 3 || inner.texts.Load() != 6 {
			t.Fatalf("stats %+v, %d texts embedded: want the next lookups skipped and the texts embedded", st, inner.texts.Load())
		}
		t.Logf("with NATS down: first request %v, second %v", first, time.Since(start))
		if first > 2*DefaultSharedTimeout+time.Second {
			t.Fatalf("the first request took %v with NATS down", first)
		}
	})
}

func TestSharedConfigErrors(t *testing.T) {
	ns := testenv.StartNATS(t)
	_, err := New(Config{Inner: realModel(t, "1"), Shared: &SharedConfig{NATS: testenv.Connect(t, ns), Bucket: "a.b"}})
	if err == nil || !strings.Contains(err.Error(), `bucket name "a.b"`) {
		t.Fatalf("err = %v, want one naming the bucket", err)
	}
}

func TestValueCodec(t *testing.T) {
	info := realModel(t, "1").Info()
	vec := embed(t, realModel(t, "1"), "a tent")[0]
	b, err := encodeValue(info, vec, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 1+1+len(info.Name)+1+len(info.Version)+4+4+4*len(vec) {
		t.Fatalf("value of %d bytes", len(b))
	}
	got, tokens, err := decodeValue(b, info)
	if err != nil {
		t.Fatal(err)
	}
	if tokens != 4 {
		t.Fatalf("decoded %d tokens, want 4", tokens)
	}
	sameBits(t, "decoded", [][]float32{vec}, [][]float32{got})
	other := info
	other.Version = "2"
	for name, bad := range map[string][]byte{
		"truncated": b[:len(b)-1], "empty": nil, "format": append([]byte{9}, b[1:]...),
	} {
		if _, _, err := decodeValue(bad, info); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, _, err := decodeValue(b, other); err == nil {
		t.Error("a value of version 1 decoded for version 2")
	}
}

// Every answer carries each text's token count, the model's, whichever tier
// it came from; the timing is the inner call's, zero when nothing reached it.
func TestTokenCountsFromEveryTier(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithJetStream(t, ""))
	a, _ := sharedCache(t, ns, "tokens", DefaultBytes, nil)
	b, innerB := sharedCache(t, ns, "tokens", DefaultBytes, nil)
	in := []string{"a tent", "a sleeping bag for minus ten degrees", "a tent"}
	want, err := realModel(t, "1").CountTokens(in)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, res embedding.Result, err error, inner bool) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Tokens, want) {
			t.Fatalf("%s: tokens %v, want %v", what, res.Tokens, want)
		}
		if got := res.Timing.Inference > 0; got != inner {
			t.Fatalf("%s: timing %+v; want inference time only when the model ran (%v)", what, res.Timing, inner)
		}
	}
	res, err := a.Embed(context.Background(), in)
	check("miss", res, err, true)
	res, err = a.Embed(context.Background(), in)
	check("local hit", res, err, false)
	testenv.WaitFor(t, 10*time.Second, "A's writes to the bucket", func() bool { return a.Stats().Shared.Puts == 2 })
	res, err = b.Embed(context.Background(), in)
	check("shared hit", res, err, false)
	if n := innerB.calls.Load(); n != 0 {
		t.Fatalf("B ran the model %d times, want 0", n)
	}
}
