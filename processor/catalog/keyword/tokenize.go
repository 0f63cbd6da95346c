package keyword

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxTermBytes is the longest term indexed or searched, in bytes after
// lowercasing; longer terms are dropped (their parts are still kept).
const MaxTermBytes = 64

// Tokenize splits text into the terms that are indexed and searched, in
// order, repeated as often as they occur. See the package doc for the rules.
func Tokenize(text string) []string {
	var terms []string
	tokenize(text, func(t string) { terms = append(terms, t) })
	return terms
}

// wordRune is a rune that words are made of: a letter, a decimal digit or a
// combining mark (so a decomposed "é" stays one word).
func wordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

func joiner(r rune) bool {
	return r == '-' || r == '/' || r == '.' || r == '_' || r == '\''
}

func digit(r rune) bool {
	return '0' <= r && r <= '9' || r >= utf8.RuneSelf && unicode.IsDigit(r)
}

// tokenize calls emit for every term of text: each token, then (when it is
// a compound) each of its parts. emit's argument is only valid during the
// call when it had to be lowercased into a scratch buffer; callers that keep
// it must copy it (Tokenize's strings are fresh or substrings of text).
func tokenize(text string, emit func(string)) {
	i := 0
	for i < len(text) {
		r, n := utf8.DecodeRuneInString(text[i:])
		if !wordRune(r) {
			i += n
			continue
		}
		// A token: word runs joined by single joiners that sit between word runes.
		start := i
		i += n
		compound := false
		for i < len(text) {
			r, n = utf8.DecodeRuneInString(text[i:])
			if wordRune(r) {
				i += n
				continue
			}
			if joiner(r) && i+n < len(text) {
				if r2, _ := utf8.DecodeRuneInString(text[i+n:]); wordRune(r2) {
					compound = true
					i += n
					continue
				}
			}
			break
		}
		tok := text[start:i]
		emitTerm(tok, emit)
		if compound {
			emitParts(tok, emit)
		}
	}
}

// emitParts emits the parts of a compound token: its word runs, split at
// every joiner except a '.' between two digits (a decimal point: "1.5" is
// one part). A compound with a single part (a plain decimal) emits nothing.
func emitParts(tok string, emit func(string)) {
	var parts [16]string
	ps := parts[:0]
	start := 0
	prev := rune(-1)
	for j := 0; j < len(tok); {
		r, n := utf8.DecodeRuneInString(tok[j:])
		if joiner(r) {
			next, _ := utf8.DecodeRuneInString(tok[j+n:])
			if !(r == '.' && digit(prev) && digit(next)) {
				ps = append(ps, tok[start:j])
				start = j + n
			}
		}
		prev = r
		j += n
	}
	if len(ps) == 0 {
		return
	}
	ps = append(ps, tok[start:])
	for _, p := range ps {
		emitTerm(p, emit)
	}
}

func emitTerm(t string, emit func(string)) {
	t = lower(t)
	if len(t) == 0 || len(t) > MaxTermBytes {
		return
	}
	emit(t)
}

// lower lowercases t, without allocating when it is lowercase ASCII already.
func lower(t string) string {
	for k := 0; k < len(t); k++ {
		c := t[k]
		if c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			return strings.ToLower(t)
		}
	}
	return t
}
