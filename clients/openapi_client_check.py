"""Calls a running simmatch through the client that openapi-python-client generated from
bridge/openapi.yaml (run by TestOpenAPIClients, cmd/simmatch/openapi_clients_test.go).

Usage: python openapi_client_check.py CLIENT_DIR BASE_URL API_KEY

CLIENT_DIR holds the generated package simmatch_client. The script ranks two descriptions
with /predict, upserts them into catalog "openapi" and searches it, then submits a job,
polls it until done and reads its results. It prints one JSON object with what each call
answered; the Go test checks it.
"""

import json
import sys
import time

sys.path.insert(0, sys.argv[1])

from simmatch_client import AuthenticatedClient  # noqa: E402
from simmatch_client.api.catalogs import search_catalog, upsert_products  # noqa: E402
from simmatch_client.api.jobs import job_results, job_status, submit_job  # noqa: E402
from simmatch_client.api.similarity import predict  # noqa: E402
from simmatch_client.models import (  # noqa: E402
    JobRequest,
    PredictRequest,
    PredictResponse,
    Product,
    SearchRequest,
    SearchResponse,
    UpsertProductsBody,
)

QUERY = "What can I use to cut wood?"
HAMMER = "Heavy-duty claw hammer with a non-slip grip handle."
SAW = "High-performance circular saw with laser guide."


def main() -> None:
    base, key = sys.argv[2], sys.argv[3]
    client = AuthenticatedClient(base_url=base, token=key)
    out = {}

    resp = predict.sync_detailed(client=client, body=PredictRequest(query=[QUERY], product_descriptions=[HAMMER, SAW]))
    assert isinstance(resp.parsed, PredictResponse), (resp.status_code, resp.content)
    m = resp.parsed.results[0].matches[0]
    out["predict"] = {"status": resp.status_code, "index": m.index, "score": m.score, "model": resp.parsed.model.name}

    body = UpsertProductsBody(products=[Product(id="hammer", description=HAMMER), Product(id="saw", description=SAW)])
    resp = upsert_products.sync_detailed("openapi", client=client, body=body)
    assert resp.status_code == 200, (resp.status_code, resp.content)
    out["upserted"] = resp.parsed.upserted

    resp = search_catalog.sync_detailed("openapi", client=client, body=SearchRequest(query=QUERY, top_k=1))
    assert isinstance(resp.parsed, SearchResponse), (resp.status_code, resp.content)
    out["search"] = {"status": resp.status_code, "id": resp.parsed.results[0].matches[0].id}

    resp = submit_job.sync_detailed(client=client, body=JobRequest(query=[QUERY, "Something to drive nails"],
                                                                   product_descriptions=[HAMMER, SAW], top_k=1))
    assert resp.status_code == 202, (resp.status_code, resp.content)
    job = resp.parsed
    deadline = time.monotonic() + 30
    while job.state.value not in ("done", "failed", "cancelled"):
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job.id} not done after 30 s: {job.state.value}")
        time.sleep(0.05)
        job = job_status.sync(job.id, client=client)
    out["job"] = {"id": job.id, "state": job.state.value, "done": job.done, "total": job.total}
    # The results are JSON lines (application/x-ndjson), which the generator leaves unparsed.
    resp = job_results.sync_detailed(job.id, client=client)
    assert resp.status_code == 200, (resp.status_code, resp.content)
    out["results"] = [json.loads(line) for line in resp.content.decode().splitlines() if line]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
