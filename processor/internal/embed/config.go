package embed

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Pooling is how token embeddings become one sentence embedding.
type Pooling string

// The pooling modes of sentence-transformers' Pooling module.
const (
	PoolingMean        Pooling = "mean"
	PoolingCLS         Pooling = "cls"
	PoolingMax         Pooling = "max"
	PoolingMeanSqrtLen Pooling = "mean_sqrt_len_tokens"
)

// Layout is what a model directory says about its pipeline. Files that are
// missing fall back to sentence-transformers' documented defaults: mean
// pooling, no normalization, max_seq_length from config.json's
// max_position_embeddings (else 512).
type Layout struct {
	Dir           string
	ONNXPath      string
	TokenizerPath string
	MaxSeqLength  int
	Pooling       Pooling
	Normalize     bool
	DoLowerCase   bool
	// Dimensions from 1_Pooling/config.json, or 0 when unknown until the first run.
	Dimensions int
	// Prompts are config_sentence_transformers.json's prompts by name
	// ("query": bge-small-en-v1.5's retrieval instruction), prepended to the
	// texts of that kind; DefaultPromptName names the one for texts of no
	// other kind ("" for none). See Prompt.
	Prompts           map[string]string
	DefaultPromptName string
}

// Prompt is the prompt for a text of kind (embedding.Query,
// embedding.Document, or "" for none given), as sentence-transformers picks
// it: the prompt named kind, else the default prompt, else "".
func (l Layout) Prompt(kind string) string {
	if p, ok := l.Prompts[kind]; ok && kind != "" {
		return p
	}
	return l.Prompts[l.DefaultPromptName]
}

// onnxCandidates are the places sentence-transformers and Optimum exports put the graph.
var onnxCandidates = []string{"model.onnx", "onnx/model.onnx"}

// ReadLayout reads the sentence-transformers files in dir.
func ReadLayout(dir string) (Layout, error) {
	l := Layout{Dir: dir, Pooling: PoolingMean}
	for _, c := range onnxCandidates {
		if p := filepath.Join(dir, c); fileExists(p) {
			l.ONNXPath = p
			break
		}
	}
	if l.ONNXPath == "" {
		return l, fmt.Errorf("embed: model dir %s: no ONNX graph (looked for %s); run `make deps` to fetch the default model", dir, strings.Join(onnxCandidates, ", "))
	}
	l.TokenizerPath = filepath.Join(dir, "tokenizer.json")
	if !fileExists(l.TokenizerPath) {
		return l, fmt.Errorf("embed: model dir %s: no tokenizer.json (a Hugging Face fast tokenizer file is required)", dir)
	}

	var cfg struct {
		MaxPositionEmbeddings int `json:"max_position_embeddings"`
	}
	if err := readJSON(filepath.Join(dir, "config.json"), &cfg); err != nil {
		return l, err
	}
	l.MaxSeqLength = 512
	if cfg.MaxPositionEmbeddings > 0 && cfg.MaxPositionEmbeddings < l.MaxSeqLength {
		l.MaxSeqLength = cfg.MaxPositionEmbeddings
	}

	var st struct {
		MaxSeqLength int  `json:"max_seq_length"`
		DoLowerCase  bool `json:"do_lower_case"`
	}
	if err := readJSON(filepath.Join(dir, "sentence_bert_config.json"), &st); err != nil {
		return l, err
	}
	if st.MaxSeqLength > 0 {
		l.MaxSeqLength = st.MaxSeqLength
	}
	l.DoLowerCase = st.DoLowerCase

	var modules []struct {
		Path string `json:"path"`
		Type string `json:"type"`
	}
	if err := readJSON(filepath.Join(dir, "modules.json"), &modules); err != nil {
		return l, err
	}
	poolingDir := "1_Pooling"
	for _, m := range modules {
		switch {
		case strings.HasSuffix(m.Type, ".Normalize"):
			l.Normalize = true
		case strings.HasSuffix(m.Type, ".Pooling"):
			poolingDir = m.Path
		}
	}

	var stc struct {
		Prompts           map[string]string `json:"prompts"`
		DefaultPromptName *string           `json:"default_prompt_name"`
	}
	stPath := filepath.Join(dir, "config_sentence_transformers.json")
	if err := readJSON(stPath, &stc); err != nil {
		return l, err
	}
	l.Prompts = stc.Prompts
	if stc.DefaultPromptName != nil {
		l.DefaultPromptName = *stc.DefaultPromptName
		if _, ok := l.Prompts[l.DefaultPromptName]; !ok {
			return l, fmt.Errorf("embed: %s: default_prompt_name %q names no prompt", stPath, l.DefaultPromptName)
		}
	}

	var pc struct {
		Dim         int  `json:"word_embedding_dimension"`
		CLS         bool `json:"pooling_mode_cls_token"`
		Mean        bool `json:"pooling_mode_mean_tokens"`
		Max         bool `json:"pooling_mode_max_tokens"`
		MeanSqrtLen bool `json:"pooling_mode_mean_sqrt_len_tokens"`
		// IncludePrompt false leaves the prompt's tokens out of the pooling.
		IncludePrompt *bool `json:"include_prompt"`
	}
	if err := readJSON(filepath.Join(dir, poolingDir, "config.json"), &pc); err != nil {
		return l, err
	}
	l.Dimensions = pc.Dim
	n := 0
	for mode, on := range map[Pooling]bool{PoolingCLS: pc.CLS, PoolingMean: pc.Mean, PoolingMax: pc.Max, PoolingMeanSqrtLen: pc.MeanSqrtLen} {
		if on {
			l.Pooling = mode
			n++
		}
	}
	if n > 1 {
		return l, fmt.Errorf("embed: %s: several pooling modes at once (concatenated pooling) are not supported", filepath.Join(dir, poolingDir, "config.json"))
	}
	if pc.IncludePrompt != nil && !*pc.IncludePrompt && len(l.Prompts) > 0 && l.Pooling != PoolingCLS {
		return l, fmt.Errorf("embed: %s: include_prompt false (pooling without the prompt's tokens) is not supported", filepath.Join(dir, poolingDir, "config.json"))
	}
	return l, nil
}

// readJSON decodes path into v; a missing file leaves v unchanged.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("embed: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("embed: %s: %w", path, err)
	}
	return nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
