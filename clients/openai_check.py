"""Calls simmatch's /v1/embeddings through the official OpenAI Python SDK.

Usage: python openai_check.py BASE_URL < texts.json > answers.json

Reads a JSON list of texts; prints JSON with what the SDK returned: the embeddings
with the SDK's default encoding (it asks for base64 and decodes it itself), with
encoding_format="float", with encoding_format="base64" (the raw strings), the
usage, one model from models.list(), and the exception the SDK raised for an
unsupported `dimensions`. TestOpenAISDK (processor/openai_sdk_test.go) checks it.
"""
import json
import sys

import openai


def main() -> None:
    base = sys.argv[1].rstrip("/")
    texts = json.load(sys.stdin)
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    model = "all-MiniLM-L6-v2"
    out = {}
    r = client.embeddings.create(model=model, input=texts)
    out["default"] = [list(map(float, d.embedding)) for d in r.data]
    r = client.embeddings.create(model=model, input=texts, encoding_format="float")
    out["float"] = [d.embedding for d in r.data]
    out["indexes"] = [d.index for d in r.data]
    out["usage"] = {"prompt_tokens": r.usage.prompt_tokens, "total_tokens": r.usage.total_tokens}
    out["model"] = r.model
    r = client.embeddings.create(model=model, input=texts[0], encoding_format="base64")
    out["base64"] = [d.embedding for d in r.data]
    out["models"] = [m.id for m in client.models.list()]
    try:
        client.embeddings.create(model=model, input=texts[0], dimensions=8)
        out["error"] = None
    except openai.APIStatusError as e:
        out["error"] = {
            "class": type(e).__name__,
            "status": e.status_code,
            "code": e.code,
            "param": e.param,
            "type": e.type,
            "message": e.message,
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
