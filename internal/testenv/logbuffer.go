package testenv

import (
	"bytes"
	"sync"
)

// LogBuffer is a bytes.Buffer safe for the concurrent writes of a logger:
// give it to slog.NewTextHandler or NewJSONHandler and read what was logged.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes is a copy of what was written so far.
func (b *LogBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// String is what was written so far.
func (b *LogBuffer) String() string { return string(b.Bytes()) }
