package catalogcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/simmatch/simmatch/cmd/internal/cli"
	"github.com/simmatch/simmatch/contracts"
)

// Importer imports one file into one catalog in batches. Upserts are
// idempotent, so a run may be repeated; after each acknowledged batch it
// writes a checkpoint, from which the next run resumes.
type Importer struct {
	Client  *contracts.Client
	Catalog string
	File    string
	// Format is auto (by extension), csv or jsonl.
	Format string
	// BatchSize is the products per upsert call.
	BatchSize int
	// Timeout bounds one batch (embedding it included).
	Timeout time.Duration
	// Retries is how many times a batch is retried on a retryable error.
	Retries int
	// StatePath is the checkpoint file; default File + ".<catalog>.import-state".
	StatePath string
	// Restart ignores a checkpoint.
	Restart bool
	// Progress receives the progress bar; nil for none.
	Progress io.Writer
	// Limits and TextLimits check each record before it is sent.
	Limits     contracts.CatalogLimits
	TextLimits contracts.Limits

	afterBatch func(imported int) // test hook, after a batch is checkpointed
}

// checkpoint is where an import stopped: the first record not yet
// acknowledged, in a file of this size and modification time.
type checkpoint struct {
	Catalog  string    `json:"catalog"`
	Size     int64     `json:"size"`
	ModTime  time.Time `json:"mod_time"`
	Offset   int64     `json:"offset"`
	Line     int       `json:"line"`
	Imported int       `json:"imported"`
}

func (im *Importer) defaults() {
	if im.BatchSize <= 0 {
		im.BatchSize = 256
	}
	if im.Timeout <= 0 {
		im.Timeout = 5 * time.Minute
	}
	if im.StatePath == "" {
		im.StatePath = im.File + "." + im.stored() + ".import-state"
	}
	if im.Limits == (contracts.CatalogLimits{}) {
		im.Limits = contracts.DefaultCatalogLimits
	}
	if im.TextLimits == (contracts.Limits{}) {
		im.TextLimits = contracts.DefaultLimits
	}
}

// namespace is the client's catalog namespace (contracts.WithTenant).
func (im *Importer) namespace() contracts.CatalogNamespace {
	if im.Client == nil {
		return contracts.CatalogNamespace{}
	}
	return im.Client.Namespace()
}

// stored is the catalog's stored name: checkpoints of two tenants' catalogs
// of one name are two.
func (im *Importer) stored() string { return im.namespace().Qualify(im.Catalog) }

// Run imports the file and returns how many products this run imported.
func (im *Importer) Run(ctx context.Context) (int, error) {
	im.defaults()
	if err := im.namespace().Check("catalog", im.Catalog); err != nil {
		return 0, fmt.Errorf("-catalog: %v", contracts.AsError(err).Message)
	}
	kind, err := format(im.File, im.Format)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(im.File)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	cp := checkpoint{Catalog: im.stored(), Size: st.Size(), ModTime: st.ModTime().UTC(), Line: 1}
	if !im.Restart {
		if err := im.resume(&cp); err != nil {
			return 0, err
		}
	}
	r, err := openReader(f, kind, cp.Offset, cp.Line)
	if err != nil {
		return 0, err
	}
	p := &progress{w: im.Progress, size: st.Size(), start: time.Now(), startOffset: cp.Offset, before: cp.Imported}

	var (
		batch []contracts.Product
		lines []int
		ids   = map[string]bool{}
		last  record
		n     int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := im.send(ctx, batch, lines); err != nil {
			return err
		}
		n += len(batch)
		cp.Imported += len(batch)
		cp.Offset, cp.Line = last.end, lines[len(lines)-1]+1
		if err := im.save(cp); err != nil {
			return err
		}
		p.update(cp.Offset, cp.Imported)
		batch, lines = batch[:0], lines[:0]
		clear(ids)
		if im.afterBatch != nil {
			im.afterBatch(cp.Imported)
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			p.done()
			return n, fmt.Errorf("interrupted after %d products; run the same command again to resume: %w", cp.Imported, err)
		}
		rec, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ferr := flush(); ferr != nil {
				err = ferr
			}
			p.done()
			return n, err
		}
		if err := im.check(rec); err != nil {
			if ferr := flush(); ferr != nil {
				err = ferr
			}
			p.done()
			return n, err
		}
		if ids[rec.product.ID] { // the later line wins, as in a rerun
			if err := flush(); err != nil {
				p.done()
				return n, err
			}
		}
		batch, lines, last = append(batch, rec.product), append(lines, rec.line), rec
		ids[rec.product.ID] = true
		if len(batch) >= im.BatchSize {
			if err := flush(); err != nil {
				p.done()
				return n, err
			}
		}
	}
	if err := flush(); err != nil {
		p.done()
		return n, err
	}
	if cp.Offset < st.Size() { // blank lines after the last record
		p.update(st.Size(), cp.Imported)
	}
	p.done()
	if err := os.Remove(im.StatePath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return n, err
	}
	return n, nil
}

func (im *Importer) resume(cp *checkpoint) error {
	b, err := os.ReadFile(im.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var saved checkpoint
	if err := json.Unmarshal(b, &saved); err != nil {
		return fmt.Errorf("checkpoint %s is unreadable (%w); remove it or pass -restart", im.StatePath, err)
	}
	if saved.Catalog != cp.Catalog || saved.Size != cp.Size || !saved.ModTime.Equal(cp.ModTime) {
		return fmt.Errorf("checkpoint %s belongs to another catalog or another version of %s; pass -restart to import from the start (upserts are idempotent)", im.StatePath, im.File)
	}
	*cp = saved
	if im.Progress != nil {
		fmt.Fprintf(im.Progress, "resuming at line %d: %d products were imported before\n", cp.Line, cp.Imported)
	}
	return nil
}

func (im *Importer) save(cp checkpoint) error {
	b, _ := json.Marshal(cp)
	tmp := im.StatePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return os.Rename(tmp, im.StatePath)
}

// check validates a record as the processors would, naming its line.
func (im *Importer) check(rec record) error {
	req := contracts.UpsertRequest{Catalog: im.Catalog, Products: []contracts.Product{rec.product}}
	if err := req.Validate(im.Limits, im.TextLimits); err != nil {
		return &lineError{im.File, rec.line, errors.New(strings.TrimPrefix(contracts.AsError(err).Message, "products[0]."))}
	}
	return nil
}

var productField = regexp.MustCompile(`^products\[(\d+)\]\.?`)

// send upserts one batch, retrying what may pass later.
func (im *Importer) send(ctx context.Context, batch []contracts.Product, lines []int) error {
	wait := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, im.Timeout)
		_, err := im.Client.UpsertProducts(cctx, &contracts.UpsertRequest{Catalog: im.Catalog, Products: batch})
		cancel()
		if err == nil {
			return nil
		}
		e := contracts.AsError(err)
		if m := productField.FindStringSubmatch(e.Field); m != nil {
			if i, _ := strconv.Atoi(m[1]); i < len(lines) {
				return &lineError{im.File, lines[i], errors.New(productField.ReplaceAllString(e.Message, ""))}
			}
		}
		if !e.Code.Retryable() || attempt >= im.Retries || ctx.Err() != nil {
			return fmt.Errorf("%s:%d-%d: upsert %d products: %w", im.File, lines[0], lines[len(lines)-1], len(batch), err)
		}
		select {
		case <-time.After(wait):
			wait *= 2
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// progress draws "imported N products (P%) R/s ETA T" on one line.
type progress struct {
	w           io.Writer
	size        int64
	start       time.Time
	startOffset int64
	before      int
	drawn       bool
}

func (p *progress) update(offset int64, imported int) {
	if p.w == nil {
		return
	}
	el := time.Since(p.start).Seconds()
	rate := float64(imported-p.before) / max(el, 1e-9)
	pct := 100.0
	if p.size > 0 {
		pct = 100 * float64(offset) / float64(p.size)
	}
	eta := "?"
	if done := offset - p.startOffset; done > 0 && el > 0 {
		eta = (time.Duration(float64(p.size-offset) / (float64(done) / el) * float64(time.Second))).Round(time.Second).String()
	}
	const width = 30
	bar := strings.Repeat("#", int(pct/100*width)) + strings.Repeat(".", width-int(pct/100*width))
	fmt.Fprintf(p.w, "\r[%s] %5.1f%%  %d products  %.0f/s  ETA %s   ", bar, pct, imported, rate, eta)
	p.drawn = true
}

func (p *progress) done() {
	if p.w != nil && p.drawn {
		fmt.Fprintln(p.w)
	}
}

func runImport(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var (
		natsURL, tenant string
		auth            cli.NATSAuth
		im              Importer
	)
	f := cli.NewFlags("simmatch catalog import", getenv, stderr)
	natsFlags(f, &natsURL, &auth, &tenant)
	f.String(&im.Catalog, "catalog", "", "", "catalog to import into (created on first use)")
	f.String(&im.Format, "format", "", "auto", "file format: auto (by extension), jsonl or csv")
	f.Int(&im.BatchSize, "batch", "SIMMATCH_IMPORT_BATCH", 256, "products per upsert call")
	f.Int(&im.Retries, "retries", "", 5, "retries of a batch that failed with a retryable error")
	f.Duration(&im.Timeout, "batch-timeout", "", 5*time.Minute, "how long one batch may take")
	f.String(&im.StatePath, "state", "", "", "checkpoint file (default FILE.CATALOG.import-state)")
	f.Bool(&im.Restart, "restart", "", false, "ignore the checkpoint and import from the start")
	if err := f.Parse(args); err != nil {
		return err
	}
	if len(f.Args()) != 1 || im.Catalog == "" {
		return errors.New("want -catalog NAME and one FILE\n" + Usage)
	}
	im.File, im.Progress = f.Args()[0], stderr
	nc, err := connect(natsURL, auth)
	if err != nil {
		return err
	}
	defer nc.Close()
	if im.Client, err = contracts.NewClient(nc, clientOptions(tenant, contracts.WithTimeout(im.Timeout))...); err != nil {
		return err
	}
	start := time.Now()
	n, err := im.Run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "imported %d products into catalog %s in %v\n", n, im.Catalog, time.Since(start).Round(time.Millisecond))
	return nil
}
