package bridge

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/simmatch/simmatch/contracts"
)

// The web console (docs/console.md): static files embedded in the binary,
// served at /console/ to anyone. The page holds no data; it calls the public
// API with the key its user types, so every API call is authenticated as
// usual while the files themselves need no key.

//go:embed console
var consoleFiles embed.FS

// consolePrefix is where the console is served.
const consolePrefix = "/console"

// consoleContentTypes are the types of the console's files, by extension:
// set explicitly so that they do not depend on the host's MIME tables.
var consoleContentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

// consoleCSP allows the page its own files and its own origin only: nothing
// is fetched from elsewhere, no inline script runs, and no other site may
// frame it. Images may be data: and blob: URLs (the job results download is
// a blob: link).
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// consoleFile is one embedded file, ready to serve.
type consoleFile struct {
	body        []byte
	contentType string
	etag        string
}

// consoleAssets are the embedded files by name, built once at start.
var consoleAssets = func() map[string]consoleFile {
	sub, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	files := map[string]consoleFile{}
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := consoleContentTypes[path.Ext(name)]
		if !ok {
			return nil // not served
		}
		b, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		files[name] = consoleFile{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return files
}()

// isConsolePath reports whether p is one of the console's paths, which are
// public whatever Config.PublicPaths says: they are the same static files
// for everyone.
func isConsolePath(p string) bool {
	return p == consolePrefix || strings.HasPrefix(p, consolePrefix+"/")
}

// consoleRoutes adds the console's routes: /console redirects to /console/,
// which serves index.html; /console/{file} serves the other files.
func (s *Server) consoleRoutes(r chi.Router) {
	r.Get(consolePrefix, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, consolePrefix+"/", http.StatusMovedPermanently)
	})
	r.Get(consolePrefix+"/", serveConsoleFile("index.html"))
	r.Get(consolePrefix+"/{file}", func(w http.ResponseWriter, r *http.Request) {
		serveConsoleFile(chi.URLParam(r, "file"))(w, r)
	})
}

// serveConsoleFile answers one embedded file. The names carry no version,
// so browsers revalidate every time (no-cache) and get 304 while the ETag,
// a hash of the content, is unchanged: a new build is seen at once, an
// unchanged one costs no transfer.
func serveConsoleFile(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, ok := consoleAssets[name]
		if !ok {
			writeError(w, r, contracts.Errorf(contracts.CodeNotFound, "no console file %q", name))
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if f.contentType == consoleContentTypes[".html"] {
			h.Set("Content-Security-Policy", consoleCSP)
			h.Set("X-Frame-Options", "DENY")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	}
}
