package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The pinned OpenAPI tools. openapi-spec-validator and openapi-python-client
// are pinned with their dependencies in clients/openapi-requirements.txt.
const (
	redoclyVersion    = "2.77.0" // @redocly/cli, from the npm registry; it bundles its dependencies
	oapiCodegenModule = "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2"
	openAPIDoc        = "../../bridge/openapi.yaml"
)

// goClientMod is the module of the generated Go client: the versions of
// oapi-codegen's runtime and its dependencies, pinned.
const goClientMod = `module openapiclient

go 1.24

require (
	github.com/oapi-codegen/runtime v1.9.0
	go.yaml.in/yaml/v3 v3.0.6
	github.com/apapsch/go-jsonmerge/v2 v2.0.0
	github.com/google/uuid v1.6.0
)
`

// toolCache is where the tools are installed once: $SIMMATCH_CACHE, else
// ~/.cache/simmatch (as clients/venv.sh and the Makefile).
func toolCache(t *testing.T) string {
	if c := os.Getenv("SIMMATCH_CACHE"); c != "" {
		return c
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(home, ".cache", "simmatch")
}

// runTool runs name args in dir with env added and returns its stdout; a
// failure ends the test with the tool's stderr.
func runTool(t *testing.T, ctx context.Context, what, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %s %s: %v\nstdout:\n%s\nstderr:\n%s", what, name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

// The OpenAPI document passes two linters with no error (their warnings are
// logged and listed in docs/interfaces.md), and the clients two generators
// make from it with their default settings, openapi-python-client and
// oapi-codegen, call the running all-in-one: /predict, an upsert and a
// search, a job. The tools are installed on first use, pinned, into the
// cache; one that cannot be installed fails the test.
func TestOpenAPIClients(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	doc, err := filepath.Abs(openAPIDoc)
	if err != nil {
		t.Fatal(err)
	}
	cache := toolCache(t)

	// The stack, with an API key that has exactly the scopes the three
	// families of calls need.
	const key = "sk-openapi-7c1d93e5a0b24f68"
	base, stop := startKeyed(t, "openapi", key, "predict,catalog:write,jobs")
	defer stop()

	py := strings.TrimSpace(string(runTool(t, ctx, "clients/venv.sh (installs openapi-spec-validator and openapi-python-client with pip)",
		".", nil, "../../clients/venv.sh", "../../clients/openapi-requirements.txt")))
	pyBin := filepath.Dir(py)

	t.Run("openapi-spec-validator", func(t *testing.T) {
		out := runTool(t, ctx, "openapi-spec-validator", ".", nil, filepath.Join(pyBin, "openapi-spec-validator"), doc)
		t.Logf("%s", out)
	})

	t.Run("redocly", func(t *testing.T) {
		prefix := filepath.Join(cache, "redocly-cli-"+redoclyVersion)
		redocly := filepath.Join(prefix, "node_modules", ".bin", "redocly")
		if _, err := os.Stat(filepath.Join(prefix, ".complete")); err != nil {
			if _, err := exec.LookPath("npm"); err != nil {
				t.Fatalf("npm is needed to install @redocly/cli %s (Debian package npm): %v", redoclyVersion, err)
			}
			_ = os.RemoveAll(prefix)
			runTool(t, ctx, "npm install @redocly/cli", ".", nil, "npm", "install", "--no-audit", "--no-fund", "--no-save",
				"--prefix", prefix, "@redocly/cli@"+redoclyVersion)
			if err := os.WriteFile(filepath.Join(prefix, ".complete"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// no-path-trailing-slash: /console/ is the console's page, a real route
		// (TestOpenAPI wants every route documented).
		cmd := exec.CommandContext(ctx, redocly, "lint", "--format=json", "--skip-rule=no-path-trailing-slash", doc)
		cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, runErr := cmd.Output()
		var report struct {
			Totals   struct{ Errors, Warnings int }
			Problems []struct {
				RuleID, Severity, Message string
				Location                  []struct{ Pointer string }
			}
		}
		if err := json.Unmarshal(out, &report); err != nil {
			t.Fatalf("redocly lint: %v (%v)\n%s\n%s", err, runErr, out, stderr.String())
		}
		for _, p := range report.Problems {
			where := ""
			if len(p.Location) > 0 {
				where = p.Location[0].Pointer
			}
			t.Logf("redocly %s %s at %s: %s", p.Severity, p.RuleID, where, p.Message)
		}
		if report.Totals.Errors != 0 || runErr != nil {
			t.Errorf("redocly lint: %d errors, %d warnings (%v)", report.Totals.Errors, report.Totals.Warnings, runErr)
		}
		t.Logf("redocly lint: %d errors, %d warnings", report.Totals.Errors, report.Totals.Warnings)
	})

	t.Run("openapi-python-client", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "py")
		// The venv's bin on PATH: the generator formats its output with ruff.
		path := "PATH=" + pyBin + string(os.PathListSeparator) + os.Getenv("PATH")
		gen := runTool(t, ctx, "openapi-python-client generate", ".", []string{path},
			filepath.Join(pyBin, "openapi-python-client"), "generate", "--path", doc, "--output-path", out)
		t.Logf("openapi-python-client:\n%s", gen)
		got := runTool(t, ctx, "the generated Python client", ".", nil, py, "../../clients/openapi_client_check.py", out, base, key)
		checkRoundTrip(t, "python", got)
	})

	t.Run("oapi-codegen", func(t *testing.T) {
		mod := t.TempDir()
		cfg := filepath.Join(mod, "oapi-codegen.yaml")
		if err := os.WriteFile(cfg, []byte("package: main\ngenerate:\n  client: true\n  models: true\noutput: "+
			filepath.Join(mod, "client.gen.go")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// go run pkg@version outside the module: the generator's own pins.
		runTool(t, ctx, "oapi-codegen", mod, []string{"GOFLAGS=-mod=mod"}, "go", "run", oapiCodegenModule, "-config", cfg, doc)
		main, err := os.ReadFile("testdata/openapiclient/main.go")
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{"main.go": main, "go.mod": []byte(goClientMod)} {
			if err := os.WriteFile(filepath.Join(mod, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		goEnv := []string{"GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0"}
		runTool(t, ctx, "go mod tidy (the generated client's module)", mod, goEnv, "go", "mod", "tidy")
		got := runTool(t, ctx, "the generated Go client", mod, goEnv, "go", "run", ".", base, key)
		checkRoundTrip(t, "go", got)
	})
}

// checkRoundTrip checks what a generated client's program printed: the saw
// ranks first for "cut wood" in /predict, the catalog search and the job.
func checkRoundTrip(t *testing.T, lang string, out []byte) {
	t.Helper()
	var got struct {
		Predict struct {
			Status, Index int
			Score         float64
			Model         string
		}
		Upserted int
		Search   struct {
			Status int
			ID     string
		}
		Job struct {
			ID, State   string
			Done, Total int
		}
		Results []struct {
			Query   string
			Matches []struct {
				Index       int
				Description string
			}
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s client: %v\n%s", lang, err, out)
	}
	t.Logf("%s client: %s", lang, out)
	if got.Predict.Status != 200 || got.Predict.Index != 1 || got.Predict.Model != "all-MiniLM-L6-v2" {
		t.Errorf("%s client: /predict %+v, want the saw (index 1) first", lang, got.Predict)
	}
	if got.Upserted != 2 || got.Search.Status != 200 || got.Search.ID != "saw" {
		t.Errorf("%s client: upserted %d, search %+v, want the saw", lang, got.Upserted, got.Search)
	}
	if got.Job.State != "done" || got.Job.Done != 2 || got.Job.Total != 2 || len(got.Results) != 2 {
		t.Fatalf("%s client: job %+v with %d result lines", lang, got.Job, len(got.Results))
	}
	for i, want := range []int{1, 0} { // cut wood: the saw; drive nails: the hammer
		if r := got.Results[i]; len(r.Matches) != 1 || r.Matches[0].Index != want {
			t.Errorf("%s client: job result %d %+v, want index %d", lang, i, r, want)
		}
	}
}
