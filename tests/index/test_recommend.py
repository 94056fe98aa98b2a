"""Recommendations from context vectors: brute-force numpy, the CLI and the service."""

import json
import shutil

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pinsage.atomic import publish
from pinsage.errors import DataError
from pinsage.graph import build_graph
from pinsage.index import Index, NoContextsError, UnknownIdError, build_index
from pinsage.index.contexts import exclude_rows, ragged_gather
from pinsage.infer.output import CONTEXTS_DIR, matrix_batches, write_parts
from tests.helpers import run_cli

ITEMS, USERS, DIM = 60, 12, 8


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A graph of random interactions and embeddings of its items and users.

    The embedding parts list items in a shuffled order, so that the index's rows
    differ from the graph's item indices.
    """
    root = tmp_path_factory.mktemp("recommend")
    rng = np.random.default_rng(3)
    users = rng.integers(0, USERS, 200)
    items = rng.integers(0, ITEMS, 200)
    pq.write_table(
        pa.table({"user": [f"u{u}" for u in users], "item": 1000 + items}),
        root / "interactions.parquet",
    )
    build_graph(root / "interactions.parquet", root / "graph")
    seen = {f"u{u}": set() for u in users}
    for u, i in zip(users, items, strict=True):
        seen[f"u{u}"].add(int(1000 + i))
    item_ids = np.unique(1000 + items)
    rng.shuffle(item_ids)
    user_ids = sorted(seen)
    item_vectors = rng.standard_normal((len(item_ids), DIM)).astype(np.float32)
    user_vectors = rng.standard_normal((len(user_ids), DIM)).astype(np.float32)
    emb = root / "embeddings"
    write_parts(emb, "item", pa.array(item_ids), matrix_batches(item_vectors, rows=25))
    write_parts(
        emb / CONTEXTS_DIR, "context", pa.array(user_ids), matrix_batches(user_vectors)
    )
    manifest = {
        "count": len(item_ids),
        "dim": DIM,
        "contexts": len(user_ids),
        "graph": str(root / "graph"),
        "checkpoint_sha256": "x",
    }
    publish(emb, manifest)
    build_index(emb, root / "index", kind="flat")
    return {
        "root": root,
        "index": root / "index",
        "item_ids": item_ids,
        "item_vectors": item_vectors,
        "users": dict(zip(user_ids, user_vectors, strict=True)),
        "seen": seen,
    }


def _brute_force(world, user: str, k: int) -> tuple[list, np.ndarray]:
    """The k best unseen items of ``user`` by cosine, best first (numpy only)."""
    x = world["item_vectors"]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    u = world["users"][user] / np.linalg.norm(world["users"][user])
    scores = x @ u
    unseen = [
        (float(s), int(i))
        for s, i in zip(scores, world["item_ids"], strict=True)
        if int(i) not in world["seen"][user]
    ]
    unseen.sort(key=lambda t: -t[0])
    return [i for _, i in unseen[:k]], np.array([s for s, _ in unseen[:k]])


def test_recommendations_leave_out_training_items(world):
    index = Index.load(world["index"])
    assert index.manifest.contexts == USERS
    users = ["u0", "u5", "u11"]
    ids, scores = index.recommend(users, k=10)
    for user, row_ids, row_scores in zip(users, ids, scores, strict=True):
        want_ids, want_scores = _brute_force(world, user, 10)
        assert row_ids.tolist() == want_ids
        assert not set(row_ids.tolist()) & world["seen"][user]
        np.testing.assert_allclose(row_scores, want_scores, atol=1e-5)


def test_every_unseen_item_then_padding(world):
    index = Index.load(world["index"])
    ids, scores = index.recommend(["u3"], k=ITEMS + 5)
    unseen = len(world["item_ids"]) - len(world["seen"]["u3"])
    assert [i is not None for i in ids[0]] == [True] * unseen + [False] * (
        ITEMS + 5 - unseen
    )
    assert np.isneginf(scores[0, unseen:]).all()
    assert ids[0, :unseen].tolist() == _brute_force(world, "u3", ITEMS)[0]


def test_unknown_user_and_index_without_contexts(world, embeddings, tmp_path):
    index = Index.load(world["index"])
    with pytest.raises(UnknownIdError, match="context 'nobody' is not in the index"):
        index.recommend(["nobody"], k=3)
    build_index(embeddings, tmp_path / "plain", kind="flat")
    with pytest.raises(NoContextsError, match="embed --users"):
        Index.load(tmp_path / "plain").recommend(["u1"], k=3)


def test_missing_graph_is_named_before_anything_is_written(world, tmp_path):
    manifest = json.loads((world["root"] / "embeddings/manifest.json").read_text())
    with pytest.raises(DataError, match="Pass `--graph GRAPH`"):
        build_index(
            world["root"] / "embeddings", tmp_path / "index", graph=tmp_path / "gone"
        )
    assert not (tmp_path / "index").exists()
    assert manifest["graph"] == str(world["root"] / "graph")


def test_exclusion_keeps_order_and_pads():
    rows = np.array([[4, 2, 7, -1], [1, 0, 3, 2]])
    scores = np.array([[0.9, 0.8, 0.7, 0.0], [0.6, 0.5, 0.4, 0.3]], np.float32)
    indptr = np.array([0, 1, 3])
    kept, kept_scores = exclude_rows(scores, rows, indptr, np.array([2, 1, 3]), 3)
    assert kept.tolist() == [[4, 7, -1], [0, 2, -1]]
    np.testing.assert_allclose(kept_scores[:, :2], [[0.9, 0.7], [0.5, 0.3]])
    assert np.isneginf(kept_scores[:, 2]).all()
    sub_indptr, values = ragged_gather(
        np.array([0, 2, 2, 5]), np.array([10, 11, 20, 21, 22]), np.array([2, 0, 1])
    )
    assert sub_indptr.tolist() == [0, 3, 5, 5]
    assert values.tolist() == [20, 21, 22, 10, 11]


def test_cli_user_queries(world, monkeypatch, capsys):
    def pinsage(*args):
        return run_cli([str(a) for a in args], monkeypatch, capsys)

    index = world["index"]
    code, text, _ = pinsage("query", "--index", index, "--user", "u5", "--json")
    assert code == 0
    doc = json.loads(text)
    assert doc["user"] == "u5"
    assert [n["item"] for n in doc["items"]] == _brute_force(world, "u5", 10)[0]
    code, _, err = pinsage("query", "--index", world["index"], "--user", "zz")
    assert code == 2 and "context 'zz' is not in the index" in err
    code, _, err = pinsage("query", "--index", world["index"])
    assert code == 2 and "exactly one of --item and --user" in err


def test_service_recommends(world, serve):
    with serve(world["index"]) as url, httpx.Client(base_url=url) as client:
        assert client.get("/healthz").json()["users"] == USERS
        doc = client.get("/recommend/u0", params={"k": 4}).json()
        assert doc["user"] == "u0"
        assert [n["item"] for n in doc["items"]] == _brute_force(world, "u0", 4)[0]
        missing = client.get("/recommend/nobody")
        assert missing.status_code == 404 and "nobody" in missing.json()["detail"]
        assert client.get("/recommend/u0", params={"k": 0}).status_code == 422


@pytest.mark.parametrize(
    ("file", "edit", "refusal"),
    [
        ("contexts.npy", lambda a: a[:-1], "row counts differ"),
        ("contexts.npy", lambda a: a[:, :-1], "7-dim vectors, the index 8"),
        ("contexts.npy", lambda a: np.where(a > 0.5, np.inf, a), "NaN or inf"),
        ("seen_indptr.npy", lambda a: a[:-1], "row counts differ"),
        ("seen_indptr.npy", lambda a: a[::-1].copy(), "does not index"),
        ("seen_rows.npy", lambda a: a + ITEMS, "rows outside the index"),
    ],
)
def test_context_files_that_disagree_are_refused(world, tmp_path, file, edit, refusal):
    folder = tmp_path / "index"
    shutil.copytree(world["index"], folder)
    np.save(folder / file, edit(np.load(folder / file)))
    with pytest.raises(DataError, match=refusal):
        Index.load(folder)
