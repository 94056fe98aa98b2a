"""Index build and search against brute-force numpy on generated vectors."""

import json
import logging

import faiss
import numpy as np
import pytest

from pinsage.errors import ConfigError
from pinsage.index import Index, UnknownIdError, backend, build_index, plan_index
from pinsage.index import build as build_module
from pinsage.index.build import FLAT_MAX, HNSW_MAX, recall_at
from tests.helpers import run_cli


def _brute_force(vectors: np.ndarray, rows: np.ndarray, k: int):
    """Each query row's k nearest other rows by cosine, best first (numpy only)."""
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = x[rows] @ x.T  # (Q, N)
    sims[np.arange(len(rows)), rows] = -np.inf  # never the query itself
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def test_auto_follows_the_catalogue_size():
    assert plan_index("auto", FLAT_MAX, 128).kind == "flat"
    assert plan_index("auto", FLAT_MAX + 1, 128).kind == "hnsw"
    ivf = plan_index("auto", HNSW_MAX + 1, 128)
    assert ivf.kind == "ivfpq" and ivf.params["pq_m"] == 32
    assert ivf.params["nlist"] == int(4 * np.sqrt(HNSW_MAX + 1))
    with pytest.raises(ConfigError, match="index kind must be one of"):
        plan_index("lsh", 10, 8)


def test_recall_counts_shared_neighbors():
    assert recall_at(np.array([[1, 2], [3, 4]]), np.array([[2, 1], [3, 5]])) == 0.75


def test_flat_is_exact(embeddings, vectors, tmp_path):
    manifest = build_index(embeddings, tmp_path / "index", kind="flat")
    assert manifest.recall_at_10 == 1.0 and manifest.count == len(vectors)
    index = Index.load(tmp_path / "index")
    rows = np.array([0, 17, 2999])
    ids, scores = index.search(items=[f"item-{r}" for r in rows], k=10)
    want_rows, want_scores = _brute_force(vectors, rows, 10)
    assert ids.tolist() == [[f"item-{r}" for r in row] for row in want_rows]
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_kinds_keep_their_measured_recall(
    embeddings, vectors, tmp_path, kind
):
    manifest = build_index(embeddings, tmp_path / "index", kind=kind)
    assert manifest.kind == kind and manifest.search_params
    index = Index.load(tmp_path / "index")
    rows = np.random.default_rng(1).choice(len(vectors), 300, replace=False)
    ids, _ = index.search(items=[f"item-{r}" for r in rows], k=10)
    want, _ = _brute_force(vectors, rows, 10)
    found = np.vectorize(lambda i: int(i.split("-")[1]))(ids)
    # allow the sampling difference between the manifest's 1000 queries and these 300
    assert recall_at(found, want) >= manifest.recall_at_10 - 0.03
    assert recall_at(found, want) > 0.5


def test_vector_queries_and_the_query_item_is_never_its_own_neighbor(
    embeddings, vectors, tmp_path
):
    build_index(embeddings, tmp_path / "index", kind="flat")
    index = Index.load(tmp_path / "index")
    ids, _ = index.search(items=["item-5", "item-6"], k=1000)
    assert "item-5" not in ids[0] and "item-6" not in ids[1]
    by_vector, _ = index.search(vectors=vectors[[5]] * 3.0, k=1)  # scale-free
    assert by_vector.tolist() == [["item-5"]]


def test_tiny_catalogue_pads_and_unknown_ids_are_named(tmp_path, write_embeddings):
    emb = write_embeddings(
        tmp_path / "emb", [10, 20, 30], np.eye(3, 4, dtype=np.float32)
    )
    build_index(emb, tmp_path / "index")
    index = Index.load(tmp_path / "index")
    ids, scores = index.search(items=[10], k=4)
    assert sorted(ids[0][:2].tolist()) == [20, 30] and ids[0][2:].tolist() == [
        None,
        None,
    ]
    assert np.isneginf(scores[0][2:]).all()
    assert index.search(items=["20"], k=1)[0].shape == (1, 1)  # ids typed as text
    with pytest.raises(UnknownIdError, match="item 99 is not in the index"):
        index.search(items=[99], k=1)
    with pytest.raises(ConfigError, match="k must be in 1..1000"):
        index.search(items=[10], k=0)


def test_rebuild_is_skipped_unless_overwrite(embeddings, tmp_path):
    out = tmp_path / "index"
    first = build_index(embeddings, out, kind="flat")
    (out / "marker").touch()
    assert build_index(embeddings, out, kind="flat") == first
    assert (out / "marker").exists()
    build_index(embeddings, out, kind="flat", overwrite=True)
    assert not (out / "marker").exists()
    with pytest.raises(ConfigError, match="--overwrite"):
        build_index(embeddings, out, kind="hnsw")


def test_cli_query_json_and_exit_codes(
    embeddings, vectors, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "index"

    def pinsage(*args):
        return run_cli([str(a) for a in args], monkeypatch, capsys)

    code, text, _ = pinsage("index", "build", "--embeddings", embeddings, "--out", out)
    assert code == 0 and "recall@10 1.0000" in text
    code, text, _ = pinsage(
        "query", "--index", out, "--item", "item-3", "-k", 2, "--json"
    )
    assert code == 0
    doc = json.loads(text)
    want, want_scores = _brute_force(vectors, np.array([3]), 2)
    assert doc["item"] == "item-3"
    assert [n["item"] for n in doc["neighbors"]] == [f"item-{r}" for r in want[0]]
    got_scores = [n["score"] for n in doc["neighbors"]]
    np.testing.assert_allclose(got_scores, want_scores[0], atol=1e-5)
    code, _, err = pinsage("query", "--index", out, "--item", "nope")
    assert code == 2 and "item 'nope' is not in the index" in err
    code, _, err = pinsage("query", "--index", out, "--item", "item-3", "-k", 1001)
    assert code == 2 and "1001" in err
    code, _, err = pinsage("query", "--index", tmp_path / "none", "--item", "x")
    assert code == 2 and "not a complete index folder" in err


def test_gpu_request_without_a_gpu_says_why_and_builds_on_cpu(
    embeddings, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(backend, "gpu_status", lambda: (False, "no GPU here"))
    with caplog.at_level(logging.WARNING):
        manifest = build_index(embeddings, tmp_path / "index", kind="flat", gpu=True)
    assert manifest.device == "cpu" and manifest.recall_at_10 == 1.0
    assert "--gpu: no GPU here; building on the CPU instead" in caplog.text
    caplog.clear()
    build_index(embeddings, tmp_path / "quiet", kind="flat")  # default: quietly
    assert "--gpu" not in caplog.text


def test_ivf_trained_through_the_gpu_hook_matches_the_cpu_build(
    embeddings, tmp_path, monkeypatch
):
    """The GPU path with a CPU assigner in the GPU index's place: same index."""
    cpu = build_index(embeddings, tmp_path / "a", kind="ivfpq")
    monkeypatch.setattr(backend, "gpu_status", lambda: (True, "a pretend GPU"))
    pretend = lambda d, gpu: faiss.IndexFlatIP(d)  # noqa: E731
    monkeypatch.setattr(backend, "exact_index", pretend)
    monkeypatch.setattr(build_module, "exact_index", pretend)
    hooked = build_index(embeddings, tmp_path / "b", kind="ivfpq", gpu=True)
    assert hooked.device == "gpu" and cpu.device == "cpu"
    assert hooked.recall_at_10 == cpu.recall_at_10
    items = [f"item-{i}" for i in range(0, 3000, 97)]
    a, b = (Index.load(tmp_path / p).search(items=items, k=10)[0] for p in "ab")
    assert (a == b).all()


@pytest.mark.cuda
@pytest.mark.skipif(not backend.gpu_status()[0], reason="needs faiss-gpu and a GPU")
def test_gpu_build_reaches_the_recall_target(embeddings, tmp_path):
    manifest = build_index(embeddings, tmp_path / "index", kind="ivfpq", gpu=True)
    assert manifest.device == "gpu" and manifest.recall_at_10 >= 0.95
    flat = build_index(embeddings, tmp_path / "flat", kind="flat", gpu=True)
    assert flat.recall_at_10 == 1.0
