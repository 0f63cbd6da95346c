package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// HintsFile is a version directory's optional serving hints, read when the
// version loads: {"max_batch_tokens": 128}. `make deps` writes one for int8,
// whose best batch is smaller than fp32's (measured end to end). What an
// operator configures (SIMMATCH_MAX_BATCH_TOKENS) wins over a hint.
const HintsFile = "simmatch.json"

// Hints are a version's serving hints.
type Hints struct {
	// MaxBatchTokens is the scheduler's batch budget for this version when
	// none is configured.
	MaxBatchTokens int `json:"max_batch_tokens,omitempty"`
}

// readHints reads dir's HintsFile; none is no hints.
func readHints(dir string) (Hints, error) {
	var h Hints
	b, err := os.ReadFile(filepath.Join(dir, HintsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return h, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&h); err != nil {
		return h, fmt.Errorf("%s: %w (want {\"max_batch_tokens\": <positive integer>})", HintsFile, err)
	}
	if h.MaxBatchTokens < 0 || h.MaxBatchTokens > 1<<16 {
		return h, fmt.Errorf("%s: max_batch_tokens %d: want 1 to 65536", HintsFile, h.MaxBatchTokens)
	}
	return h, nil
}
