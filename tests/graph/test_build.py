from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pinsage.data.synth import SynthConfig, synthesize
from pinsage.errors import ConfigError
from pinsage.graph import build_graph, load_graph


def _edges_from_graph(g):
    """(external user, external item) -> weight, read back through both CSR sides."""
    item_ids, ctx_ids = g.item_ids.to_pylist(), g.context_ids.to_pylist()
    csr = g.csr
    by_item = {}
    indptr = csr.item_indptr.numpy()
    for i in range(g.num_items):
        for e in range(indptr[i], indptr[i + 1]):
            by_item[(ctx_ids[csr.item_indices[e]], item_ids[i])] = float(
                csr.item_weights[e]
            )
    by_ctx = {}
    indptr = csr.context_indptr.numpy()
    for c in range(g.num_contexts):
        for e in range(indptr[c], indptr[c + 1]):
            by_ctx[(ctx_ids[c], item_ids[csr.context_indices[e]])] = float(
                csr.context_weights[e]
            )
    assert by_item == by_ctx
    return by_item


@pytest.mark.parametrize("string_ids", [False, True])
def test_synth_build_load_round_trip(tmp_path, string_ids):
    data = synthesize(
        SynthConfig(num_items=150, num_users=80, num_edges=1500, string_ids=string_ids),
        tmp_path / "d",
    )
    inter = pq.read_table(data / "interactions.parquet")
    g = load_graph(
        build_graph(
            data / "interactions.parquet", tmp_path / "g", items=data / "items.parquet"
        )
        and tmp_path / "g"
    )
    expected = Counter(
        zip(inter["user"].to_pylist(), inter["item"].to_pylist(), strict=True)
    )
    assert _edges_from_graph(g) == {k: float(v) for k, v in expected.items()}
    items = pq.read_table(data / "items.parquet")["item"].to_pylist()
    assert sorted(g.item_ids.to_pylist()) == sorted(
        items
    )  # the catalogue, cold items too
    assert g.item_ids.to_pylist() == sorted(items)
    assert set(g.context_ids.to_pylist()) == set(inter["user"].to_pylist())
    assert g.manifest.id_types["item"] == ("string" if string_ids else "int")
    idx = g.item_index(items[:5])
    assert [g.item_ids[i].as_py() for i in idx] == items[:5]
    # Features come back in item-index order.
    emb = g.feature("embedding")["values"]
    src = dict(
        zip(
            items,
            pq.read_table(data / "items.parquet")["embedding"].to_pylist(),
            strict=True,
        )
    )
    np.testing.assert_allclose(emb[3], src[g.item_ids[3].as_py()], rtol=1e-6)
    assert isinstance(emb, np.memmap)


def test_duplicates_merged_catalogue_isolated_and_unknown_dropped(tmp_path):
    unicode_ids = ["ünï", "東京", "a b", "x"]
    pq.write_table(
        pa.table(
            {
                "user": ["u1", "u1", "u2", "u3", "u3"],
                "item": [
                    unicode_ids[0],
                    unicode_ids[0],
                    unicode_ids[1],
                    unicode_ids[1],
                    "missing",
                ],
                "weight": [1.5, 2.0, 1.0, 3.0, 1.0],
            }
        ),
        tmp_path / "i.parquet",
    )
    pq.write_table(
        pa.table({"item": unicode_ids, "price": [1.0, None, 3.0, 4.0]}),
        tmp_path / "items.parquet",
    )
    m = build_graph(
        tmp_path / "i.parquet", tmp_path / "g", items=tmp_path / "items.parquet"
    )
    assert m.duplicates_merged == 1 and m.dropped_unknown_items == 1
    assert m.num_items == 4 and m.isolated_items == 2 and m.num_edges == 3
    assert m.weighted and m.features == [
        {"name": "price", "kind": "dense", "dim": 1, "missing": 1}
    ]
    g = load_graph(tmp_path / "g")
    assert _edges_from_graph(g) == {
        ("u1", "ünï"): 3.5,
        ("u2", "東京"): 1.0,
        ("u3", "東京"): 3.0,
    }
    assert g.csr.item_cumw is not None  # weighted graphs get running sums for sampling


def test_rebuild_skips_when_complete_and_rejects_nothing_else(tmp_path):
    data = synthesize(
        SynthConfig(num_items=50, num_users=30, num_edges=300), tmp_path / "d"
    )
    first = build_graph(data / "interactions.parquet", tmp_path / "g")
    mtime = (tmp_path / "g" / "manifest.json").stat().st_mtime_ns
    again = build_graph(data / "interactions.parquet", tmp_path / "g")
    assert (
        again == first
        and (tmp_path / "g" / "manifest.json").stat().st_mtime_ns == mtime
    )
    build_graph(data / "interactions.parquet", tmp_path / "g", overwrite=True)
    assert (tmp_path / "g" / "manifest.json").stat().st_mtime_ns != mtime


def test_streaming_small_batches_give_same_graph(tmp_path):
    data = synthesize(
        SynthConfig(num_items=100, num_users=60, num_edges=900), tmp_path / "d"
    )
    build_graph(data / "interactions.parquet", tmp_path / "whole")
    build_graph(data / "interactions.parquet", tmp_path / "small", batch_rows=64)
    for name in ("item_indptr", "item_indices", "context_indptr", "context_indices"):
        a = np.load(tmp_path / "whole" / f"{name}.npy")
        b = np.load(tmp_path / "small" / f"{name}.npy")
        np.testing.assert_array_equal(a, b)


def test_interrupted_build_leaves_no_directory(tmp_path, monkeypatch):
    data = synthesize(
        SynthConfig(num_items=50, num_users=30, num_edges=300), tmp_path / "d"
    )

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("pinsage.graph.build.publish", boom)  # the last write
    with pytest.raises(RuntimeError):
        build_graph(data / "interactions.parquet", tmp_path / "g")
    assert not (tmp_path / "g").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "d"]  # no temporary sibling left


def test_a_graph_of_other_inputs_is_not_replaced_silently(tmp_path):
    data = synthesize(
        SynthConfig(num_items=50, num_users=30, num_edges=300), tmp_path / "d"
    )
    other = synthesize(
        SynthConfig(num_items=60, num_users=30, num_edges=300, seed=1), tmp_path / "o"
    )
    first = build_graph(data / "interactions.parquet", tmp_path / "g")
    with pytest.raises(ConfigError, match="other inputs.*--overwrite"):
        build_graph(other / "interactions.parquet", tmp_path / "g")
    assert build_graph(data / "interactions.parquet", tmp_path / "g") == first
    replaced = build_graph(
        other / "interactions.parquet", tmp_path / "g", overwrite=True
    )
    assert replaced.num_items == load_graph(tmp_path / "g").num_items != first.num_items


def test_test_fraction_holds_out_each_users_latest(tmp_path, monkeypatch, capsys):
    from tests.helpers import run_cli

    # 4 users with the same 5 items each, timestamps shuffled, foreign names.
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(4), 5)
    items = np.tile(np.arange(5), 4)
    stamps = rng.permutation(20)
    latest = np.concatenate([np.sort(stamps[users == u])[-2:] for u in range(4)])
    held_items = items[np.isin(stamps, latest)]
    # No item is among all four users' latest (the split would keep one back).
    assert np.bincount(held_items).max() < 4
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"uid": users, "pin": items, "timestamp": stamps}), src)
    out = tmp_path / "g"
    args = ["-q", "graph", "build", "--interactions", str(src), "--out", str(out)]
    args += ["--user-column", "uid", "--item-column", "pin", "--test-fraction", "0.4"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    test = pq.read_table(out / "test.parquet").to_pydict()
    assert set(test) == {"user", "item", "timestamp"}  # the contract's names
    graph = load_graph(out)
    for user in range(4):  # its 2 latest of 5 held out, the other 3 in the graph
        mine = stamps[users == user]
        rows = zip(test["user"], test["timestamp"], strict=True)
        held = sorted(t for u, t in rows if u == user)
        assert held == sorted(mine)[-2:]
        row = graph.context_index(pa.array([user]))[0]
        kept = graph.csr.context_indices[
            graph.csr.context_indptr[row] : graph.csr.context_indptr[row + 1]
        ]
        latest = set(items[(users == user) & np.isin(stamps, held)].tolist())
        got = set(graph.item_ids.take(pa.array(kept.numpy())).to_pylist())
        assert got == set(items[users == user].tolist()) - latest
    # The same command is up to date; another share needs --overwrite.
    assert run_cli(args, monkeypatch, capsys)[0] == 0
    args[-1] = "0.2"
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and "--overwrite" in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".g.split")]


def test_eval_without_a_test_split_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    from tests.helpers import run_cli

    graph = tmp_path / "g"
    graph.mkdir()
    args = ["-q", "eval", "--run", str(tmp_path / "run"), "--graph", str(graph)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and "--test-fraction" in err and "--test FILE" in err
