package loadgen

import (
	"fmt"
	"strings"
)

// Sentences generates product-like descriptions and shopper-like queries,
// deterministically from a seed. Description(n) and Query(n) are distinct
// for every n below the size of their space (about 58 million descriptions
// and 1.7 million queries): n is mapped through a bijection of that space
// (an affine permutation), then read as mixed-radix digits that pick each
// word, so neighbours differ in several words, like a real catalog.
type Sentences struct{ seed uint64 }

// NewSentences returns the generator for seed.
func NewSentences(seed uint64) *Sentences { return &Sentences{seed: seed} }

var (
	adjectives = []string{"Heavy-duty", "Compact", "Lightweight", "Premium", "Waterproof", "Cordless", "Foldable",
		"Ergonomic", "Professional", "Portable", "Adjustable", "Rechargeable", "Stackable", "Insulated", "Vintage-style",
		"Ultra-thin", "Rugged", "Eco-friendly", "Wireless", "Handcrafted", "Magnetic", "Reinforced", "Breathable",
		"Quick-dry", "Non-slip", "Smart", "Modular", "Energy-efficient", "Classic", "Extra-large"}
	materials = []string{"stainless steel", "bamboo", "aluminium", "cast iron", "ceramic", "walnut", "recycled plastic",
		"carbon fibre", "tempered glass", "silicone", "leather", "canvas", "merino wool", "brushed brass", "oak",
		"ripstop nylon", "copper", "titanium", "cotton", "cork"}
	products = []string{"drill driver", "frying pan", "camping tent", "backpack", "desk lamp", "office chair",
		"water bottle", "bluetooth speaker", "hiking boots", "cutting board", "garden hose", "dog bed", "coffee grinder",
		"rain jacket", "mechanical keyboard", "yoga mat", "tool box", "kitchen scale", "bike helmet", "sleeping bag",
		"wall clock", "shower head", "mixing bowl", "laptop stand", "phone case", "travel mug", "picnic blanket",
		"headlamp", "saucepan", "baby monitor", "air purifier", "bird feeder", "wine rack", "plant pot", "jump starter",
		"beard trimmer", "fishing rod", "ski goggles", "step ladder", "label printer"}
	features = []string{"with a non-slip grip", "with a two-year warranty", "with USB-C charging", "with a lifetime guarantee",
		"with a detachable strap", "with a soft-close lid", "with a built-in LED light", "with three speed settings",
		"with a carry case included", "with a magnetic mount", "with a dishwasher-safe finish", "with reinforced seams",
		"with an auto shut-off timer", "with a quick-release clamp", "with a removable liner", "with a digital display",
		"with an anti-scratch coating", "with noise reduction", "with a spare battery", "with adjustable height",
		"with a hanging loop", "with a twist-lock cap", "with a wide base for stability", "with thermal insulation",
		"with replaceable filters", "with a foldable handle", "with a 10-metre range", "with splash protection",
		"with a storage pouch", "with a child-safety lock"}
	uses = []string{"for weekend camping", "for small apartments", "for professional kitchens", "for daily commuting",
		"for outdoor workshops", "for long hikes", "for home offices", "for busy families", "for winter mornings",
		"for beach trips", "for garden projects", "for road trips", "for night shifts", "for gym sessions",
		"for first-time parents", "for older pets", "for rainy climates", "for holiday gifts", "for student dorms",
		"for festival weekends"}
	colours = []string{"in matte black", "in forest green", "in ocean blue", "in sand beige", "in slate grey",
		"in cherry red", "in arctic white", "in burnt orange", "in charcoal", "in olive"}
	queryForms = []string{"What %s %s can I use %s?", "Looking for a %s %s %s", "best %s %s %s", "I need a %s %s %s",
		"cheap %s %s %s", "recommend a %s %s %s", "which %s %s works well %s", "gift idea: a %s %s %s"}
)

// shapes is the number of sentence shapes of a description.
const shapes = 4

// descSpace and querySpace are the sizes of the two sentence spaces.
var (
	descSpace  = uint64(len(adjectives) * len(materials) * len(products) * len(features) * len(uses) * shapes)
	querySpace = uint64(len(queryForms) * len(adjectives) * len(products) * len(uses) * 9)
)

// permute maps n (mod size) to a distinct value of [0, size): an affine map
// with a multiplier coprime to size, offset by the seed.
func permute(n, size, seed uint64) uint64 {
	const mul = 2654435761 // a prime that divides neither space: coprime to both
	return (n%size*(mul%size) + seed*0x9E3779B97F4A7C15%size) % size
}

// digits splits x into mixed-radix digits, least significant first.
func digits(x uint64, radix ...int) []int {
	d := make([]int, len(radix))
	for i, r := range radix {
		d[i] = int(x % uint64(r))
		x /= uint64(r)
	}
	return d
}

// Description returns the n-th product description. Every shape uses every
// digit, so distinct n give distinct sentences.
func (s *Sentences) Description(n int64) string {
	x := permute(uint64(n), descSpace, s.seed)
	d := digits(x, len(adjectives), len(materials), len(products), len(features), len(uses), shapes)
	adj, mat, prod, feat, use := adjectives[d[0]], materials[d[1]], products[d[2]], features[d[3]], uses[d[4]]
	switch d[5] {
	case 0:
		return fmt.Sprintf("%s %s %s %s, %s.", adj, mat, prod, feat, use)
	case 1:
		return fmt.Sprintf("%s %s %s %s, made of %s, %s.", adj, prod, colours[(d[0]+d[2])%len(colours)], feat, mat, use)
	case 2:
		return fmt.Sprintf("%s %s in %s %s. Ideal %s.", adj, prod, mat, feat, strings.TrimPrefix(use, "for "))
	default:
		return fmt.Sprintf("%s %s %s %s %s.", adj, mat, prod, use, feat)
	}
}

// Query returns the n-th shopper query.
func (s *Sentences) Query(n int64) string {
	x := permute(uint64(n), querySpace, s.seed^0x5bd1e995)
	d := digits(x, len(queryForms), len(adjectives), len(products), len(uses), 9)
	q := fmt.Sprintf(queryForms[d[0]], strings.ToLower(adjectives[d[1]]), products[d[2]], uses[d[3]])
	if d[4] > 0 {
		q += fmt.Sprintf(", under %d euros", 10*(d[4]+1))
	}
	return q
}
