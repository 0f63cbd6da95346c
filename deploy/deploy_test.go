// Package deploy_test checks the deployment configuration offline, without
// Docker or a cluster: docker-compose.yml loads with the Compose loader and has
// the services simmatch needs; the Grafana dashboard, the Prometheus and
// OpenTelemetry Collector configurations, the alert rules, the Kubernetes
// manifests and the CI workflow parse and keep their cross-references (metric
// names from metrics.md, panel titles and alert names in monitoring.md, mounted
// files that exist, actions pinned by commit SHA).
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

// root is the repository root, seen from this package's directory.
const root = ".."

func path(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }

func readFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(path(rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadYAML(t testing.TB, rel string, v any) {
	t.Helper()
	if err := yaml.Unmarshal(readFile(t, rel), v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// ---- metric names -------------------------------------------------------------

// allowedMetrics returns the series names dashboards and alerts may use: every
// metric of metrics.md (histograms with their _bucket, _sum and _count
// series) and the standard collector names it lists.
func allowedMetrics(t testing.TB) map[string]bool {
	t.Helper()
	doc := string(readFile(t, "docs/metrics.md"))
	allowed := map[string]bool{}
	name := regexp.MustCompile("`((?:simmatch|go|process)_[a-z0-9_]+|up)`")
	for _, m := range name.FindAllStringSubmatch(doc, -1) {
		allowed[m[1]] = true
	}
	// Table rows: | `name` | type | ...
	row := regexp.MustCompile("(?m)^\\|\\s*`(simmatch_[a-z0-9_]+)`\\s*\\|\\s*([a-z]+)")
	for _, m := range row.FindAllStringSubmatch(doc, -1) {
		if m[2] == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				allowed[m[1]+s] = true
			}
		}
	}
	for _, want := range []string{"simmatch_http_requests_total", "simmatch_model_topk_similarity_bucket", "process_cpu_seconds_total", "up"} {
		if !allowed[want] {
			t.Fatalf("metrics.md parsing found no %s; the test no longer understands its format", want)
		}
	}
	return allowed
}

var metricRef = regexp.MustCompile(`\b(?:simmatch|go|process)_[a-z0-9_]+\b`)

// checkExpr reports PromQL that uses a metric outside metrics.md or has
// unbalanced brackets (promtool is not available here to parse it fully).
func checkExpr(t testing.TB, where, expr string, allowed map[string]bool) {
	t.Helper()
	if strings.TrimSpace(expr) == "" {
		t.Errorf("%s: empty expression", where)
		return
	}
	for _, m := range metricRef.FindAllString(expr, -1) {
		if !allowed[m] {
			t.Errorf("%s: metric %s is not in docs/metrics.md", where, m)
		}
	}
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inString := false
	for _, r := range expr {
		switch {
		case r == '"':
			inString = !inString
		case inString:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case pairs[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				t.Errorf("%s: unbalanced %q in %s", where, r, expr)
				return
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 || inString {
		t.Errorf("%s: unbalanced brackets or quotes in %s", where, expr)
	}
}

// ---- docker compose -------------------------------------------------------------

func loadCompose(t testing.TB) *types.Project {
	t.Helper()
	return loadComposeEnv(t, types.Mapping{})
}

// loadComposeEnv loads docker-compose.yml with the environment env, as if
// it were the shell's (or an .env file's).
func loadComposeEnv(t testing.TB, env types.Mapping) *types.Project {
	t.Helper()
	ctx := context.Background()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	details, err := loader.LoadConfigFiles(ctx, []string{filepath.Join(abs, "docker-compose.yml")}, abs)
	if err != nil {
		t.Fatal(err)
	}
	// No environment (loadCompose): the file must work without a .env file.
	details.Environment = env
	p, err := loader.LoadWithContext(ctx, *details)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// loadComposeFiles loads compose files (repository paths, later ones
// overriding earlier ones, as `docker compose -f a -f b`) with env.
func loadComposeFiles(t testing.TB, env types.Mapping, files ...string) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(abs, filepath.FromSlash(f)))
	}
	details, err := loader.LoadConfigFiles(context.Background(), paths, abs)
	if err != nil {
		t.Fatal(err)
	}
	details.Environment = env
	p, err := loader.LoadWithContext(context.Background(), *details, func(o *loader.Options) { o.SetProjectName("simmatch", true) })
	if err != nil {
		t.Fatalf("%v: %v", files, err)
	}
	return p
}

var (
	// devPassword and passwordDefault are what a development password looks
	// like in a file: a dev-...-password value, or a compose default
	// (${X_PASSWORD:-...}) that is not empty.
	devPassword     = regexp.MustCompile(`(?i)dev-[a-z]*-?password|changeme|PASSWORD[A-Z_]*:\s*"?(admin|secret|password)\b`)
	passwordDefault = regexp.MustCompile(`PASSWORD[A-Z_]*:-[^}]`)
)

// deployConfigs lists the deployment files (YAML and NATS configuration)
// under deploy/.
func deployConfigs(t testing.TB) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(path("deploy"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(p); !d.IsDir() && (ext == ".yml" || ext == ".yaml" || ext == ".conf") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 10 {
		t.Fatalf("found only %v under deploy/", out)
	}
	return out
}

// volumeAt returns the volume s mounts at target, or nil.
func volumeAt(s types.ServiceConfig, target string) *types.ServiceVolumeConfig {
	for i, v := range s.Volumes {
		if v.Target == target {
			return &s.Volumes[i]
		}
	}
	return nil
}

// volumeSource returns s's mount of the named volume source, or nil.
func volumeSource(s types.ServiceConfig, source string) *types.ServiceVolumeConfig {
	for i, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source == source {
			return &s.Volumes[i]
		}
	}
	return nil
}

func service(t testing.TB, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml: no service %q", name)
	}
	return s
}

func env(s types.ServiceConfig, key string) string {
	if v, ok := s.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

// mountTarget returns where service s mounts the repository path rel, or "".
func mountTarget(t testing.TB, p *types.Project, s, rel string) string {
	t.Helper()
	want, err := filepath.Abs(path(rel))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range service(t, p, s).Volumes {
		if v.Type == types.VolumeTypeBind && filepath.Clean(v.Source) == want {
			return v.Target
		}
	}
	return ""
}

func TestCompose(t *testing.T) {
	p := loadCompose(t)

	var names []string
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"bridge", "grafana", "jaeger", "nats", "otel-collector", "processor", "prometheus", "secrets"}
	if !slices.Equal(names, want) {
		t.Errorf("services = %v, want %v", names, want)
	}

	t.Run("nats", func(t *testing.T) {
		s := service(t, p, "nats")
		if s.Image != "nats:2.11" {
			t.Errorf("image = %q, want the official nats:2.11", s.Image)
		}
		if !slices.Equal([]string(s.Command), []string{"-c", "/etc/nats/compose.conf"}) {
			t.Errorf("command = %v, want the mounted deploy/nats/compose.conf", s.Command)
		}
		for _, f := range []string{"nats-server.conf", "compose.conf"} {
			if got := mountTarget(t, p, "nats", "deploy/nats/"+f); got != "/etc/nats/"+f {
				t.Errorf("deploy/nats/%s is mounted at %q, want /etc/nats/%s", f, got, f)
			}
		}
		// The generated certificate, key and passwords.conf, where
		// compose.conf and nats-server.conf's include look for them.
		if v := volumeAt(s, "/etc/nats/auth"); v == nil || v.Source != "nats-auth" || !v.ReadOnly {
			t.Errorf("/etc/nats/auth = %+v, want the nats-auth volume read-only", v)
		}
		conf := string(readFile(t, "deploy/nats/nats-server.conf"))
		for _, want := range []string{"include ./auth/passwords.conf", "jetstream {", "http_port: 8222", "$NATS_BRIDGE_PASSWORD", "$NATS_PROCESSOR_PASSWORD"} {
			if !strings.Contains(conf, want) {
				t.Errorf("nats-server.conf lacks %q", want)
			}
		}
		compose := string(readFile(t, "deploy/nats/compose.conf"))
		for _, want := range []string{"include ./nats-server.conf", "tls {", `cert_file: "/etc/nats/auth/tls.crt"`, `key_file: "/etc/nats/auth/tls.key"`} {
			if !strings.Contains(compose, want) {
				t.Errorf("compose.conf lacks %q", want)
			}
		}
		if strings.Contains(compose, "allow_non_tls") {
			t.Error("compose.conf lets clients in without TLS")
		}
		for k := range s.Environment {
			if strings.Contains(k, "PASSWORD") {
				t.Errorf("the nats service sets %s: its passwords come from the generated passwords.conf", k)
			}
		}
		if d, ok := s.DependsOn["secrets"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("depends_on secrets = %+v, want service_completed_successfully", d)
		}
	})

	t.Run("secrets", func(t *testing.T) {
		s := service(t, p, "secrets")
		if s.Image != "simmatch:latest" || s.Build == nil {
			t.Errorf("image %q build %v: want the simmatch image", s.Image, s.Build)
		}
		if !slices.Equal([]string(s.Command), []string{"simmatch", "secrets", "-dir", "/secrets"}) {
			t.Errorf("command = %v, want simmatch secrets -dir /secrets", s.Command)
		}
		if s.Restart != "no" {
			t.Errorf("restart = %q, want no: it is a one-shot", s.Restart)
		}
		// One volume per consumer; the Dockerfile creates these mount points
		// owned by the image's user, so new volumes are writable.
		dockerfile := string(readFile(t, "Dockerfile"))
		for vol, dir := range map[string]string{"nats-ca": "/secrets/ca", "nats-auth": "/secrets/nats", "nats-bridge": "/secrets/bridge", "nats-processor": "/secrets/processor"} {
			if v := volumeAt(s, dir); v == nil || v.Source != vol || v.ReadOnly {
				t.Errorf("%s = %+v, want the %s volume, writable", dir, v, vol)
			}
			if !strings.Contains(dockerfile, dir) {
				t.Errorf("the Dockerfile does not create %s", dir)
			}
			if _, ok := p.Volumes[vol]; !ok {
				t.Errorf("no top-level volume %s", vol)
			}
		}
		// Only this service sees the CA's key.
		for name, other := range p.Services {
			if v := volumeSource(other, "nats-ca"); name != "secrets" && v != nil {
				t.Errorf("%s mounts the CA volume", name)
			}
		}
		for _, pw := range []string{"NATS_BRIDGE_PASSWORD", "NATS_PROCESSOR_PASSWORD"} {
			if got := env(s, pw); got != "" {
				t.Errorf("%s = %q by default, want empty (generated)", pw, got)
			}
		}
		set := service(t, loadComposeEnv(t, types.Mapping{"NATS_BRIDGE_PASSWORD": "bridge-pw-from-env-1", "NATS_PROCESSOR_PASSWORD": "proc-pw-from-env-22"}), "secrets")
		if env(set, "NATS_BRIDGE_PASSWORD") != "bridge-pw-from-env-1" || env(set, "NATS_PROCESSOR_PASSWORD") != "proc-pw-from-env-22" {
			t.Errorf("the user's passwords do not reach the secrets service: %v", set.Environment)
		}
	})

	for _, tc := range []struct {
		name, command, health string
	}{
		{"processor", "simmatch-processor", "http://127.0.0.1:9091/ready"},
		{"bridge", "simmatch-bridge", "http://127.0.0.1:8000/health"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := service(t, p, tc.name)
			if s.Image != "simmatch:latest" || s.Build == nil {
				t.Errorf("image %q build %v: want simmatch:latest built from the repository", s.Image, s.Build)
			} else if abs, _ := filepath.Abs(root); filepath.Clean(s.Build.Context) != abs {
				t.Errorf("build context = %q, want the repository root", s.Build.Context)
			}
			if !slices.Equal([]string(s.Command), []string{tc.command}) {
				t.Errorf("command = %v, want [%s]", s.Command, tc.command)
			}
			if got := env(s, "NATS_URL"); got != "tls://nats:4222" {
				t.Errorf("NATS_URL = %q, want tls://nats:4222", got)
			}
			// Each role logs in with its own user (deploy/nats/nats-server.conf)
			// and the password and CA the secrets service wrote into its own
			// volume, mounted read-only.
			role := strings.TrimPrefix(tc.command, "simmatch-")
			if got := env(s, "NATS_USER"); got != role {
				t.Errorf("NATS_USER = %q, want %s", got, role)
			}
			if got := env(s, "NATS_PASSWORD"); got != "" {
				t.Errorf("NATS_PASSWORD = %q: the password comes from NATS_PASSWORD_FILE", got)
			}
			for k, file := range map[string]string{"NATS_PASSWORD_FILE": "password", "NATS_CA_FILE": "ca.crt"} {
				got := env(s, k)
				v := volumeAt(s, filepath.Dir(got))
				if filepath.Base(got) != file || v == nil || v.Source != "nats-"+role || !v.ReadOnly {
					t.Errorf("%s = %q in %+v, want %s in the nats-%s volume, read-only", k, got, v, file, role)
				}
			}
			if d, ok := s.DependsOn["secrets"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
				t.Errorf("depends_on secrets = %+v, want service_completed_successfully", d)
			}
			if got := env(s, "OTEL_EXPORTER_OTLP_ENDPOINT"); got != "http://otel-collector:4318" {
				t.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT = %q, want the collector's OTLP/HTTP port", got)
			}
			if got := env(s, "OTEL_EXPORTER_OTLP_PROTOCOL"); got != "" && got != "http/protobuf" {
				t.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL = %q: only http/protobuf is supported", got)
			}
			if s.HealthCheck == nil || !slices.Equal([]string(s.HealthCheck.Test), []string{"CMD", "simmatch-healthcheck", tc.health}) {
				t.Errorf("healthcheck = %+v, want simmatch-healthcheck %s", s.HealthCheck, tc.health)
			}
			// The drain on SIGTERM takes up to SIMMATCH_SHUTDOWN_TIMEOUT (30s).
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= 30*time.Second {
				t.Errorf("stop_grace_period = %v, want more than the 30s shutdown timeout", s.StopGracePeriod)
			}
			if d, ok := s.DependsOn["nats"]; !ok || d.Condition != types.ServiceConditionStarted {
				t.Errorf("depends_on nats = %+v, want condition service_started", d)
			}
		})
	}

	t.Run("processor replicas and model", func(t *testing.T) {
		s := service(t, p, "processor")
		if s.Deploy == nil || s.Deploy.Replicas == nil || *s.Deploy.Replicas != 3 {
			t.Errorf("deploy = %+v, want replicas: 3", s.Deploy)
		}
		if len(s.Ports) != 0 {
			t.Errorf("processor publishes %v: replicas would collide on the host", s.Ports)
		}
		var model bool
		for _, v := range s.Volumes {
			if v.Target == "/models" && v.ReadOnly && strings.HasSuffix(filepath.ToSlash(v.Source), "/models") {
				model = true
			}
		}
		if !model {
			t.Errorf("volumes = %+v, want ./models mounted read-only at /models", s.Volumes)
		}
	})

	t.Run("bridge", func(t *testing.T) {
		s := service(t, p, "bridge")
		var published bool
		for _, port := range s.Ports {
			if port.Target == 8000 && port.Published == "8000" {
				published = true
			}
		}
		if !published {
			t.Errorf("ports = %+v, want 8000:8000", s.Ports)
		}
		if d := s.DependsOn["processor"]; d.Condition != types.ServiceConditionHealthy {
			t.Errorf("depends_on processor = %+v, want service_healthy", d)
		}
	})

	t.Run("published ports", func(t *testing.T) {
		// Only the API and Grafana reach the host: on its loopback by
		// default, wherever SIMMATCH_PUBLISH_HOST says otherwise. NATS,
		// Prometheus (key names in the bridge's metrics), Jaeger and the
		// collector have no login of their own and stay internal.
		want := map[string]uint32{"bridge": 8000, "grafana": 3000}
		wide := loadComposeEnv(t, types.Mapping{"SIMMATCH_PUBLISH_HOST": "0.0.0.0"})
		for name, s := range p.Services {
			if _, ok := want[name]; !ok {
				if len(s.Ports) > 0 || len(s.Expose) > 0 {
					t.Errorf("%s publishes %+v, want nothing on the host", name, s.Ports)
				}
				continue
			}
			if len(s.Ports) != 1 || s.Ports[0].Target != want[name] || s.Ports[0].Published != strconv.Itoa(int(want[name])) {
				t.Errorf("%s publishes %+v, want only %d", name, s.Ports, want[name])
				continue
			}
			if got := s.Ports[0].HostIP; got != "127.0.0.1" {
				t.Errorf("%s publishes on %q by default, want 127.0.0.1", name, got)
			}
			if got := wide.Services[name].Ports[0].HostIP; got != "0.0.0.0" {
				t.Errorf("SIMMATCH_PUBLISH_HOST=0.0.0.0: %s publishes on %q", name, got)
			}
		}
		// The debugging override publishes the internal ones, on loopback only.
		debug := loadComposeFiles(t, types.Mapping{"SIMMATCH_PUBLISH_HOST": "0.0.0.0"}, "docker-compose.yml", "deploy/compose/ports.yml")
		for name, port := range map[string]uint32{"nats": 4222, "prometheus": 9090, "jaeger": 16686} {
			if !slices.ContainsFunc(debug.Services[name].Ports, func(pc types.ServicePortConfig) bool { return pc.Target == port }) {
				t.Errorf("deploy/compose/ports.yml does not publish %s's %d", name, port)
			}
		}
		for name, s := range debug.Services {
			if _, ok := want[name]; ok {
				continue
			}
			for _, pc := range s.Ports {
				if pc.HostIP != "127.0.0.1" {
					t.Errorf("deploy/compose/ports.yml publishes %s's %d on %q, want 127.0.0.1", name, pc.Target, pc.HostIP)
				}
			}
		}
	})

	t.Run("no development password", func(t *testing.T) {
		// No password in the files, and no default for one: every
		// variable named *PASSWORD (not *_FILE) is empty unless the user sets it.
		for _, rel := range append([]string{"docker-compose.yml", "deploy/compose/ports.yml"}, deployConfigs(t)...) {
			text := string(readFile(t, rel))
			for _, bad := range []*regexp.Regexp{devPassword, passwordDefault} {
				if m := bad.FindString(text); m != "" {
					t.Errorf("%s: %q", rel, m)
				}
			}
		}
		for name, s := range p.Services {
			for k, v := range s.Environment {
				if strings.Contains(k, "PASSWORD") && !strings.HasSuffix(k, "_FILE") && v != nil && *v != "" {
					t.Errorf("%s: %s = %q by default", name, k, *v)
				}
			}
		}
	})

	t.Run("grafana login", func(t *testing.T) {
		s := service(t, p, "grafana")
		if got := env(s, "GF_AUTH_ANONYMOUS_ENABLED"); got != "false" {
			t.Errorf("GF_AUTH_ANONYMOUS_ENABLED = %q by default, want false", got)
		}
		if got := env(s, "GF_SECURITY_ADMIN_PASSWORD"); got != "" {
			t.Errorf("GF_SECURITY_ADMIN_PASSWORD = %q: a password in the file is known to anyone who reads it", got)
		}
		if got := env(s, "GRAFANA_ADMIN_PASSWORD"); got != "" {
			t.Errorf("GRAFANA_ADMIN_PASSWORD = %q by default, want empty (a generated password)", got)
		}
		// Without GRAFANA_ADMIN_PASSWORD the entrypoint generates a random
		// password into the data volume and hands Grafana the file.
		script := strings.Join(s.Entrypoint, " ")
		for _, want := range []string{"/dev/urandom", "GF_SECURITY_ADMIN_PASSWORD__FILE", "/var/lib/grafana/", "umask 077", "exec /run.sh",
			`GF_SECURITY_ADMIN_PASSWORD="$GRAFANA_ADMIN_PASSWORD"`} {
			if !strings.Contains(script, want) {
				t.Errorf("grafana entrypoint lacks %q:\n%s", want, script)
			}
		}
		if strings.Contains(script, "admin/admin") || strings.Contains(script, "PASSWORD:-admin") {
			t.Errorf("grafana entrypoint falls back to a development password:\n%s", script)
		}
		set := service(t, loadComposeEnv(t, types.Mapping{"GRAFANA_ADMIN_PASSWORD": "s3cret-from-env", "GRAFANA_ANONYMOUS": "true"}), "grafana")
		if env(set, "GRAFANA_ADMIN_PASSWORD") != "s3cret-from-env" || env(set, "GF_AUTH_ANONYMOUS_ENABLED") != "true" {
			t.Errorf("GRAFANA_ADMIN_PASSWORD and GRAFANA_ANONYMOUS do not reach grafana: %v", set.Environment)
		}
	})

	t.Run("images", func(t *testing.T) {
		for name, s := range p.Services {
			if s.Image == "" {
				t.Errorf("%s: no image", name)
				continue
			}
			if s.Build == nil && (!strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest")) {
				t.Errorf("%s: public image %q must be pinned to a version", name, s.Image)
			}
		}
	})

	t.Run("mounted files exist", func(t *testing.T) {
		abs, _ := filepath.Abs(root)
		models := filepath.Join(abs, "models")
		for name, s := range p.Services {
			for _, v := range s.Volumes {
				if v.Type != types.VolumeTypeBind {
					continue
				}
				if filepath.Clean(v.Source) == models {
					continue // fetched by `make deps`, not part of the repository
				}
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s: %v", name, v.Source, err)
				}
			}
		}
	})
}

// ---- Grafana --------------------------------------------------------------------

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gridPos struct {
	H, W, X, Y int
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    gridPos        `json:"gridPos"`
	Targets    []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string         `json:"name"`
			Datasource *datasourceRef `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t testing.TB) dashboard {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(readFile(t, "deploy/grafana/dashboards/simmatch.json")))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("simmatch.json: %v", err)
	}
	return d
}

// dashboardPanels returns every panel that is not a row, rows' panels included.
func dashboardPanels(d dashboard) []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			out = append(out, p)
		}
	}
	walk(d.Panels)
	return out
}

type grafanaDatasources struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name string `yaml:"name"`
		UID  string `yaml:"uid"`
		Type string `yaml:"type"`
		URL  string `yaml:"url"`
	} `yaml:"datasources"`
}

// provisionedDatasources returns the datasource uids by type.
func provisionedDatasources(t testing.TB) map[string]string {
	t.Helper()
	files, err := filepath.Glob(path("deploy/grafana/provisioning/datasources/*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no datasource provisioning files (%v)", err)
	}
	uids := map[string]string{}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		var ds grafanaDatasources
		loadYAML(t, filepath.ToSlash(rel), &ds)
		for _, d := range ds.Datasources {
			if d.UID == "" || d.URL == "" {
				t.Errorf("%s: datasource %q needs a fixed uid and a url", rel, d.Name)
			}
			uids[d.UID] = d.Type
		}
	}
	return uids
}

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	allowed := allowedMetrics(t)
	uids := provisionedDatasources(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q title %q: both are needed for stable links", d.UID, d.Title)
	}

	dsOK := func(ref *datasourceRef) bool {
		return ref != nil && ref.UID != "" && uids[ref.UID] == ref.Type
	}
	titles := map[string]bool{}
	for _, p := range dashboardPanels(d) {
		where := "panel " + strconv.Quote(p.Title)
		if p.Title == "" || titles[p.Title] {
			t.Errorf("%s: titles must be present and unique (monitoring.md refers to them)", where)
		}
		titles[p.Title] = true
		if !dsOK(p.Datasource) {
			t.Errorf("%s: datasource %+v is not a provisioned datasource", where, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: refIds must be present and unique", where)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && !dsOK(tg.Datasource) {
				t.Errorf("%s: target datasource %+v is not provisioned", where, tg.Datasource)
			}
			checkExpr(t, where, tg.Expr, allowed)
		}
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v does not fit the 24-column grid", where, g)
		}
	}
	for _, v := range d.Templating.List {
		if !dsOK(v.Datasource) {
			t.Errorf("variable %s: datasource %+v is not provisioned", v.Name, v.Datasource)
		}
	}

	// The panels the monitoring plan promises (docs/monitoring.md).
	for _, want := range []string{
		"Uptime", "Processors answering", "Throughput (req/s) by route and outcome",
		"Error rate (5xx share of /predict)", "End-to-end latency p50/p95/p99 (bridge)",
		"Queue wait p50/p95/p99", "Stage latency p50/p95/p99 by stage", "In-flight requests",
		"Queue depth vs capacity", "Batch size and tokens", "CPU (cores)", "Memory RSS", "Goroutines",
		"Average similarity of top K", "Similarity score distribution", "Share of matches above threshold",
	} {
		if !titles[want] {
			t.Errorf("no panel %q", want)
		}
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	p := loadCompose(t)
	uids := provisionedDatasources(t)
	if uids["prometheus"] != "prometheus" || uids["jaeger"] != "jaeger" {
		t.Errorf("datasources = %v, want uid prometheus (prometheus) and uid jaeger (jaeger)", uids)
	}

	var providers struct {
		Providers []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	loadYAML(t, "deploy/grafana/provisioning/dashboards/simmatch.yml", &providers)
	dashDir := mountTarget(t, p, "grafana", "deploy/grafana/dashboards")
	if dashDir == "" {
		t.Fatal("grafana does not mount deploy/grafana/dashboards")
	}
	if len(providers.Providers) != 1 || providers.Providers[0].Type != "file" || providers.Providers[0].Options.Path != dashDir {
		t.Errorf("dashboard providers = %+v, want one file provider reading %s", providers.Providers, dashDir)
	}
	if got := mountTarget(t, p, "grafana", "deploy/grafana/provisioning"); got != "/etc/grafana/provisioning" {
		t.Errorf("grafana mounts the provisioning directory at %q", got)
	}
}

// ---- Prometheus -----------------------------------------------------------------

type promConfig struct {
	Global struct {
		ScrapeInterval string `yaml:"scrape_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		DNSSDConfigs []struct {
			Names []string `yaml:"names"`
			Type  string   `yaml:"type"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
	} `yaml:"scrape_configs"`
}

func TestPrometheusConfig(t *testing.T) {
	var c promConfig
	loadYAML(t, "deploy/prometheus/prometheus.yml", &c)
	p := loadCompose(t)

	jobs := map[string]int{}
	for i, sc := range c.ScrapeConfigs {
		jobs[sc.JobName] = i
	}
	bridge, ok := jobs["simmatch-bridge"]
	if !ok {
		t.Fatal("no simmatch-bridge job")
	}
	if sc := c.ScrapeConfigs[bridge]; len(sc.StaticConfigs) != 1 || !slices.Equal(sc.StaticConfigs[0].Targets, []string{"bridge:8000"}) {
		t.Errorf("simmatch-bridge scrapes %+v, want bridge:8000", sc.StaticConfigs)
	}
	proc, ok := jobs["simmatch-processor"]
	if !ok {
		t.Fatal("no simmatch-processor job")
	}
	dns := c.ScrapeConfigs[proc].DNSSDConfigs
	if len(dns) != 1 || !slices.Equal(dns[0].Names, []string{"processor"}) || dns[0].Type != "A" || dns[0].Port != 9091 {
		t.Errorf("simmatch-processor dns_sd_configs = %+v, want names [processor], type A, port 9091", dns)
	}
	if _, ok := p.Services["processor"]; !ok {
		t.Error("the DNS name processor is not a compose service")
	}

	// Rule files are relative to the configuration file: both must be mounted
	// side by side.
	cfgDir := mountTarget(t, p, "prometheus", "deploy/prometheus/prometheus.yml")
	alertsAt := mountTarget(t, p, "prometheus", "deploy/prometheus/alerts.yml")
	if cfgDir == "" || alertsAt == "" {
		t.Fatalf("prometheus mounts prometheus.yml at %q and alerts.yml at %q", cfgDir, alertsAt)
	}
	var found bool
	for _, rf := range c.RuleFiles {
		if !filepath.IsAbs(rf) {
			rf = filepath.Join(filepath.Dir(cfgDir), rf)
		}
		found = found || rf == alertsAt
	}
	if !found {
		t.Errorf("rule_files %v do not name the mounted %s", c.RuleFiles, alertsAt)
	}
	if !slices.Contains(service(t, p, "prometheus").Command, "--config.file="+cfgDir) {
		t.Errorf("prometheus command %v does not read %s", service(t, p, "prometheus").Command, cfgDir)
	}
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadAlerts(t testing.TB) map[string]alertRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Name     string      `yaml:"name"`
			Interval string      `yaml:"interval"`
			Rules    []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	loadYAML(t, "deploy/prometheus/alerts.yml", &f)
	if len(f.Groups) == 0 {
		t.Fatal("alerts.yml: no groups")
	}
	rules := map[string]alertRule{}
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: needs a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: rule without alert name (record %q)", g.Name, r.Record)
				continue
			}
			if _, dup := rules[r.Alert]; dup {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			rules[r.Alert] = r
		}
	}
	return rules
}

var promDuration = regexp.MustCompile(`^([0-9]+(ms|[smhdwy]))+$`)

func TestAlertRules(t *testing.T) {
	rules := loadAlerts(t)
	allowed := allowedMetrics(t)
	for name, r := range rules {
		checkExpr(t, "alert "+name, r.Expr, allowed)
		if r.For != "" && !promDuration.MatchString(r.For) {
			t.Errorf("alert %s: for %q is not a duration", name, r.For)
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
			t.Errorf("alert %s: severity %q, want critical, warning or info", name, s)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s: no %s annotation", name, a)
			}
		}
		if !strings.HasPrefix(name, "Simmatch") {
			t.Errorf("alert %s: names start with Simmatch, so monitoring.md and routing can find them", name)
		}
	}
	for _, want := range []string{
		"SimmatchHighErrorRate", "SimmatchLatencyP99High", "SimmatchNoProcessorUp",
		"SimmatchNoProcessorAnswering", "SimmatchSimilarityDrift",
		"SimmatchMatchesAboveThresholdDrop", "SimmatchQueueSaturation",
	} {
		if _, ok := rules[want]; !ok {
			t.Errorf("no alert %s", want)
		}
	}
	if r := rules["SimmatchNoProcessorUp"]; !strings.Contains(r.Expr, `absent(up{job="simmatch-processor"})`) {
		t.Errorf("SimmatchNoProcessorUp must also fire when no processor series exists at all: %s", r.Expr)
	}
	if r := rules["SimmatchSimilarityDrift"]; !strings.Contains(r.Expr, "[1h]") || !strings.Contains(r.Expr, "[7d]") {
		t.Errorf("SimmatchSimilarityDrift must compare the last hour with a 7-day baseline: %s", r.Expr)
	}
}

// ---- monitoring.md --------------------------------------------------------------

func TestMonitoringDoc(t *testing.T) {
	doc := string(readFile(t, "docs/monitoring.md"))
	rules := loadAlerts(t)
	allowed := allowedMetrics(t)
	titles := map[string]bool{}
	for _, p := range dashboardPanels(loadDashboard(t)) {
		titles[p.Title] = true
	}

	alertRef := regexp.MustCompile("`(Simmatch[A-Za-z0-9]+)`")
	mentioned := map[string]bool{}
	for _, m := range alertRef.FindAllStringSubmatch(doc, -1) {
		mentioned[m[1]] = true
		if _, ok := rules[m[1]]; !ok {
			t.Errorf("monitoring.md names alert %s, which alerts.yml does not define", m[1])
		}
	}
	for name := range rules {
		if !mentioned[name] {
			t.Errorf("alert %s is missing from monitoring.md", name)
		}
	}
	for _, m := range regexp.MustCompile("`((?:simmatch|go|process)_[a-z0-9_]+)`").FindAllStringSubmatch(doc, -1) {
		if !allowed[m[1]] {
			t.Errorf("monitoring.md names metric %s, which metrics.md does not list", m[1])
		}
	}

	// The mapping table: | plan item | metrics | panels | alerts |
	quoted := regexp.MustCompile(`"([^"]+)"`)
	var items []string
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 4 || strings.TrimSpace(cells[0]) == "Plan item" {
			continue
		}
		items = append(items, strings.TrimSpace(cells[0]))
		panels := quoted.FindAllStringSubmatch(cells[2], -1)
		if len(panels) == 0 {
			t.Errorf("monitoring.md: %q maps to no dashboard panel", cells[0])
		}
		for _, m := range panels {
			if !titles[m[1]] {
				t.Errorf("monitoring.md: panel %q does not exist in the dashboard", m[1])
			}
		}
		if !strings.Contains(cells[1], "`") {
			t.Errorf("monitoring.md: %q maps to no metric", cells[0])
		}
	}
	for _, want := range []string{
		"System uptime", "Throughput", "Latency", "Resource utilization",
		"Average similarity of top K", "Similarity score distribution", "Similarity threshold",
		"error rates", "usage",
	} {
		if !slices.ContainsFunc(items, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("monitoring.md: no row for the plan item %q", want)
		}
	}
	for _, url := range []string{"http://localhost:3000", "http://localhost:9090", "http://localhost:16686"} {
		if !strings.Contains(doc, url) {
			t.Errorf("monitoring.md does not say how to reach %s", url)
		}
	}
}

// ---- OpenTelemetry Collector ----------------------------------------------------

func TestOtelCollectorConfig(t *testing.T) {
	var c struct {
		Receivers  map[string]map[string]any `yaml:"receivers"`
		Processors map[string]any            `yaml:"processors"`
		Exporters  map[string]map[string]any `yaml:"exporters"`
		Extensions map[string]any            `yaml:"extensions"`
		Service    struct {
			Extensions []string `yaml:"extensions"`
			Pipelines  map[string]struct {
				Receivers  []string `yaml:"receivers"`
				Processors []string `yaml:"processors"`
				Exporters  []string `yaml:"exporters"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	loadYAML(t, "deploy/otel-collector/config.yaml", &c)

	var otlp struct {
		Protocols struct {
			GRPC struct{ Endpoint string } `yaml:"grpc"`
			HTTP struct{ Endpoint string } `yaml:"http"`
		} `yaml:"protocols"`
	}
	b, _ := yaml.Marshal(c.Receivers["otlp"])
	if err := yaml.Unmarshal(b, &otlp); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(otlp.Protocols.GRPC.Endpoint, ":4317") || !strings.HasSuffix(otlp.Protocols.HTTP.Endpoint, ":4318") {
		t.Errorf("otlp receiver = %+v, want grpc :4317 and http :4318", otlp.Protocols)
	}

	traces, ok := c.Service.Pipelines["traces"]
	if !ok {
		t.Fatal("no traces pipeline")
	}
	if !slices.Contains(traces.Receivers, "otlp") || !slices.Contains(traces.Processors, "batch") {
		t.Errorf("traces pipeline = %+v, want receiver otlp and processor batch", traces)
	}
	var jaeger, debug bool
	for _, e := range traces.Exporters {
		cfg, ok := c.Exporters[e]
		if !ok {
			t.Errorf("exporter %s is used but not configured", e)
		}
		jaeger = jaeger || cfg["endpoint"] == "jaeger:4317"
		debug = debug || e == "debug"
	}
	if !jaeger || !debug {
		t.Errorf("traces exporters %v: want one to jaeger:4317 and debug", traces.Exporters)
	}
	defined := func(section map[string]any, name string) bool { _, ok := section[name]; return ok }
	for _, r := range traces.Receivers {
		if _, ok := c.Receivers[r]; !ok {
			t.Errorf("receiver %s is used but not configured", r)
		}
	}
	for _, pr := range traces.Processors {
		if !defined(c.Processors, pr) {
			t.Errorf("processor %s is used but not configured", pr)
		}
	}
	for _, e := range c.Service.Extensions {
		if !defined(c.Extensions, e) {
			t.Errorf("extension %s is used but not configured", e)
		}
	}

	p := loadCompose(t)
	s := service(t, p, "otel-collector")
	at := mountTarget(t, p, "otel-collector", "deploy/otel-collector/config.yaml")
	if at == "" || !slices.Contains(s.Command, "--config="+at) {
		t.Errorf("otel-collector mounts the config at %q and runs %v", at, s.Command)
	}
}

// ---- Kubernetes -----------------------------------------------------------------

type k8sMeta struct {
	Name        string            `yaml:"name"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	EnvFrom []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
		SecretRef    *struct{ Name string } `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
}

type k8sDeployment struct {
	Metadata k8sMeta `yaml:"metadata"`
	Spec     struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata k8sMeta `yaml:"metadata"`
			Spec     struct {
				TerminationGracePeriodSeconds int            `yaml:"terminationGracePeriodSeconds"`
				InitContainers                []k8sContainer `yaml:"initContainers"`
				Containers                    []k8sContainer `yaml:"containers"`
				Volumes                       []struct {
					Name   string `yaml:"name"`
					Secret *struct {
						SecretName string `yaml:"secretName"`
						Items      []struct {
							Key  string `yaml:"key"`
							Path string `yaml:"path"`
						} `yaml:"items"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sDoc struct {
	APIVersion string    `yaml:"apiVersion"`
	Kind       string    `yaml:"kind"`
	Metadata   k8sMeta   `yaml:"metadata"`
	Raw        yaml.Node `yaml:"-"`
}

// loadManifests decodes every document of every manifest in deploy/k8s.
func loadManifests(t testing.TB) map[string][]k8sDoc {
	t.Helper()
	files, err := filepath.Glob(path("deploy/k8s/*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]k8sDoc{}
	for _, f := range files {
		base := filepath.Base(f)
		if base == "kustomization.yaml" || base == "nats-values.yaml" {
			continue
		}
		dec := yaml.NewDecoder(bytes.NewReader(readFile(t, "deploy/k8s/"+base)))
		for {
			var n yaml.Node
			if err := dec.Decode(&n); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", base, err)
			}
			if len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode || len(n.Content[0].Content) == 0 {
				continue // an empty document
			}
			var d k8sDoc
			if err := n.Decode(&d); err != nil {
				t.Fatalf("%s: %v", base, err)
			}
			if d.APIVersion == "" || d.Kind == "" || d.Metadata.Name == "" {
				t.Errorf("%s: a document without apiVersion, kind or metadata.name", base)
			}
			d.Raw = n
			out[base] = append(out[base], d)
		}
	}
	return out
}

func findObject(t testing.TB, docs map[string][]k8sDoc, kind, name string, v any) {
	t.Helper()
	for _, ds := range docs {
		for _, d := range ds {
			if d.Kind == kind && d.Metadata.Name == name {
				if err := d.Raw.Decode(v); err != nil {
					t.Fatalf("%s %s: %v", kind, name, err)
				}
				return
			}
		}
	}
	t.Fatalf("no %s %s in deploy/k8s", kind, name)
}

func TestKubernetesManifests(t *testing.T) {
	docs := loadManifests(t)

	var kust struct {
		Namespace string   `yaml:"namespace"`
		Resources []string `yaml:"resources"`
	}
	loadYAML(t, "deploy/k8s/kustomization.yaml", &kust)
	if kust.Namespace == "" {
		t.Error("kustomization.yaml sets no namespace")
	}
	for _, r := range kust.Resources {
		if _, err := os.Stat(path("deploy/k8s/" + r)); err != nil {
			t.Errorf("kustomization.yaml: %v", err)
		}
	}
	for f := range docs {
		// The Ingress is optional; the Certificate needs cert-manager and goes before NATS.
		if !slices.Contains(kust.Resources, f) && f != "ingress.yaml" && f != "nats-certificate.yaml" {
			t.Errorf("%s is not listed in kustomization.yaml", f)
		}
	}

	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	findObject(t, docs, "ConfigMap", "simmatch-config", &cm)
	if !strings.HasPrefix(cm.Data["NATS_URL"], "tls://") {
		t.Errorf("NATS_URL = %q, want tls://", cm.Data["NATS_URL"])
	}
	caFile := cm.Data["NATS_CA_FILE"]
	if caFile == "" {
		t.Error("the ConfigMap has no NATS_CA_FILE")
	}
	shutdown, err := time.ParseDuration(cm.Data["SIMMATCH_SHUTDOWN_TIMEOUT"])
	if err != nil {
		t.Fatalf("SIMMATCH_SHUTDOWN_TIMEOUT: %v", err)
	}

	var secret struct {
		Data       map[string]string `yaml:"data"`
		StringData map[string]string `yaml:"stringData"`
	}
	findObject(t, docs, "Secret", "simmatch-secrets", &secret)
	for k, v := range secret.StringData {
		if !strings.Contains(v, "REPLACE-ME") {
			t.Errorf("secret.yaml: %s must stay a placeholder (REPLACE-ME) in the repository", k)
		}
	}
	if len(secret.Data) > 0 {
		t.Error("secret.yaml: no base64 data in the repository")
	}

	checkPod := func(t *testing.T, d k8sDeployment, port int) k8sContainer {
		t.Helper()
		for k, v := range d.Spec.Selector.MatchLabels {
			if d.Spec.Template.Metadata.Labels[k] != v {
				t.Errorf("selector %s=%s does not match the pod labels", k, v)
			}
		}
		spec := d.Spec.Template.Spec
		if len(spec.Containers) != 1 {
			t.Fatalf("%d containers, want 1", len(spec.Containers))
		}
		c := spec.Containers[0]
		portByName := map[string]int{}
		for _, p := range c.Ports {
			portByName[p.Name] = p.ContainerPort
		}
		for name, pr := range map[string]*k8sProbe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if pr == nil || pr.HTTPGet == nil {
				t.Errorf("no HTTP %s probe", name)
				continue
			}
			got, _ := pr.HTTPGet.Port.(int)
			if s, ok := pr.HTTPGet.Port.(string); ok {
				got = portByName[s]
			}
			if got != port {
				t.Errorf("%s probe on port %v, want %d", name, pr.HTTPGet.Port, port)
			}
		}
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
			t.Fatal("no preStop sleep")
		}
		grace := time.Duration(spec.TerminationGracePeriodSeconds) * time.Second
		if need := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second + shutdown; grace <= need {
			t.Errorf("terminationGracePeriodSeconds %v must exceed preStop + SIMMATCH_SHUTDOWN_TIMEOUT (%v)", grace, need)
		}
		if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("resources = %+v, want cpu and memory requests and a memory limit", c.Resources)
		}
		var cmRef bool
		for _, e := range c.EnvFrom {
			cmRef = cmRef || (e.ConfigMapRef != nil && e.ConfigMapRef.Name == "simmatch-config")
		}
		if !cmRef {
			t.Error("the container does not load the simmatch-config ConfigMap")
		}
		// NATS_CA_FILE is ca.crt of NATS's TLS Secret, and only that: the
		// server's key stays out of the pod.
		var caMounted bool
		for _, m := range c.VolumeMounts {
			if m.MountPath != filepath.Dir(caFile) {
				continue
			}
			for _, v := range spec.Volumes {
				if v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == "simmatch-nats-tls" &&
					len(v.Secret.Items) == 1 && v.Secret.Items[0].Key == "ca.crt" && v.Secret.Items[0].Path == filepath.Base(caFile) {
					caMounted = true
				}
			}
		}
		if !caMounted {
			t.Errorf("NATS_CA_FILE %s is not ca.crt (alone) of the Secret simmatch-nats-tls, mounted", caFile)
		}
		return c
	}

	t.Run("processor", func(t *testing.T) {
		var d k8sDeployment
		findObject(t, docs, "Deployment", "simmatch-processor", &d)
		c := checkPod(t, d, 9091)
		if !slices.Equal(c.Command, []string{"simmatch-processor"}) {
			t.Errorf("command = %v", c.Command)
		}
		if d.Spec.Replicas != nil {
			t.Error("replicas is set: the HorizontalPodAutoscaler owns it, and every apply would reset it")
		}
		if c.Resources.Limits["cpu"] != "1" || c.Resources.Requests["cpu"] != "1" {
			t.Errorf("cpu request/limit = %s/%s, want one core", c.Resources.Requests["cpu"], c.Resources.Limits["cpu"])
		}
		// The model comes from the initContainer through a shared volume.
		spec := d.Spec.Template.Spec
		if len(spec.InitContainers) != 1 {
			t.Fatalf("%d initContainers, want the model copier", len(spec.InitContainers))
		}
		var shared bool
		for _, m := range c.VolumeMounts {
			for _, im := range spec.InitContainers[0].VolumeMounts {
				shared = shared || (m.Name == im.Name && m.MountPath == "/models")
			}
		}
		if !shared {
			t.Error("the processor does not mount the initContainer's model volume at /models")
		}
	})

	t.Run("bridge", func(t *testing.T) {
		var d k8sDeployment
		findObject(t, docs, "Deployment", "simmatch-bridge", &d)
		c := checkPod(t, d, 8000)
		// Prometheus scrapes the metrics listener; the API port's
		// /metrics (key names, per-key traffic) needs a scope.
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		var metricsPort int
		for _, p := range c.Ports {
			if p.Name == "metrics" {
				metricsPort = p.ContainerPort
			}
		}
		ann := d.Spec.Template.Metadata.Annotations
		if metricsPort == 0 || env["SIMMATCH_METRICS_ADDR"] != fmt.Sprintf(":%d", metricsPort) || ann["prometheus.io/port"] != fmt.Sprint(metricsPort) {
			t.Errorf("metrics port %d, SIMMATCH_METRICS_ADDR %q, scrape annotation port %q: want one metrics listener, scraped",
				metricsPort, env["SIMMATCH_METRICS_ADDR"], ann["prometheus.io/port"])
		}
		if env["SIMMATCH_METRICS_SCOPE"] == "" {
			t.Error("the API port's /metrics is public: set SIMMATCH_METRICS_SCOPE")
		}
		var svc struct {
			Spec struct {
				Selector map[string]string `yaml:"selector"`
				Ports    []struct {
					Port       int `yaml:"port"`
					TargetPort any `yaml:"targetPort"`
				} `yaml:"ports"`
			} `yaml:"spec"`
		}
		findObject(t, docs, "Service", "simmatch-bridge", &svc)
		for k, v := range svc.Spec.Selector {
			if d.Spec.Template.Metadata.Labels[k] != v {
				t.Errorf("Service selector %s=%s matches no bridge pod", k, v)
			}
		}
		if len(svc.Spec.Ports) != 1 {
			t.Fatalf("Service ports = %+v", svc.Spec.Ports)
		}
		var ok bool
		for _, p := range c.Ports {
			ok = ok || svc.Spec.Ports[0].TargetPort == p.Name || svc.Spec.Ports[0].TargetPort == p.ContainerPort
		}
		if !ok {
			t.Errorf("Service targetPort %v is not a port of the bridge", svc.Spec.Ports[0].TargetPort)
		}
	})

	t.Run("hpa", func(t *testing.T) {
		var hpa struct {
			APIVersion string `yaml:"apiVersion"`
			Spec       struct {
				ScaleTargetRef struct {
					Kind string `yaml:"kind"`
					Name string `yaml:"name"`
				} `yaml:"scaleTargetRef"`
				MinReplicas int `yaml:"minReplicas"`
				MaxReplicas int `yaml:"maxReplicas"`
				Metrics     []struct {
					Resource struct {
						Name string `yaml:"name"`
					} `yaml:"resource"`
				} `yaml:"metrics"`
			} `yaml:"spec"`
		}
		findObject(t, docs, "HorizontalPodAutoscaler", "simmatch-processor", &hpa)
		s := hpa.Spec
		if hpa.APIVersion != "autoscaling/v2" || s.ScaleTargetRef.Kind != "Deployment" || s.ScaleTargetRef.Name != "simmatch-processor" {
			t.Errorf("HPA %s targets %+v", hpa.APIVersion, s.ScaleTargetRef)
		}
		if s.MinReplicas != 2 || s.MaxReplicas != 10 || len(s.Metrics) != 1 || s.Metrics[0].Resource.Name != "cpu" {
			t.Errorf("HPA = %+v, want CPU-based, 2 to 10", s)
		}
	})

	t.Run("nats values", func(t *testing.T) {
		var v struct {
			Config struct {
				Cluster struct {
					Enabled  bool `yaml:"enabled"`
					Replicas int  `yaml:"replicas"`
				} `yaml:"cluster"`
				JetStream struct {
					Enabled bool `yaml:"enabled"`
				} `yaml:"jetstream"`
				NATS struct {
					TLS struct {
						Enabled    bool   `yaml:"enabled"`
						SecretName string `yaml:"secretName"`
					} `yaml:"tls"`
				} `yaml:"nats"`
				Merge map[string]any `yaml:"merge"`
			} `yaml:"config"`
			TLSCA struct {
				Enabled    bool   `yaml:"enabled"`
				SecretName string `yaml:"secretName"`
				Key        string `yaml:"key"`
			} `yaml:"tlsCA"`
		}
		loadYAML(t, "deploy/k8s/nats-values.yaml", &v)
		if !v.Config.Cluster.Enabled || v.Config.Cluster.Replicas != 3 || !v.Config.JetStream.Enabled {
			t.Errorf("nats-values.yaml config = %+v, want a 3-node cluster with JetStream", v.Config)
		}
		if tls := v.Config.NATS.TLS; !tls.Enabled || tls.SecretName != "simmatch-nats-tls" {
			t.Errorf("config.nats.tls = %+v, want TLS from the Secret simmatch-nats-tls", tls)
		}
		if v.TLSCA.SecretName != "simmatch-nats-tls" || v.TLSCA.Key != "ca.crt" {
			t.Errorf("tlsCA = %+v, want ca.crt of simmatch-nats-tls", v.TLSCA)
		}
		if _, ok := v.Config.Merge["allow_non_tls"]; ok {
			t.Error("nats-values.yaml lets clients in without TLS")
		}
	})

	t.Run("nats certificate", func(t *testing.T) {
		// cert-manager's Certificate makes the Secret the NATS chart and
		// the pods use, for the name of NATS_URL.
		var cert struct {
			Spec struct {
				SecretName string   `yaml:"secretName"`
				DNSNames   []string `yaml:"dnsNames"`
				IssuerRef  struct {
					Name string `yaml:"name"`
				} `yaml:"issuerRef"`
			} `yaml:"spec"`
		}
		findObject(t, docs, "Certificate", "simmatch-nats-tls", &cert)
		u, err := url.Parse(cm.Data["NATS_URL"])
		if err != nil {
			t.Fatal(err)
		}
		if cert.Spec.SecretName != "simmatch-nats-tls" || !slices.Contains(cert.Spec.DNSNames, u.Hostname()) {
			t.Errorf("Certificate = %+v, want the Secret simmatch-nats-tls for %s", cert.Spec, u.Hostname())
		}
		var issuer struct {
			Spec struct {
				CA *struct {
					SecretName string `yaml:"secretName"`
				} `yaml:"ca"`
			} `yaml:"spec"`
		}
		findObject(t, docs, "Issuer", cert.Spec.IssuerRef.Name, &issuer)
		var ca struct {
			Spec struct {
				IsCA       bool   `yaml:"isCA"`
				SecretName string `yaml:"secretName"`
			} `yaml:"spec"`
		}
		findObject(t, docs, "Certificate", "simmatch-nats-ca", &ca)
		if issuer.Spec.CA == nil || issuer.Spec.CA.SecretName != ca.Spec.SecretName || !ca.Spec.IsCA {
			t.Errorf("issuer %s = %+v, want a CA issuer signing with the CA Certificate's Secret %+v", cert.Spec.IssuerRef.Name, issuer.Spec, ca.Spec)
		}
	})
}

// ---- CI -------------------------------------------------------------------------

var (
	pinnedUses = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$`)
	versionTag = regexp.MustCompile(`^# v[0-9]+\.[0-9]+\.[0-9]+$`)
)

// usesNodes returns every `uses:` value in the workflow.
func usesNodes(n *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "uses" {
				out = append(out, n.Content[i+1])
			}
		}
	}
	for _, c := range n.Content {
		out = append(out, usesNodes(c)...)
	}
	return out
}

func TestWorkflow(t *testing.T) {
	raw := readFile(t, ".github/workflows/ci.yml")
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("ci.yml: %v", err)
	}

	uses := usesNodes(&doc)
	if len(uses) == 0 {
		t.Fatal("ci.yml uses no actions")
	}
	shas := map[string]string{}
	for _, u := range uses {
		if !pinnedUses.MatchString(u.Value) {
			t.Errorf("line %d: uses %q is not pinned to a full commit SHA", u.Line, u.Value)
			continue
		}
		if !versionTag.MatchString(u.LineComment) {
			t.Errorf("line %d: uses %s needs a trailing `# vX.Y.Z` comment, got %q", u.Line, u.Value, u.LineComment)
		}
		action, sha, _ := strings.Cut(u.Value, "@")
		if prev, ok := shas[action]; ok && prev != sha {
			t.Errorf("%s is pinned to two commits", action)
		}
		shas[action] = sha
	}
	for _, want := range []string{
		"actions/checkout", "actions/setup-go", "golangci/golangci-lint-action",
		"docker/setup-buildx-action", "docker/login-action", "docker/metadata-action", "docker/build-push-action",
	} {
		if _, ok := shas[want]; !ok {
			t.Errorf("ci.yml does not use %s", want)
		}
	}

	var wf struct {
		On struct {
			Push struct {
				Branches []string `yaml:"branches"`
				Tags     []string `yaml:"tags"`
			} `yaml:"push"`
			PullRequest struct {
				Branches []string `yaml:"branches"`
			} `yaml:"pull_request"`
		} `yaml:"on"`
		Jobs map[string]struct {
			Needs any `yaml:"needs"`
			Steps []struct {
				Uses string            `yaml:"uses"`
				Run  string            `yaml:"run"`
				If   string            `yaml:"if"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		t.Fatalf("ci.yml: %v", err)
	}
	if !slices.Contains(wf.On.Push.Branches, "main") || !slices.Contains(wf.On.Push.Tags, "v*") || !slices.Contains(wf.On.PullRequest.Branches, "main") {
		t.Errorf("triggers = %+v, want push to main, tags v*, pull requests to main", wf.On)
	}
	for _, j := range []string{"lint", "test", "docker"} {
		if _, ok := wf.Jobs[j]; !ok {
			t.Errorf("no %s job", j)
		}
	}
	var makeTest bool
	for _, s := range wf.Jobs["test"].Steps {
		makeTest = makeTest || strings.TrimSpace(s.Run) == "make test"
		if strings.HasPrefix(s.Uses, "actions/setup-go@") && s.With["go-version-file"] != "go.mod" {
			t.Errorf("setup-go must take the Go version from go.mod, got %v", s.With)
		}
	}
	if !makeTest {
		t.Error("the test job does not run `make test`")
	}
	for _, s := range wf.Jobs["docker"].Steps {
		switch {
		case strings.HasPrefix(s.Uses, "docker/login-action@"):
			if !strings.Contains(s.If, "refs/tags/v") || s.With["registry"] != "ghcr.io" {
				t.Errorf("login-action must log in to ghcr.io on tags only: if %q with %v", s.If, s.With)
			}
		case strings.HasPrefix(s.Uses, "docker/build-push-action@"):
			if !strings.Contains(s.With["push"], "refs/tags/v") {
				t.Errorf("build-push-action must push on tags only, push = %q", s.With["push"])
			}
			if s.With["cache-from"] == "" || s.With["cache-to"] == "" {
				t.Error("build-push-action has no build cache")
			}
		}
	}

	var lint struct {
		Version string `yaml:"version"`
	}
	loadYAML(t, ".golangci.yml", &lint)
	if lint.Version != "2" {
		t.Errorf(".golangci.yml version %q, want \"2\" (golangci-lint v2 format)", lint.Version)
	}
}
