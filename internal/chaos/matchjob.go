package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// The match job a scenario with MatchJob runs across its fault: the feed's
// items are reworded copies of the shop's products (feed item fNNN is shop
// product sNNN), matched top-1, in chunks of matchChunkSize source products
// so that several chunks are in flight when the processor dies.
const (
	matchShop      = "chaos-shop"
	matchFeed      = "chaos-feed"
	matchItems     = 300
	matchChunkSize = 2
	// jobAckWait is the processors' SIMMATCH_JOB_ACK_WAIT: a chunk held
	// by a killed processor goes to another after it (30 s by default).
	jobAckWait = 2 * time.Second
	// MatchMinPlantedFirst is the share of feed items whose planted shop
	// product must come first.
	MatchMinPlantedFirst = 0.95
)

// MatchJobStats is what the match job run across a fault found.
type MatchJobStats struct {
	// ID is the job's id.
	ID string
	// Items is how many feed items the job matched (its source catalog).
	Items int
	// DoneAtKill and TotalAtKill are the job's progress (source products)
	// when the processor was killed.
	DoneAtKill, TotalAtKill int
	// Chunks is how many chunks the job was planned in.
	Chunks int
	// Rows is how many result lines the job answered; Missing and Doubled
	// count the feed items with no line and with more than one.
	Rows, Missing, Doubled int
	// PlantedFirst is how many feed items had their planted shop product first.
	PlantedFirst int
	// Redelivered is how many job chunks the processors received again
	// (simmatch_jobs_chunks_redelivered_total, summed over the processors
	// running at the end; -1: unknown).
	Redelivered int
	// Duration is from the submission to the first status seen done,
	// polled once the killed processor is back (an upper bound).
	Duration time.Duration
}

// PlantedFirstRate is PlantedFirst over Items.
func (m *MatchJobStats) PlantedFirstRate() float64 {
	if m == nil || m.Items == 0 {
		return 0
	}
	return float64(m.PlantedFirst) / float64(m.Items)
}

// String is the job's line in the table's notes.
func (m *MatchJobStats) String() string {
	return fmt.Sprintf("match job: %d rows for %d feed items (%d missing, %d doubled), %d chunks, killed at %d/%d, %d chunks redelivered, planted first %.1f%%, done within %v",
		m.Rows, m.Items, m.Missing, m.Doubled, m.Chunks, m.DoneAtKill, m.TotalAtKill, m.Redelivered, 100*m.PlantedFirstRate(), m.Duration.Round(10*time.Millisecond))
}

var (
	matchBrands = []string{"Acme", "Boltline", "Corvex", "Dunmore", "Elkwood", "Fenwick", "Garrison", "Holloway", "Ironbark", "Jasperton"}
	matchColors = []string{"red", "blue", "green", "black", "white", "yellow", "orange", "purple", "grey", "brown", "pink", "silver"}
	// matchTypes are product types: the shop's words, the feed's.
	matchTypes = [][2]string{
		{"cordless drill", "battery powered drill"}, {"electric kettle", "kettle for boiling water"},
		{"toaster", "bread toaster"}, {"hair dryer", "hairdryer"}, {"vacuum cleaner", "vacuum for floors"},
		{"desk lamp", "lamp for the desk"}, {"wireless mouse", "cordless computer mouse"},
		{"mechanical keyboard", "keyboard with mechanical keys"}, {"bluetooth speaker", "wireless speaker"},
		{"running shoes", "shoes for running"}, {"backpack", "rucksack"}, {"yoga mat", "mat for yoga"},
		{"frying pan", "skillet"}, {"coffee grinder", "grinder for coffee beans"}, {"electric toothbrush", "powered toothbrush"},
		{"garden hose", "hose for the garden"}, {"office chair", "chair for the office"}, {"wall clock", "clock for the wall"},
		{"rain jacket", "waterproof jacket"}, {"water bottle", "bottle for drinking water"}, {"camping tent", "tent for camping"},
		{"bicycle helmet", "helmet for cycling"}, {"air fryer", "hot air fryer"}, {"blender", "kitchen blender"},
		{"electric heater", "space heater"}, {"smartwatch", "smart watch"}, {"headphones", "over-ear headphones"},
		{"power bank", "portable charger battery"}, {"hedge trimmer", "trimmer for hedges"}, {"pressure washer", "high pressure cleaner"},
	}
	// matchFeatures are features: the shop's words, the feed's.
	matchFeatures = [][2]string{
		{"with carrying case", "carrying case included"}, {"two year warranty", "2-year guarantee"},
		{"with USB-C charging", "charges over USB-C"}, {"energy saving", "low energy use"},
		{"compact size", "small and compact"}, {"with LED display", "has an LED screen"},
		{"extra long cable", "long power cord"}, {"dishwasher safe parts", "parts go in the dishwasher"},
		{"quiet operation", "runs quietly"}, {"with wall mount", "wall mounting kit included"},
		{"stainless steel body", "steel housing"}, {"rechargeable battery", "battery can be recharged"},
		{"gift box packaging", "comes in a gift box"},
	}
)

// matchCatalogs are the shop's products and the feed's items: feed item i
// is shop product i in other words (brand, type, colour and feature kept;
// every type has ten products, one per brand).
func matchCatalogs() (shop, feed []contracts.Product) {
	for i := range matchItems {
		brand := matchBrands[i%len(matchBrands)]
		typ := matchTypes[(i/len(matchBrands))%len(matchTypes)]
		color := matchColors[(i*7)%len(matchColors)]
		feat := matchFeatures[(i*5)%len(matchFeatures)]
		shop = append(shop, contracts.Product{ID: fmt.Sprintf("s%03d", i),
			Description: fmt.Sprintf("%s %s, %s, %s", brand, typ[0], color, feat[0])})
		var d string
		switch i % 3 {
		case 0:
			d = fmt.Sprintf("%s %s from %s, %s", strings.ToUpper(color[:1])+color[1:], typ[1], brand, feat[1])
		case 1:
			d = fmt.Sprintf("%s %s in %s (%s)", brand, typ[1], color, feat[1])
		default:
			d = fmt.Sprintf("%s%s: %s %s by %s", strings.ToUpper(feat[1][:1]), feat[1][1:], color, typ[1], brand)
		}
		feed = append(feed, contracts.Product{ID: fmt.Sprintf("f%03d", i), Description: d})
	}
	return shop, feed
}

// fillMatchCatalogs upserts the match job's two catalogs through the bridge
// and waits until both are searchable (storeCatalog).
func (e *env) fillMatchCatalogs() error {
	shop, feed := matchCatalogs()
	for _, c := range []struct {
		name     string
		products []contracts.Product
	}{{matchShop, shop}, {matchFeed, feed}} {
		if err := e.storeCatalog(c.name, c.products, 60*time.Second, func(i int) []byte {
			q, _ := json.Marshal(map[string]any{"query": []string{fmt.Sprintf("red drill %d", i)}, "top_k": 1})
			return q
		}); err != nil {
			return err
		}
	}
	return nil
}

// call sends a request to the bridge and returns its status and up to
// 64 KiB of its body (0 and the error on a transport error).
func (e *env) call(method, path string, body []byte, timeout time.Duration) (int, string) {
	c := &http.Client{Timeout: timeout}
	req, err := http.NewRequest(method, e.bridgeURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b)
}

func (e *env) jobStatus(id string) (contracts.JobStatus, error) {
	var st contracts.JobStatus
	code, msg := e.call(http.MethodGet, "/v1/jobs/"+id, nil, 5*time.Second)
	if code != http.StatusOK {
		return st, fmt.Errorf("chaos: GET /v1/jobs/%s: %d %s", id, code, msg)
	}
	return st, json.Unmarshal([]byte(msg), &st)
}

// submitMatchJob submits the match job.
func (e *env) submitMatchJob() (*MatchJobStats, error) {
	body, _ := json.Marshal(map[string]any{"match": map[string]any{"source": matchFeed, "target": matchShop, "top_k": 1}})
	code, msg := e.call(http.MethodPost, "/v1/jobs", body, 10*time.Second)
	if code != http.StatusAccepted && code != http.StatusOK {
		return nil, fmt.Errorf("chaos: submit the match job: %d %s", code, msg)
	}
	var st contracts.JobStatus
	if err := json.Unmarshal([]byte(msg), &st); err != nil || st.ID == "" {
		return nil, fmt.Errorf("chaos: submit the match job: answer %q: %v", msg, err)
	}
	return &MatchJobStats{ID: st.ID, Items: matchItems, Redelivered: -1}, nil
}

// waitMidJob polls the job until some but not all of its source products
// are done, and returns its progress then; a job that is done (or failed)
// first is an error: the kill would not land in the middle of it.
func (e *env) waitMidJob(ctx context.Context, m *MatchJobStats) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		mid, st, err := e.midJob(m)
		if err != nil || mid {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: the match job never got under way (%d/%d): %w", st.Done, st.Total, ctx.Err())
		case <-tick.C:
		}
	}
}

// progressAtKill records the job's progress just before the kill: it must
// still be part done.
func (e *env) progressAtKill(m *MatchJobStats) error {
	mid, st, err := e.midJob(m)
	if err == nil && !mid {
		err = fmt.Errorf("chaos: the match job was not under way at the kill (%d/%d)", st.Done, st.Total)
	}
	return err
}

// midJob reads the job's status and records its progress when it is part
// done; an error when it is already over.
func (e *env) midJob(m *MatchJobStats) (bool, contracts.JobStatus, error) {
	st, err := e.jobStatus(m.ID)
	switch {
	case err != nil:
		return false, st, err
	case st.State != contracts.JobRunning && st.State != contracts.JobQueued:
		return false, st, fmt.Errorf("chaos: the match job was %s (%d/%d) before the kill: make it longer (more items, smaller chunks)", st.State, st.Done, st.Total)
	case st.Total > 0 && st.Done >= st.Total:
		return false, st, fmt.Errorf("chaos: the match job finished (%d/%d) before the kill: make it longer (more items, smaller chunks)", st.Done, st.Total)
	case st.Total > 0 && st.Done > 0:
		m.DoneAtKill, m.TotalAtKill, m.Chunks = st.Done, st.Total, st.Chunks
		return true, st, nil
	}
	return false, st, nil
}

// finishMatchJob waits for the job to be done, reads its results and
// checks them: one line per feed item, the planted product first.
func (e *env) finishMatchJob(ctx context.Context, m *MatchJobStats, submitted time.Time) error {
	var st contracts.JobStatus
	err := waitUntil(60*time.Second, "the match job to be done", func() bool {
		var err error
		st, err = e.jobStatus(m.ID)
		return ctx.Err() != nil || (err == nil && st.State != contracts.JobRunning && st.State != contracts.JobQueued)
	})
	if err != nil {
		return fmt.Errorf("%w (%d/%d)", err, st.Done, st.Total)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	m.Duration, m.Chunks = time.Since(submitted), st.Chunks
	if st.State != contracts.JobDone {
		return fmt.Errorf("chaos: the match job ended %s: %s", st.State, st.Error)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(e.bridgeURL + "/v1/jobs/" + m.ID + "/results")
	if err != nil {
		return fmt.Errorf("chaos: read the match job's results: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("chaos: read the match job's results: %s %s", resp.Status, b)
	}
	seen := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r contracts.MatchResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("chaos: a result line of the match job: %w", err)
		}
		m.Rows++
		seen[r.SourceID]++
		if len(r.Matches) > 0 && r.Matches[0].ID == "s"+strings.TrimPrefix(r.SourceID, "f") && seen[r.SourceID] == 1 {
			m.PlantedFirst++
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("chaos: read the match job's results: %w", err)
	}
	_, feed := matchCatalogs()
	for _, p := range feed {
		switch n := seen[p.ID]; {
		case n == 0:
			m.Missing++
		case n > 1:
			m.Doubled++
		}
	}
	redelivered := 0
	for _, a := range e.procAddrs {
		n := sumCounter("http://"+a+"/metrics", "simmatch_jobs_chunks_redelivered_total")
		if n < 0 {
			redelivered = -1
			break
		}
		redelivered += int(n)
	}
	m.Redelivered = redelivered
	var problems []string
	if m.Missing > 0 || m.Doubled > 0 || m.Rows != len(feed) {
		problems = append(problems, fmt.Sprintf("%d rows for %d feed items, %d missing, %d doubled", m.Rows, len(feed), m.Missing, m.Doubled))
	}
	if r := m.PlantedFirstRate(); r < MatchMinPlantedFirst {
		problems = append(problems, fmt.Sprintf("planted product first for %.1f%% of the feed, want >= %.0f%%", 100*r, 100*MatchMinPlantedFirst))
	}
	if len(problems) > 0 {
		return errors.New("chaos: match job: " + strings.Join(problems, "; "))
	}
	return nil
}
