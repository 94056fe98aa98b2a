"""The lookup service over loopback with a real HTTP client (uvicorn in a thread)."""

import threading
import time

import httpx
import numpy as np
import pytest

from pinsage.index import Index, build_index
from pinsage.index.service import MAX_BATCH


@pytest.fixture(scope="module")
def indexes(embeddings, vectors, tmp_path_factory, write_embeddings_once):
    """Two indexes of the same items: the generated vectors, and the same reversed."""
    root = tmp_path_factory.mktemp("service")
    build_index(embeddings, root / "a", kind="flat")
    ids = [f"item-{i}" for i in range(len(vectors))]
    other = write_embeddings_once(root / "emb-b", ids, -vectors[::-1].copy())
    build_index(other, root / "b", kind="flat")
    return root / "a", root / "b"


@pytest.fixture(scope="module")
def server(indexes, serve):
    with serve(indexes[0]) as url:
        yield url


def test_lookups_match_the_index(server, indexes):
    want = Index.load(indexes[0]).similar(["item-4", "item-9"], 3)
    with httpx.Client(base_url=server) as client:
        assert client.get("/healthz").json()["count"] == 3000
        one = client.get("/similar/item-4", params={"k": 3})
        assert one.status_code == 200 and one.json() == want[0]
        batch = client.post("/similar", json={"items": ["item-4", "item-9"], "k": 3})
        assert batch.status_code == 200 and batch.json() == {"results": want}
        assert "/similar/{item}" in client.get("/openapi.json").json()["paths"]


def test_errors_are_json_with_proper_codes(server):
    with httpx.Client(base_url=server) as client:
        missing = client.get("/similar/nope")
        assert missing.status_code == 404
        assert "item 'nope' is not in the index" in missing.json()["detail"]
        for k in (0, 1001, "x"):
            assert client.get("/similar/item-1", params={"k": k}).status_code == 422
        too_many = {"items": ["item-1"] * (MAX_BATCH + 1), "k": 2}
        assert client.post("/similar", json=too_many).status_code == 422
        assert client.post("/similar", json={"items": []}).status_code == 422
        bad = client.post("/reload", json={"path": "no-such-index"})
        assert bad.status_code == 400 and "not a complete index" in bad.json()["detail"]


def test_reload_under_concurrent_queries_fails_no_request(server, indexes):
    a, b = (Index.load(p).similar(["item-7"], 5)[0] for p in indexes)
    assert a != b
    failures, answers, stop = [], [], threading.Event()

    def query():
        with httpx.Client(base_url=server, timeout=30) as client:
            while not stop.is_set():
                r = client.get("/similar/item-7", params={"k": 5})
                if r.status_code != 200:
                    failures.append(r.status_code)
                else:
                    answers.append(r.json())

    threads = [threading.Thread(target=query) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        with httpx.Client(base_url=server, timeout=60) as client:
            for path in (indexes[1], indexes[0], indexes[1]):
                time.sleep(0.3)
                r = client.post("/reload", json={"path": str(path)})
                assert r.status_code == 200 and r.json()["count"] == 3000
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures
    assert len(answers) > 10 and all(doc in (a, b) for doc in answers)
    assert a in answers and b in answers  # both indexes were served
    with httpx.Client(base_url=server) as client:
        assert client.get("/similar/item-7", params={"k": 5}).json() == b
        client.post("/reload", json={"path": str(indexes[0])})  # back, for other tests


def test_scores_are_cosines(server, vectors):
    with httpx.Client(base_url=server) as client:
        doc = client.get("/similar/item-0", params={"k": 1}).json()
    j = int(doc["neighbors"][0]["item"].split("-")[1])
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert doc["neighbors"][0]["score"] == pytest.approx(float(x[0] @ x[j]), abs=1e-5)


def test_docs_work_offline_and_the_schema_is_typed(server):
    with httpx.Client(base_url=server) as client:
        page = client.get("/docs")
        schema = client.get("/openapi.json").json()
    assert page.status_code == 200 and page.headers["content-type"].startswith(
        "text/html"
    )
    html = page.text
    assert "<script" not in html and "cdn" not in html.lower()  # nothing to fetch
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            assert op["summary"] and op["summary"] in html
            assert f"{method.upper()}</span> <code>{path}</code>" in html
            ok = op["responses"]["200"]["content"]["application/json"]["schema"]
            assert "$ref" in ok  # a named response model, not a bare object
    models = schema["components"]["schemas"]
    assert {"SimilarDocument", "SimilarBatch", "Recommendations", "Health"} <= set(
        models
    )
    assert set(models["SimilarDocument"]["properties"]) == {"item", "neighbors"}
