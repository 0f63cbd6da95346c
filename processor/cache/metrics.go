package cache

import "github.com/prometheus/client_golang/prometheus"

// Stats are the cache's counters, as reported in the processor's $SRV.STATS
// (endpoint data, under "cache") and as simmatch_cache_* metrics.
type Stats struct {
	Local  LocalStats   `json:"local"`
	Shared *SharedStats `json:"shared,omitempty"`
}

// LocalStats count the in-process tier. Misses include texts another
// request was already computing (waited for, not computed again).
type LocalStats struct {
	Hits          int64 `json:"hits"`
	Misses        int64 `json:"misses"`
	Evictions     int64 `json:"evictions"`
	Bytes         int64 `json:"bytes"`
	Entries       int64 `json:"entries"`
	CapacityBytes int64 `json:"capacity_bytes"`
}

// SharedStats count the JetStream key-value tier. Bytes and Entries are the
// bucket's, as last read (every 10 s at most).
type SharedStats struct {
	Bucket string `json:"bucket"`
	// Ready is whether the bucket is bound and usable now.
	Ready   bool  `json:"ready"`
	Hits    int64 `json:"hits"`
	Misses  int64 `json:"misses"`
	Skipped int64 `json:"skipped"` // lookups not tried: the bucket was unavailable
	Puts    int64 `json:"puts"`
	Dropped int64 `json:"dropped"` // writes not tried: too many in progress, or the bucket failing
	// Errors by operation: get, put, bind.
	Errors  map[string]int64 `json:"errors"`
	Bytes   uint64           `json:"bytes"`
	Entries uint64           `json:"entries"`
}

// Stats returns the cache's counters now.
func (c *Cache) Stats() Stats {
	st := Stats{Local: c.local.stats()}
	if s := c.shared; s != nil {
		_, ready := s.available()
		bytes, entries := s.bucketStatus()
		st.Shared = &SharedStats{
			Bucket: s.cfg.Bucket, Ready: ready,
			Hits: s.hits.Load(), Misses: s.misses.Load(), Skipped: s.skipped.Load(),
			Puts: s.puts.Load(), Dropped: s.dropped.Load(),
			Errors: map[string]int64{"get": s.getErrs.Load(), "put": s.putErrs.Load(), "bind": s.bindErrs.Load()},
			Bytes:  bytes, Entries: entries,
		}
	}
	return st
}

var (
	descHits = prometheus.NewDesc("simmatch_cache_hits_total",
		"Texts found in the embedding cache, by tier (local: this process; shared: the JetStream bucket).", []string{"tier"}, nil)
	descMisses = prometheus.NewDesc("simmatch_cache_misses_total",
		"Texts looked up and not found, by tier.", []string{"tier"}, nil)
	descEvictions = prometheus.NewDesc("simmatch_cache_evictions_total",
		"Entries evicted from the in-process tier to stay within SIMMATCH_CACHE_BYTES.", []string{"tier"}, nil)
	descBytes = prometheus.NewDesc("simmatch_cache_bytes",
		"Bytes held, by tier (shared: the bucket's size as last read).", []string{"tier"}, nil)
	descEntries = prometheus.NewDesc("simmatch_cache_entries",
		"Embeddings held, by tier (shared: the bucket's as last read).", []string{"tier"}, nil)
	descCapacity = prometheus.NewDesc("simmatch_cache_capacity_bytes",
		"The in-process tier's budget (SIMMATCH_CACHE_BYTES).", []string{"tier"}, nil)
	descErrors = prometheus.NewDesc("simmatch_cache_shared_errors_total",
		"Failed operations on the shared bucket, by operation (get, put, bind); requests still get answers.", []string{"op"}, nil)
	descSkipped = prometheus.NewDesc("simmatch_cache_shared_skipped_total",
		"Lookups not sent to the shared bucket because it was unavailable.", nil, nil)
	descPuts = prometheus.NewDesc("simmatch_cache_shared_puts_total",
		"Embeddings written to the shared bucket.", nil, nil)
)

// collector exports Stats at scrape time.
type collector struct{ c *Cache }

// Describe implements prometheus.Collector.
func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHits, descMisses, descEvictions, descBytes, descEntries, descCapacity, descErrors, descSkipped, descPuts} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *collector) Collect(ch chan<- prometheus.Metric) {
	st := m.c.Stats()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	l := st.Local
	counter(descHits, float64(l.Hits), "local")
	counter(descMisses, float64(l.Misses), "local")
	counter(descEvictions, float64(l.Evictions), "local")
	gauge(descBytes, float64(l.Bytes), "local")
	gauge(descEntries, float64(l.Entries), "local")
	gauge(descCapacity, float64(l.CapacityBytes), "local")
	// The shared tier's series exist (at 0) without it too, so queries and
	// panels need not special-case processors that do not share.
	s := st.Shared
	if s == nil {
		s = &SharedStats{}
	}
	counter(descHits, float64(s.Hits), "shared")
	counter(descMisses, float64(s.Misses), "shared")
	gauge(descBytes, float64(s.Bytes), "shared")
	gauge(descEntries, float64(s.Entries), "shared")
	for _, op := range []string{"get", "put", "bind"} {
		counter(descErrors, float64(s.Errors[op]), op)
	}
	counter(descSkipped, float64(s.Skipped))
	counter(descPuts, float64(s.Puts))
}
