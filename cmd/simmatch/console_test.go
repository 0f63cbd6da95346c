package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/simmatch/simmatch/bridge"
)

// consoleScreenshotEnv, set to 1, makes TestConsoleInBrowser write the
// search view's screenshot to docs/console.png.
const consoleScreenshotEnv = "SIMMATCH_CONSOLE_SCREENSHOT"

// browser drives one headless chromium tab for a test.
type browser struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	bad []string // exceptions and CSP violations the page reported
}

// startBrowser starts $SIMMATCH_CHROMIUM, else the chromium on PATH
// (deploy/scripts/install-chromium.sh installs Debian's; `make test` runs it),
// headless, with a 1200x800 viewport.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := os.Getenv("SIMMATCH_CHROMIUM")
	if path == "" {
		var err error
		if path, err = exec.LookPath("chromium"); err != nil {
			t.Fatalf("the console test needs chromium on PATH (or SIMMATCH_CHROMIUM): run deploy/scripts/install-chromium.sh (as root): %v", err)
		}
	}
	opts := slices.Concat(chromedp.DefaultExecAllocatorOptions[:], []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1200, 800)})
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	b.do(chromedp.EmulateViewport(1200, 800))
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				b.mu.Lock()
				b.bad = append(b.bad, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// js evaluates expr in the page.
func (b *browser) js(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("browser: %s: %v", expr, err)
	}
	return v
}

// text is the text of the first element matching the CSS selector sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return b.js(fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? "").trim()`, sel))
}

// wait polls the JavaScript condition cond until it is true (what names it
// in the failure, with the page's visible error boxes).
func (b *browser) wait(what, cond string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		errs, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](
			`[...document.querySelectorAll('.error:not([hidden])')].map(e => e.textContent).join(' | ')`))
		b.t.Fatalf("browser: waiting for %s (%s): %v; errors shown: %q", what, cond, err, errs)
	}
}

// set gives the form field sel the value v and tells the page.
func (b *browser) set(sel, v string) {
	b.t.Helper()
	b.js(fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event('change')); return ''; })()`, sel, v))
}

// problems fails the test with what the page reported as broken.
func (b *browser) problems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bad) > 0 {
		b.t.Fatalf("the page reported %d problems:\n%s", len(b.bad), strings.Join(b.bad, "\n"))
	}
}

// keyedDo sends an API request with key.
func keyedDo(t *testing.T, key, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The web console in a real browser (headless chromium) against the real
// all-in-one with API keys: a wrong key shows a readable 401; with the right
// one, each view shows the service's data: models, processors and live
// traffic, catalogs and a hybrid search with explain, filters and facets, a
// JSON-lines file dropped on the import zone, a job and its results file,
// and the /predict heat map.
func TestConsoleInBrowser(t *testing.T) {
	const key, slowKey = "sk-console-3b7e1f9a2c4d6e8f", "sk-slow-9d8c7b6a5f4e3d2c"
	// slow may send one request, then is rate limited (a readable 429).
	base, stop := startKeyed(t, "console", key, "*", "slow "+bridge.HashKey(slowKey)+" predict rate=0.001 burst=1")
	defer stop()
	if status, body := keyedDo(t, key, "POST", base+"/v1/catalogs/tools/products", searchProducts); status != 200 {
		t.Fatalf("upsert: %d %s", status, body)
	}

	b := startBrowser(t)
	start := time.Now()

	// Without a key, then with a wrong one: readable 401s.
	b.do(chromedp.Navigate(base + "/console"))
	b.wait("the page", `document.body.dataset.ready === 'true'`)
	b.wait("the 401 without a key", `document.querySelector('#view-models .error').textContent.includes('Not authorized (401)')`)
	b.do(chromedp.SendKeys(chromedp.CSS("#key"), "sk-wrong"), chromedp.Click(chromedp.CSS(`#key-form button[type=submit]`)))
	b.wait("the 401 of a wrong key", `document.querySelector('#view-models .error').textContent.includes('the API key is not valid')`)
	if msg := b.text("#view-models .error"); !strings.HasPrefix(msg, "Not authorized (401): the API key is not valid. Enter a valid API key") {
		t.Errorf("wrong key: the page says %q", msg)
	}

	// Models, processors and the live traffic.
	b.do(chromedp.SendKeys(chromedp.CSS("#key"), key), chromedp.Click(chromedp.CSS(`#key-form button[type=submit]`)))
	b.wait("the models table", `document.querySelector('#models-table').textContent.includes('all-MiniLM-L6-v2')`)
	b.wait("the processors", `document.querySelector('#processors').textContent.includes('serving')`)
	if got := b.js(`sessionStorage.getItem('simmatch.apiKey')`); got != key {
		t.Errorf("sessionStorage key %q", got)
	}
	if got := b.js(`localStorage.length + ''`); got != "0" {
		t.Errorf("localStorage holds %s items; the key belongs in sessionStorage only", got)
	}
	if b.js(`document.querySelector('#view-models .error').hidden + ''`) != "true" {
		t.Errorf("the 401 is still shown: %q", b.text("#view-models .error"))
	}
	b.wait("live traffic", `document.querySelector('#traffic').dataset.state === 'live' && document.querySelector('#traffic').textContent.includes('/v1/models')`)
	t.Logf("live traffic:\n%s", b.js(`[...document.querySelectorAll('#traffic tr')].map(r => [...r.cells].map(c => c.textContent).join(' | ')).join('\n')`))

	// Catalogs and a hybrid search with explain and facets.
	b.do(chromedp.Click(chromedp.CSS(`a[data-view=catalogs]`)))
	b.wait("the catalog list", `document.querySelector('#catalogs-table tr[data-catalog=tools] .products')?.textContent === '6'`)
	b.set("#search-catalog", "tools")
	b.set("#search-mode", "hybrid")
	b.set("#search-topk", "5")
	b.set("#search-facets", "brand, category")
	b.do(chromedp.Click(chromedp.CSS("#search-explain")), chromedp.Click(chromedp.CSS("#search-count")),
		chromedp.SendKeys(chromedp.CSS("#search-query"), "DCD771C2 drill"), chromedp.Click(chromedp.CSS(`#search-form button[type=submit]`)))
	b.wait("the search results", `document.querySelector('#search-results').dataset.state === 'done'`)
	first := b.text("#search-results tbody tr:first-child")
	if !strings.Contains(first, "d1") || !strings.Contains(first, "DeWalt DCD771C2") || !strings.Contains(first, "brand: DeWalt") ||
		!strings.Contains(first, "(#1)") || !strings.Contains(first, "keyword") {
		t.Errorf("first match: %q, want d1 with its metadata and keyword rank #1", first)
	}
	if rows := b.js(`document.querySelectorAll('#search-results tbody tr').length + ''`); rows != "5" {
		t.Errorf("%s matches shown, want 5", rows)
	}
	if s := b.text("#search-results .summary"); !strings.Contains(s, "of 6") || !strings.Contains(s, "hybrid") {
		t.Errorf("summary %q, want the total (6) and the mode", s)
	}
	if f := b.text("#search-results .result"); !strings.Contains(f, "category:") || !strings.Contains(f, "drills 4") {
		t.Errorf("facets not shown: %q", f)
	}
	if os.Getenv(consoleScreenshotEnv) == "1" {
		png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote docs/console.png (%d bytes)", len(png))
	}

	// Filters: two rows on one key make an object of operators; a bad one is a readable 422.
	b.do(chromedp.Click(chromedp.CSS("#filter-add")), chromedp.Click(chromedp.CSS("#filter-add")))
	b.set("#filters .filter:nth-child(1) .f-key", "brand")
	b.set("#filters .filter:nth-child(1) .f-op", "$in")
	b.set("#filters .filter:nth-child(1) .f-value", "Bosch, Makita")
	b.set("#filters .filter:nth-child(2) .f-key", "price")
	b.set("#filters .filter:nth-child(2) .f-op", "$gte")
	b.set("#filters .filter:nth-child(2) .f-value", "170")
	b.do(chromedp.Click(chromedp.CSS(`#search-form button[type=submit]`)))
	b.wait("the filtered results", `document.querySelector('#search-results').dataset.state === 'done'`)
	if ids := b.js(`[...document.querySelectorAll('#search-results td.id')].map(e => e.textContent).join(',')`); ids != "d4" {
		t.Errorf("brand in (Bosch, Makita) and price >= 170: %q, want d4", ids)
	}
	b.set("#filters .filter:nth-child(2) .f-value", "cheap")
	b.do(chromedp.Click(chromedp.CSS(`#search-form button[type=submit]`)))
	b.wait("the 422", `document.querySelector('#search-results').dataset.state === 'error'`)
	if msg := b.text("#search-error"); !strings.Contains(msg, `Invalid request (422) in field "filter.price.$gte"`) {
		t.Errorf("bad filter: the page says %q", msg)
	}

	// Import: a JSON-lines file dropped on the zone.
	b.do(chromedp.Click(chromedp.CSS(`a[data-view=import]`)))
	b.set("#import-catalog", "dropped")
	b.set("#import-batch", "2")
	b.js(`(() => {
		const lines = [
			{id: "p1", description: "Cordless leaf blower with two batteries", metadata: {brand: "Ryobi"}},
			{id: "p2", description: "Electric hedge trimmer, 24-inch blade"},
			{id: "p3", description: "Garden hose reel with 100 ft hose", metadata: {brand: "Suncast", category: "garden"}},
		].map(p => JSON.stringify(p)).join('\n') + '\n';
		const dt = new DataTransfer();
		dt.items.add(new File([lines], 'garden.jsonl', {type: 'application/x-ndjson'}));
		document.querySelector('#dropzone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
		return '';
	})()`)
	b.wait("the import", `document.querySelector('#view-import').dataset.state === 'done'`)
	if s := b.text("#import-status"); !strings.Contains(s, "Imported 3 products from garden.jsonl into dropped; the catalog holds 3 products") {
		t.Errorf("import status %q", s)
	}
	if v := b.js(`document.querySelector('#import-progress').value + '/' + document.querySelector('#import-progress').max`); v != "3/3" {
		t.Errorf("progress bar %s, want 3/3", v)
	}
	b.do(chromedp.Click(chromedp.CSS(`a[data-view=catalogs]`)))
	b.wait("the imported catalog", `document.querySelector('#catalogs-table tr[data-catalog=dropped] .products')?.textContent === '3'`)

	// Jobs: submit, follow to done, download the results.
	b.do(chromedp.Click(chromedp.CSS(`a[data-view=jobs]`)))
	b.set("#job-queries", "What can I use to cut wood?\nSomething to drive nails")
	b.set("#job-descriptions", "Heavy-duty claw hammer.\nCircular saw with laser guide.")
	b.do(chromedp.Click(chromedp.CSS(`#job-form button[type=submit]`)))
	b.wait("the job to finish", `document.querySelector('#jobs-table tbody tr')?.dataset.state === 'done'`)
	if p := b.text("#jobs-table tbody tr"); !strings.Contains(p, "2 / 2") {
		t.Errorf("job row %q, want 2 / 2 done", p)
	}
	b.do(chromedp.Click(chromedp.CSS(`#jobs-table tbody tr button`)))
	b.wait("the results link", `document.querySelector('#jobs-table a[download]') !== null`)
	if l := b.text("#jobs-table a[download]"); !strings.Contains(l, "(2 lines") {
		t.Errorf("results link %q, want 2 lines", l)
	}
	if h := b.js(`document.querySelector('#jobs-table a[download]').href`); !strings.HasPrefix(h, "blob:") {
		t.Errorf("results link href %q, want a blob: URL", h)
	}

	// The /predict playground: 2 queries x 3 descriptions; the saw is the best match for wood.
	b.do(chromedp.Click(chromedp.CSS(`a[data-view=predict]`)), chromedp.Click(chromedp.CSS("#predict-run")))
	b.wait("the heat map", `document.querySelector('#heatmap').dataset.state === 'done'`)
	if n := b.js(`document.querySelectorAll('#heatmap td.cell').length + ''`); n != "6" {
		t.Errorf("%s heat-map cells, want 6", n)
	}
	var best []string
	if err := json.Unmarshal([]byte(b.js(`JSON.stringify([...document.querySelectorAll('#heatmap td.best')].map(c => c.dataset.q + ':' + c.dataset.d))`)), &best); err != nil {
		t.Fatal(err)
	}
	if strings.Join(best, " ") != "0:1 1:0" {
		t.Errorf("best cells %v, want the saw (d2) for wood and the hammer (d1) for nails", best)
	}

	// The page's own parsers: CSV with quotes, a newline in a field, metadata
	// columns and a JSON metadata column; a quantile between two buckets.
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(async () => {
		const { parseProducts } = await import('/console/parse.js');
		const { quantile } = await import('/console/prom.js');
		const rows = parseProducts('x.csv', 'id,description,brand,metadata\r\na1,"Saw, ""circular""\nwith guide",Bosch,"{""color"": ""blue""}"\na2,Hammer,,\n');
		return JSON.stringify({ rows, q: quantile(0.75, [[0.1, 2], [0.2, 4], [Infinity, 4]]) });
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"rows":[{"product":{"id":"a1","description":"Saw, \"circular\"\nwith guide","metadata":{"brand":"Bosch","color":"blue"}},"line":2},` +
		`{"product":{"id":"a2","description":"Hammer"},"line":4}],"q":0.15000000000000002}`
	if got != want {
		t.Errorf("parsers:\n got %s\nwant %s", got, want)
	}

	// A key past its rate limit: a readable 429 in the models view.
	b.do(chromedp.Click(chromedp.CSS(`a[data-view=models]`)))
	b.set("#key", "")
	b.do(chromedp.SendKeys(chromedp.CSS("#key"), slowKey), chromedp.Click(chromedp.CSS(`#key-form button[type=submit]`)))
	b.wait("the 429", `[...document.querySelectorAll('#view-models .error, #processors-error')].some(e => e.textContent.includes('Rate limit reached (429 rate_limited)'))`)

	b.problems()
	t.Logf("browser part took %v", time.Since(start).Round(time.Millisecond))
}
