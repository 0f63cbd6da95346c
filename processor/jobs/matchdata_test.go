package jobs_test

import (
	"fmt"
	"strings"

	"github.com/simmatch/simmatch/contracts"
)

// shopItems are 60 products: brand | description. Several are close
// neighbours (two drills, three kettles, ...), so the match is not trivial.
var shopItems = []string{
	"Bosch|Cordless drill driver 18V with two batteries and a charger",
	"Makita|Cordless hammer drill 18V brushless motor, bare tool",
	"Bosch|Circular saw 1400W with laser guide and 190 mm blade",
	"Makita|Jigsaw with pendulum action and dust blower",
	"Stanley|Steel claw hammer 16 oz with fiberglass handle",
	"Stanley|Tape measure 8 m with magnetic hook",
	"Bosch|Laser distance meter with 50 m range",
	"Makita|Angle grinder 125 mm, 840W, slim body",
	"Stanley|Screwdriver set of 12 with magnetic tips",
	"Bosch|Random orbital sander 350W with dust box",
	"Philips|Electric kettle 1.7 litres, stainless steel, auto shut-off",
	"Bosch|Glass electric kettle with blue LED light, 1.5 litres",
	"Philips|Toaster with two wide slots and bun warmer",
	"DeLonghi|Espresso machine with milk frother and 15-bar pump",
	"DeLonghi|Bean to cup coffee machine with built-in grinder",
	"Philips|Hand blender 800W with whisk and chopper",
	"Bosch|Stand mixer with 4 litre bowl and dough hook",
	"Tefal|Non-stick frying pan 28 cm, induction compatible",
	"Tefal|Pressure cooker 6 litres, stainless steel",
	"Philips|Air fryer 4.1 litres with rapid air technology",
	"Gardena|Garden hose 25 m with adjustable spray nozzle",
	"Gardena|Oscillating lawn sprinkler for up to 250 square metres",
	"Fiskars|Pruning shears with bypass blades for fresh branches",
	"Fiskars|Leaf rake with 24 flexible steel tines",
	"Bosch|Cordless lawn mower 36V, 34 cm cutting width",
	"Gardena|Electric hedge trimmer 500W, 50 cm blade",
	"Fiskars|Splitting axe for firewood, 70 cm handle",
	"Gardena|Watering can 10 litres, green plastic",
	"Fiskars|Garden spade with steel blade and D-handle",
	"Bosch|High pressure washer 130 bar with patio cleaner",
	"Samsung|55 inch 4K UHD smart television with HDR",
	"Sony|Noise cancelling wireless headphones with 30 hour battery",
	"Sony|Portable Bluetooth speaker, waterproof, 12 hour playtime",
	"Samsung|Android smartphone with 128 GB storage and triple camera",
	"Apple|Tablet with 10.9 inch display and 64 GB storage",
	"Logitech|Wireless mouse with silent clicks and USB receiver",
	"Logitech|Mechanical keyboard with RGB backlight, US layout",
	"Samsung|External SSD 1 TB, USB-C, up to 1050 MB/s",
	"Sony|Mirrorless camera 24 megapixel with 18-55 mm kit lens",
	"Apple|Smartwatch with heart rate sensor and GPS",
	"Levi's|Men's slim fit jeans, dark blue denim",
	"Nike|Running shoes for men with cushioned sole",
	"Adidas|Women's hooded sweatshirt, cotton blend, grey",
	"Nike|Sports socks, pack of six pairs, white",
	"Columbia|Waterproof hiking jacket with hood, men's",
	"Adidas|Football size 5, machine stitched",
	"Wilson|Tennis racket with graphite frame, strung",
	"Decathlon|Yoga mat 6 mm thick, non-slip, purple",
	"Decathlon|Camping tent for two people, waterproof, 2.5 kg",
	"Coleman|Sleeping bag for temperatures down to minus 5 degrees",
	"IKEA|Bookcase with five shelves, white, 80 x 200 cm",
	"IKEA|Office chair with lumbar support and armrests",
	"IKEA|Bedside table with one drawer, oak veneer",
	"Philips|LED desk lamp with dimmer and USB charging port",
	"Dyson|Cordless stick vacuum cleaner with 60 minute run time",
	"iRobot|Robot vacuum with app control and auto recharge",
	"Philips|Steam iron 2400W with anti-calc function",
	"Brita|Water filter jug 2.4 litres with one cartridge",
	"Lego|Building set city fire station, 540 pieces",
	"Hasbro|Board game of property trading for the family",
}

// synonyms reword the feed: applied in order, whole words only.
var synonyms = [][2]string{
	{"Cordless", "Battery-powered"}, {"cordless", "battery-powered"}, {"with", "incl."}, {"and", "&"},
	{"stainless steel", "inox"}, {"litres", "L"}, {"litre", "L"}, {"Electric", "Electrical"}, {"machine", "maker"},
	{"Wireless", "Cordless"}, {"waterproof", "water-resistant"}, {"Waterproof", "Water-resistant"},
	{"television", "TV"}, {"smartphone", "mobile phone"}, {"shoes", "trainers"}, {"Men's", "Mens"},
	{"men's", "for men"}, {"Women's", "Ladies'"}, {"pack of six pairs", "6-pack"}, {"people", "persons"},
	{"storage", "memory"}, {"vacuum cleaner", "hoover"}, {"Garden", "Yard"}, {"garden", "yard"},
	{"handle", "grip"}, {"set", "kit"}, {"display", "screen"}, {"metres", "m²"}, {"square", ""},
	{"adjustable", "variable"}, {"Steel", "Forged steel"}, {"blade", "disc"}, {"non-slip", "anti-slip"},
}

// reword is a supplier's version of a shop description: synonyms, the
// clause after the first comma moved to the front, the brand in front, a
// trailing word dropped when the description is long.
func reword(brand, desc string) string {
	s := " " + desc + " "
	for _, p := range synonyms {
		s = strings.ReplaceAll(s, " "+p[0]+" ", " "+p[1]+" ")
	}
	s = strings.Join(strings.Fields(s), " ")
	if head, tail, ok := strings.Cut(s, ", "); ok {
		s = tail + " - " + head
	}
	if w := strings.Fields(s); len(w) > 8 {
		s = strings.Join(w[:len(w)-1], " ")
	}
	return strings.ToUpper(brand) + " " + s
}

// shopCatalog is shopItems as products "s00".."s59" with brand and
// category metadata.
func shopCatalog() []contracts.Product {
	out := make([]contracts.Product, len(shopItems))
	for i, it := range shopItems {
		brand, desc, _ := strings.Cut(it, "|")
		out[i] = contracts.Product{ID: fmt.Sprintf("s%02d", i), Description: desc,
			Metadata: map[string]string{"brand": brand, "dept": fmt.Sprint(i / 10)}}
	}
	return out
}

// feedCatalog is each shop product reworded, id "f<shop id>".
func feedCatalog() []contracts.Product {
	shop := shopCatalog()
	out := make([]contracts.Product, len(shop))
	for i, p := range shop {
		out[i] = contracts.Product{ID: "f" + p.ID, Description: reword(p.Metadata["brand"], p.Description), Metadata: p.Metadata}
	}
	return out
}

// dupeCatalog is the shop plus planted near-duplicates: listings of the
// same product by other sellers (small rewordings). truth is the planted
// clusters. Each product's region is "eu", except the second variant of
// the planted products divisible by 3, in "us".
func dupeCatalog() (products []contracts.Product, truth [][]string) {
	shop := shopCatalog()
	for _, p := range shop {
		p.Metadata = map[string]string{"brand": p.Metadata["brand"], "region": "eu"}
		products = append(products, p)
	}
	variants := []func(brand, desc string) string{
		func(brand, desc string) string { return desc + " - " + brand },
		func(brand, desc string) string { return "NEW: " + strings.ToLower(desc) + "." },
	}
	for i := 0; i < len(shop); i += 4 { // 15 planted clusters of 2 or 3
		cluster := []string{shop[i].ID}
		n := 1 + (i/4)%2
		for v := range n {
			region := "eu"
			if v == 1 && i%3 == 0 {
				region = "us"
			}
			id := fmt.Sprintf("%s-dup%d", shop[i].ID, v)
			products = append(products, contracts.Product{ID: id, Description: variants[v](shop[i].Metadata["brand"], shop[i].Description),
				Metadata: map[string]string{"brand": shop[i].Metadata["brand"], "region": region}})
			cluster = append(cluster, id)
		}
		truth = append(truth, cluster)
	}
	return products, truth
}
