package security

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simmatch/simmatch/internal/testenv"
)

// writeKeys writes content to a keys file in dir and returns its path.
func writeKeys(t testing.TB, dir, content string) string {
	t.Helper()
	p := filepath.Join(dir, "keys")
	testenv.WriteFile(t, p, []byte(content))
	return p
}

func TestLimiterRetryAfter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter()
	l.now = func() time.Time { return now }
	lim := RateLimit{Rate: 2, Burst: 3}
	for i := range 3 {
		if ok, _ := l.Allow("k", lim); !ok {
			t.Fatalf("request %d refused within the burst", i+1)
		}
	}
	ok, wait := l.Allow("k", lim)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("got %v %v, want refused with 500ms to wait", ok, wait)
	}
	if RetryAfterSeconds(wait) != 1 {
		t.Fatalf("Retry-After %d, want 1", RetryAfterSeconds(wait))
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.Allow("k", lim); !ok {
		t.Fatal("refused after the token came back")
	}
	// A changed limit (keys file reloaded) starts a full bucket.
	if ok, _ := l.Allow("k", RateLimit{Rate: 1, Burst: 1}); !ok {
		t.Fatal("refused after the limit changed")
	}
	if ok, _ := l.Allow("other", RateLimit{}); !ok {
		t.Fatal("a zero rate must not limit")
	}
}
func TestParseKeys(t *testing.T) {
	h := HashKey("k")
	tests := []struct {
		name    string
		file    string
		want    int
		wantErr string
	}{
		{"empty", "", 0, ""},
		{"comments only", "# nothing\n\n   # still nothing\n", 0, ""},
		{"one key", "a " + h + " predict\n", 1, ""},
		{"options", "a " + h + " predict,jobs rate=2.5 burst=10\n", 1, ""},
		{"uppercase hash", "a " + strings.ToUpper(h) + " admin", 1, ""},
		{"too few fields", "a " + h + "\n", 0, "line 1: want <name>"},
		{"the key instead of its hash", "# c\na sk-secret predict\n", 0, "line 2: hash"},
		{"short hash", "a " + h[:60] + " predict", 0, "line 1: hash"},
		{"unknown scope", "a " + h + " predict,write", 0, `line 1: scope "write"`},
		{"empty scope", "a " + h + " predict,", 0, `line 1: scope ""`},
		{"bad name", "a/b " + h + " predict", 0, "line 1: name"},
		{"duplicate name", "a " + h + " predict\na " + HashKey("j") + " admin", 0, "line 2: name \"a\" is already used on line 1"},
		{"duplicate hash", "a " + h + " predict\nb " + h + " admin", 0, "line 2: the same key hash"},
		{"bad rate", "a " + h + " predict rate=fast", 0, "line 1: rate"},
		{"negative burst", "a " + h + " predict burst=-1", 0, "line 1: burst"},
		{"unknown option", "a " + h + " predict color=red", 0, "line 1: field 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := parseKeys([]byte(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "sk-secret") || strings.Contains(err.Error(), h[:16]) {
					t.Fatalf("error quotes the line: %v", err)
				}
				return
			}
			if err != nil || len(keys) != tt.want {
				t.Fatalf("got %d keys, %v; want %d", len(keys), err, tt.want)
			}
		})
	}
}
func TestOpenKeyStoreErrors(t *testing.T) {
	if _, err := OpenKeyStore(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Fatal("a missing file must fail at start")
	}
	if _, err := OpenKeyStore(writeKeys(t, t.TempDir(), "a b c\n"), nil); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("err %v, want line 1", err)
	}
}
func TestHashKey(t *testing.T) {
	// printf %s abc | sha256sum
	if got := HashKey("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashKey(abc) = %s", got)
	}
}

// The keys-file example in docs/security.md parses.
func TestSecurityDocKeysExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "```\n# <name> <sha256 hex of the key>")
	if start < 0 {
		t.Fatal("docs/security.md: no keys-file example")
	}
	block := doc[start+4:]
	block = block[:strings.Index(block, "```")]
	keys, err := parseKeys([]byte(block))
	if err != nil || len(keys) != 3 {
		t.Fatalf("docs/security.md example: %d keys, %v", len(keys), err)
	}
}

// A key's rate= and burst= each override the global setting on their own.
func TestKeyLimitOverrides(t *testing.T) {
	h := HashKey("k")
	def := RateLimit{Rate: 2, Burst: 1}
	tests := []struct {
		line string
		want RateLimit
	}{
		{"a " + h + " predict", def},
		{"a " + h + " predict burst=5", RateLimit{Rate: 2, Burst: 5}},
		{"a " + h + " predict rate=0.5", RateLimit{Rate: 0.5, Burst: 1}},
		{"a " + h + " predict rate=0 burst=9", RateLimit{Rate: 0, Burst: 9}},
	}
	for _, tt := range tests {
		keys, err := parseKeys([]byte(tt.line))
		if err != nil {
			t.Fatal(err)
		}
		if got := keys[0].Limit(def); got != tt.want {
			t.Errorf("%q: limit %+v, want %+v", tt.line, got, tt.want)
		}
	}
}
