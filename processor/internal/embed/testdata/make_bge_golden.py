"""Golden embeddings of bge-small-en-v1.5 (fp32 and int8) for embed's tests (bge_test.go).

It computes what sentence-transformers' SentenceTransformer.encode does for this model,
step by step, with Hugging Face's own tokenizer and ONNX Runtime's Python package (neither
is the Go code under test):
  prompt (encode_query: config_sentence_transformers.json's "query" prompt, prepended to the
  text; documents: none) -> lower-casing (sentence_bert_config.json do_lower_case) ->
  tokenizer.json (special tokens, truncation at max_seq_length 512) -> model.onnx
  (last_hidden_state) -> Pooling (pooling_mode_cls_token: the first token) -> Normalize (L2).
sentence-transformers itself needs PyTorch (about 4.6 GB from PyPI here) and the model's
PyTorch weights, which no registry reachable from the build carries, so the reference runs
the same ONNX graphs the service serves.

Run from the repository root after `make deps`, in a venv outside the repository:
  python3 -m venv /tmp/bge-venv
  /tmp/bge-venv/bin/pip install onnxruntime==1.31.1 tokenizers==0.23.3 numpy==2.4.6
  /tmp/bge-venv/bin/python processor/internal/embed/testdata/make_bge_golden.py
"""

import json
import os

import numpy as np
import onnxruntime as ort
import tokenizers

ROOT = "models/bge-small-en-v1.5"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bge_golden.json")

QUERIES = ["What can I use to cut wood?", "cordless drill for home repairs"]
DOCUMENTS = [
    "High-performance circular saw with laser guide.",
    "Heavy-duty claw hammer with a non-slip grip handle.",
    "20V cordless drill driver with two batteries and a charger.",
]


def read(version, name):
    with open(os.path.join(ROOT, version, name)) as f:
        return json.load(f)


def embed(version, texts):
    st = read(version, "sentence_bert_config.json")
    pooling = read(version, "1_Pooling/config.json")
    modules = read(version, "modules.json")
    assert pooling["pooling_mode_cls_token"] and not pooling["pooling_mode_mean_tokens"]
    assert any(m["type"].endswith(".Normalize") for m in modules)
    tok = tokenizers.Tokenizer.from_file(os.path.join(ROOT, version, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(st["max_seq_length"])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(ROOT, version, "model.onnx"), opts)
    out = []
    for text in texts:
        if st["do_lower_case"]:
            text = text.lower()
        enc = tok.encode(text)
        feed = {
            "input_ids": np.array([enc.ids], dtype=np.int64),
            "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
        }
        hidden = sess.run(["last_hidden_state"], feed)[0]
        v = hidden[0, 0].astype(np.float64)
        v /= max(np.linalg.norm(v), 1e-12)
        out.append({"ids": enc.ids, "embedding": [round(float(x), 7) for x in v]})
    return out


def main():
    prompt = read("fp32", "config_sentence_transformers.json")["prompts"]["query"]
    golden = {
        "prompt": prompt,
        "queries": QUERIES,
        "documents": DOCUMENTS,
        "reference": "make_bge_golden.py: tokenizers %s, onnxruntime %s" % (tokenizers.__version__, ort.__version__),
    }
    for version in ("fp32", "int8"):
        golden[version] = {
            "queries": embed(version, [prompt + q for q in QUERIES]),
            "documents": embed(version, DOCUMENTS),
        }
    with open(OUT, "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
