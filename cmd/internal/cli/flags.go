// Package cli holds what the simmatch commands share: flags with
// SIMMATCH_* environment equivalents, logging, tracing and metrics set-up.
// It has no cgo dependency, so the bridge command still builds with
// CGO_ENABLED=0.
package cli

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/simmatch/simmatch/contracts"
)

// Flags is a flag set whose flags each have an environment variable that
// supplies the default. Precedence: command-line flag, then environment, then
// the built-in default.
type Flags struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
	// fromEnv holds the flags whose environment variable is set (not empty).
	fromEnv map[string]bool
}

// NewFlags returns an empty flag set for the command name.
func NewFlags(name string, getenv func(string) string, out io.Writer) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &Flags{fs: fs, getenv: getenv, fromEnv: map[string]bool{}}
}

// env is the value of flag name's environment variable, and whether it is
// set (not empty).
func (f *Flags) env(name, env string) (string, bool) {
	if env == "" {
		return "", false
	}
	v := f.getenv(env)
	if v != "" {
		f.fromEnv[name] = true
	}
	return v, v != ""
}

// Explicit reports whether flag name was given, on the command line or by
// its environment variable (not empty), rather than left at its built-in
// default. It is meaningful after Parse.
func (f *Flags) Explicit(name string) bool {
	if f.fromEnv[name] {
		return true
	}
	given := false
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == name {
			given = true
		}
	})
	return given
}

func usage(u, env string) string {
	if env == "" {
		return u
	}
	return u + " [$" + env + "]"
}

// String defines a string flag.
func (f *Flags) String(p *string, name, env, def, u string) {
	if v, ok := f.env(name, env); ok {
		def = v
	}
	f.fs.StringVar(p, name, def, usage(u, env))
}

// Int defines an int flag.
func (f *Flags) Int(p *int, name, env string, def int, u string) {
	if v, ok := f.env(name, env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("$%s=%q: want an integer", env, v))
		} else {
			def = n
		}
	}
	f.fs.IntVar(p, name, def, usage(u, env))
}

// Float64 defines a float flag.
func (f *Flags) Float64(p *float64, name, env string, def float64, u string) {
	if v, ok := f.env(name, env); ok {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("$%s=%q: want a number", env, v))
		} else {
			def = x
		}
	}
	f.fs.Float64Var(p, name, def, usage(u, env))
}

// Duration defines a duration flag (e.g. 10s, 250ms).
func (f *Flags) Duration(p *time.Duration, name, env string, def time.Duration, u string) {
	if v, ok := f.env(name, env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("$%s=%q: want a duration such as 10s or 250ms", env, v))
		} else {
			def = d
		}
	}
	f.fs.DurationVar(p, name, def, usage(u, env))
}

// Bool defines a boolean flag.
func (f *Flags) Bool(p *bool, name, env string, def bool, u string) {
	if v, ok := f.env(name, env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("$%s=%q: want true or false", env, v))
		} else {
			def = b
		}
	}
	f.fs.BoolVar(p, name, def, usage(u, env))
}

// Args are the arguments left after the flags.
func (f *Flags) Args() []string { return f.fs.Args() }

// Parse parses args; bad environment values are reported here too.
func (f *Flags) Parse(args []string) error {
	if len(f.errs) > 0 {
		return fmt.Errorf("configuration: %w", f.errs[0])
	}
	return f.fs.Parse(args)
}

// Limits registers the request limits, which the bridge and the processors share.
func (f *Flags) Limits(l *contracts.Limits) {
	d := contracts.DefaultLimits
	f.Int(&l.MaxQueries, "max-queries", "SIMMATCH_MAX_QUERIES", d.MaxQueries, "most query texts per request")
	f.Int(&l.MaxDescriptions, "max-descriptions", "SIMMATCH_MAX_DESCRIPTIONS", d.MaxDescriptions, "most product descriptions per request")
	f.Int(&l.MaxTextChars, "max-text-chars", "SIMMATCH_MAX_TEXT_CHARS", d.MaxTextChars, "most characters per text")
	f.Int(&l.MaxBodyBytes, "max-body-bytes", "SIMMATCH_MAX_BODY_BYTES", d.MaxBodyBytes, "largest request body in bytes (also capped by the NATS server's max_payload)")
}

// Common are the settings every command has.
type Common struct {
	NATSURL string
	// NATS holds the credentials and TLS files for the NATS connection.
	NATS            NATSAuth
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration
}

// Common registers the shared settings. natsURL false leaves out -nats-url
// (the all-in-one embeds its server).
func (f *Flags) Common(c *Common, natsURL bool) {
	if natsURL {
		f.String(&c.NATSURL, "nats-url", "NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated; nats://user:password@host also works")
		f.NATSAuth(&c.NATS)
	}
	f.String(&c.LogLevel, "log-level", "SIMMATCH_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	f.String(&c.LogFormat, "log-format", "SIMMATCH_LOG_FORMAT", "json", "log format: json or text")
	f.Duration(&c.ShutdownTimeout, "shutdown-timeout", "SIMMATCH_SHUTDOWN_TIMEOUT", 30*time.Second, "how long SIGTERM waits for in-flight requests")
}

// Strings defines a flag that may be given several times; each use appends.
func (f *Flags) Strings(p *[]string, name, u string) {
	f.fs.Func(name, u+" (repeatable)", func(s string) error { *p = append(*p, s); return nil })
}

// SetUsage replaces the -help text's header (what precedes the flags).
func (f *Flags) SetUsage(header string) {
	f.fs.Usage = func() {
		fmt.Fprint(f.fs.Output(), header)
		fmt.Fprintln(f.fs.Output(), "\nFlags:")
		f.fs.PrintDefaults()
	}
}

// ParseInterleaved parses args where flags and positional arguments may
// mix ("simmatch match 'a query' -top-k 3"); it returns the positional ones.
// "--" ends the flags.
func (f *Flags) ParseInterleaved(args []string) ([]string, error) {
	if len(f.errs) > 0 {
		return nil, fmt.Errorf("configuration: %w", f.errs[0])
	}
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, err
		}
		rest := f.fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
