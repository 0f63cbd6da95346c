package cli

import "time"

// Bridge are the HTTP bridge's settings.
type Bridge struct {
	HTTPAddr       string
	RequestTimeout time.Duration
}

// Bridge registers the bridge flags.
func (f *Flags) Bridge(s *Bridge) {
	f.String(&s.HTTPAddr, "http-addr", "SIMMATCH_HTTP_ADDR", ":8000", "HTTP listen address")
	f.Duration(&s.RequestTimeout, "request-timeout", "SIMMATCH_REQUEST_TIMEOUT", 10*time.Second, "how long /predict waits for a processor")
}
