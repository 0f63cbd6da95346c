package keyword

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// SyntheticProduct is a generated product: what a catalog indexes.
type SyntheticProduct struct {
	ID          string
	Description string
	Metadata    map[string]string // brand, category, color, price
}

// Fields is the product's indexed text: its description, then its metadata
// values in a fixed order.
func (p SyntheticProduct) Fields() []string {
	return []string{p.Description, p.Metadata["brand"], p.Metadata["category"], p.Metadata["color"], p.Metadata["price"]}
}

// Synthetic vocabulary: 200 brands, 300 product kinds (15 modifiers x 20
// nouns) in 6 categories,
// colors, sizes and filler words, built deterministically.
var (
	synBrands = func() []string {
		a := []string{"Kor", "Dew", "Mak", "Bo", "Ryo", "Mil", "Hit", "Fes", "Sta", "Cra", "Hus", "Gre", "Por", "Ski", "Met", "Vel", "Tor", "Zan", "Qui", "Bel"}
		b := []string{"vex", "alt", "ita", "sch", "bi", "wau", "achi", "tool", "nley", "ftsman"}
		var out []string
		for _, x := range a {
			for _, y := range b {
				out = append(out, x+y)
			}
		}
		return out // 200
	}()
	// synCategories is each noun's category (synKinds' nouns in order).
	synCategories = []string{"Power Tools", "Power Tools", "Power Tools", "Power Tools", "Power Tools", "Power Tools", "Hand Tools", "Hand Tools", "Hand Tools", "Hand Tools",
		"Garden", "Garden", "Garden", "Kitchen", "Kitchen", "Kitchen", "Bathroom", "Bathroom", "Lighting", "Lighting"}
	synKinds = func() []string {
		mods := []string{"cordless", "compact", "brushless", "heavy-duty", "portable", "digital", "electric", "manual", "magnetic", "adjustable", "folding", "stainless", "wireless", "rechargeable", "industrial"}
		nouns := []string{"drill", "impact driver", "circular saw", "jigsaw", "sander", "grinder", "wrench", "ratchet", "screwdriver set", "hammer",
			"lawn mower", "hedge trimmer", "leaf blower", "kettle", "blender", "toaster", "faucet", "shower head", "led bulb", "floodlight"}
		var out []string
		for _, n := range nouns {
			for _, m := range mods {
				out = append(out, m+" "+n)
			}
		}
		return out // 300
	}()
	synColors = []string{"black", "white", "red", "blue", "yellow", "green", "orange", "gray", "silver", "brushed nickel", "chrome", "matte black", "navy", "beige", "bronze", "teal", "purple", "pink", "graphite", "ivory"}
	synSizes  = []string{"20V", "18V", "12V", "40V", "3/8-inch", "1/2-inch", "1/4-inch", "10-inch", "7-1/4-inch", "1.5 kg", "2.5 kg", "500W", "1200W", "60W", "1.7 L", "5-piece", "24-piece", "100 ft", "16 oz", "2-pack"}
	synFiller = []string{"with", "and", "for", "pro", "kit", "includes", "battery", "charger", "case", "professional", "home", "quick", "variable", "speed", "lightweight", "ergonomic", "grip", "high", "performance", "warranty",
		"durable", "premium", "series", "max", "xr", "edition", "tool-only", "bag", "led", "light"}
)

// synCategory is kind's category: kinds are laid out by noun, 15 per noun.
func synCategory(kind int) string { return synCategories[kind/15] }

// synModel is a model number like "DCD771C2": a brand prefix, digits, and
// often a letter and digit. Drawing it from r makes about 10^6 distinct ones.
func synModel(r *rand.Rand, brand string) string {
	m := fmt.Sprintf("%s%c%d", strings.ToUpper(brand[:2]), 'A'+rune(r.IntN(26)), 100+r.IntN(900))
	if r.IntN(3) > 0 {
		m += fmt.Sprintf("%c%d", 'A'+rune(r.IntN(26)), r.IntN(10))
	}
	return m
}

func synRand(seed, i uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, i)) }

// SyntheticProductAt is product i of the synthetic catalog with the given
// seed, generated on its own (so a million need not be held at once): a
// line like "Korvex cordless drill DCD771C2 20V, yellow, with battery kit"
// (brand, kind, model number, a size or two, a color, a few filler words)
// and metadata brand, category, color and price.
func SyntheticProductAt(seed uint64, i int) SyntheticProduct {
	p, _ := synProduct(seed, i)
	return p
}

// synProduct is SyntheticProductAt and the product's model number.
func synProduct(seed uint64, i int) (SyntheticProduct, string) {
	r := synRand(seed, uint64(i))
	bi, ki := r.IntN(len(synBrands)), r.IntN(len(synKinds))
	brand, kind, color := synBrands[bi], synKinds[ki], synColors[r.IntN(len(synColors))]
	var b strings.Builder
	model := synModel(r, brand)
	b.WriteString(brand + " " + kind + " " + model + " " + synSizes[r.IntN(len(synSizes))])
	if r.IntN(2) == 0 {
		b.WriteString(" " + synSizes[r.IntN(len(synSizes))])
	}
	b.WriteString(", " + color + ",")
	for n := 3 + r.IntN(5); n > 0; n-- {
		b.WriteString(" " + synFiller[r.IntN(len(synFiller))])
	}
	return SyntheticProduct{
		ID:          fmt.Sprintf("p%08d", i),
		Description: b.String(),
		Metadata: map[string]string{
			"brand": brand, "category": synCategory(ki), "color": color,
			"price": fmt.Sprintf("%d.%02d", 5+r.IntN(500), r.IntN(100)),
		},
	}, model
}

// SyntheticProducts is products 0..n-1 of the synthetic catalog.
func SyntheticProducts(n int, seed uint64) []SyntheticProduct {
	out := make([]SyntheticProduct, n)
	for i := range out {
		out[i] = SyntheticProductAt(seed, i)
	}
	return out
}

// SyntheticQueries returns n queries for a synthetic catalog of rows
// products with the given seed: a mix of kind words ("cordless drill"),
// brand and kind ("korvex sander"), kind with a size or color
// ("20v impact driver", "red kettle") and model numbers of products in the
// catalog (exact identifier look-ups).
func SyntheticQueries(n int, rows int, seed uint64) []string {
	r := synRand(seed, 1<<63)
	out := make([]string, n)
	for i := range out {
		kind := synKinds[r.IntN(len(synKinds))]
		switch r.IntN(5) {
		case 0:
			out[i] = kind
		case 1:
			out[i] = synBrands[r.IntN(len(synBrands))] + " " + kind[strings.LastIndexByte(kind, ' ')+1:]
		case 2:
			out[i] = synSizes[r.IntN(len(synSizes))] + " " + kind
		case 3:
			out[i] = synColors[r.IntN(len(synColors))] + " " + kind[strings.IndexByte(kind, ' ')+1:]
		default: // the model number of a product in the catalog
			_, out[i] = synProduct(seed, r.IntN(rows))
		}
	}
	return out
}
