package contracts

// LongTextOptions says what happens to a text longer than the model's window
// (max_seq_length tokens, special tokens included; 256 for
// all-MiniLM-L6-v2). By default it is truncated, and the answer lists it.
type LongTextOptions struct {
	// Truncate false refuses a text longer than the window (invalid_request,
	// naming the text and its token count) instead of truncating it; nil
	// means true.
	Truncate *bool `json:"truncate,omitempty"`
	// LongText is LongTextTruncate (the default when empty) or LongTextChunk:
	// a longer text is embedded as overlapping windows of the model's
	// window (ChunkStride content tokens apart, each with the model's special
	// tokens), whose embeddings are averaged (weighted by their tokens) and
	// normalized. Texts within the window are embedded exactly as without it.
	LongText string `json:"long_text,omitempty"`
}

// The modes of LongTextOptions.LongText.
const (
	LongTextTruncate = "truncate"
	LongTextChunk    = "chunk"
)

// ChunkStride is how many content tokens apart the windows of a chunked
// text start (the windows overlap by the rest of the window).
const ChunkStride = 192

// Refuses reports whether a long text is refused rather than truncated or chunked.
func (l LongTextOptions) Refuses() bool {
	return l.Truncate != nil && !*l.Truncate && l.LongText != LongTextChunk
}

// Chunks reports whether a long text is chunked.
func (l LongTextOptions) Chunks() bool { return l.LongText == LongTextChunk }

// Validate checks the mode.
func (l LongTextOptions) Validate() error {
	switch l.LongText {
	case "", LongTextTruncate, LongTextChunk:
		return nil
	}
	return FieldError("long_text", 0, "want %q or %q (or leave it out), got %q", LongTextTruncate, LongTextChunk, l.LongText)
}

// Truncated lists, per text field of a similarity request, the indexes of
// the texts the model read truncated.
type Truncated struct {
	Query               []int `json:"query,omitempty"`
	ProductDescriptions []int `json:"product_descriptions,omitempty"`
}
