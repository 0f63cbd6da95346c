package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/simmatch/simmatch/cmd/internal/cli"
)

const embedUsage = `Usage: simmatch embed [flags] [TEXT...]

Prints the embedding of each text (with no TEXT, of each line of stdin): one
JSON array per line, in order. -json prints one document with the texts.
`

func runEmbed(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var af apiFlags
	f := cli.NewFlags("simmatch embed", getenv, stdout)
	af.register(f)
	f.SetUsage(embedUsage)
	texts, err := f.ParseInterleaved(args)
	if err != nil {
		return err
	}
	if len(texts) == 0 {
		if texts, err = readLines("-", stdin); err != nil {
			return err
		}
		if len(texts) == 0 {
			return usageError(errors.New("embed: no text; give TEXT arguments or lines on stdin"))
		}
	}
	a, err := newAPI(af)
	if err != nil {
		return err
	}
	var vecs [][]float32
	if err := a.do(ctx, "POST", "/embed", map[string]any{"inputs": texts}, &vecs); err != nil {
		return err
	}
	if af.json {
		type item struct {
			Text      string    `json:"text"`
			Embedding []float32 `json:"embedding"`
		}
		out := make([]item, len(texts))
		for i := range texts {
			out[i] = item{texts[i], vecs[i]}
		}
		return writeJSON(stdout, map[string]any{"embeddings": out})
	}
	for _, v := range vecs {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintln(stdout, string(b)); err != nil {
			return err
		}
	}
	return nil
}
