"""Non-finite numbers never reach a model: graph build, embed and index refuse them.

Each stage is driven through the command line: exit 2, one `error:` line naming the
file and what is wrong, and nothing written.
"""

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from pinsage.atomic import publish
from pinsage.data.synth import SynthConfig, synthesize
from pinsage.graph import build_graph
from pinsage.infer.output import matrix_batches, write_parts
from pinsage.run import latest_checkpoint
from pinsage.train import train
from tests.helpers import assert_one_error_line, run_cli, tiny_config

BAD_ROW = 3


def _poison(items: pa.Table, column: str, value: float, dtype=None) -> pa.Table:
    """``items`` with ``value`` at row `BAD_ROW` of ``column`` (a vector: entry 0)."""
    rows = items.column(column).to_pylist()
    if isinstance(rows[BAD_ROW], list):
        rows[BAD_ROW] = [value, *rows[BAD_ROW][1:]]
    else:
        rows[BAD_ROW] = value
    field = items.schema.field(column)
    array = pa.array(rows, dtype or field.type)
    return items.set_column(items.schema.get_field_index(column), column, array)


CASES = {
    "inf in a vector": ("embedding", math.inf, None),
    "-inf in a dense": ("price", -math.inf, None),
    "NaN in a dense": ("price", math.nan, None),
    "NaN in a vector": ("embedding", math.nan, None),
    "beyond float32 in a dense": ("price", 1e39, pa.float64()),
    "beyond float32 in a vector": ("embedding", -1e39, pa.list_(pa.float64())),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    config = SynthConfig(num_items=60, num_users=40, num_edges=600, num_clusters=3)
    return synthesize(config, tmp_path_factory.mktemp("nonfinite") / "data")


def _bad_data(data_dir, tmp_path, case):
    column, value, dtype = CASES[case]
    bad = tmp_path / "data"
    bad.mkdir()
    for name in ("interactions.parquet", "test.parquet"):
        (bad / name).write_bytes((data_dir / name).read_bytes())
    items = pq.read_table(data_dir / "items.parquet")
    pq.write_table(_poison(items, column, value, dtype), bad / "items.parquet")
    return bad, column


@pytest.mark.parametrize("case", list(CASES))
def test_graph_build_refuses_non_finite_features(
    data_dir, tmp_path, case, monkeypatch, capsys
):
    bad, column = _bad_data(data_dir, tmp_path, case)
    out = tmp_path / "graph"
    args = ["-q", "graph", "build", "--interactions", str(bad / "interactions.parquet")]
    args += ["--items", str(bad / "items.parquet"), "--out", str(out)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, "items.parquet", f"'{column}'", "1 row(s)", "finite")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".graph")]


@pytest.mark.parametrize("case", ["inf in a vector", "-inf in a dense"])
def test_pipeline_stops_at_graph_build_and_writes_nothing(
    data_dir, tmp_path, case, monkeypatch, capsys
):
    """build -> train -> embed -> index: the chain stops at its first stage."""
    bad, column = _bad_data(data_dir, tmp_path, case)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"data: {{path: '{bad}', format: folder}}\n"
        "model: {dim: 8, hidden_dim: 8, out_dim: 8, text_buckets: 256}\n"
        "train: {epochs: 1, steps_per_epoch: 2, batch_size: 16, producers: 0}\n"
        "embed: {engine: local}\n"
    )
    root = tmp_path / "root"
    args = ["-q", "pipeline", "--config", str(config), "--root", str(root)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, "items.parquet", f"'{column}'")
    for stage in ("graph", "run", "embeddings", "index"):
        assert not (root / stage).exists()
    if root.exists():  # the pipeline's lock file may stay; no half-written stage
        assert not [p for p in root.iterdir() if ".tmp-" in p.name]


def test_interactions_with_infinite_weights_are_refused(tmp_path, monkeypatch, capsys):
    for name, weight in (("inf", math.inf), ("huge", 1e39)):
        path = tmp_path / f"{name}.parquet"
        table = pa.table({"user": [1, 2], "item": [1, 2], "weight": [1.0, weight]})
        pq.write_table(table, path)
        out = tmp_path / f"g-{name}"
        args = ["-q", "graph", "build", "--interactions", str(path), "--out", str(out)]
        code, _, err = run_cli(args, monkeypatch, capsys)
        assert code == 2
        assert_one_error_line(err, path.name, "'weight'", "row 1", "finite")
        assert not out.exists()


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """(graph, run): a finite graph and a run trained on it for a few steps."""
    root = tmp_path_factory.mktemp("trained")
    graph = root / "graph"
    build_graph(
        data_dir / "interactions.parquet", graph, items=data_dir / "items.parquet"
    )
    cfg = tiny_config(epochs=1, steps_per_epoch=2, num_random_negatives=20)
    train(cfg, graph, root / "run")
    return graph, root / "run"


def _copy(src, dst):
    dst.mkdir(parents=True)
    for path in src.rglob("*"):
        if path.is_file():
            (dst / path.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (dst / path.relative_to(src)).write_bytes(path.read_bytes())
    return dst


@pytest.mark.parametrize("poisoned", ["checkpoint weights", "stored graph feature"])
def test_embed_refuses_non_finite_vectors(
    trained, tmp_path, poisoned, monkeypatch, capsys
):
    graph, run = _copy(trained[0], tmp_path / "g"), _copy(trained[1], tmp_path / "r")
    if poisoned == "checkpoint weights":
        path = latest_checkpoint(run)
        checkpoint = torch.load(path, weights_only=False)
        name = next(k for k in checkpoint["model"] if k.endswith("weight"))
        checkpoint["model"][name].fill_(math.nan)
        torch.save(checkpoint, path)
    else:  # a graph written before graph build refused such values
        price = np.load(graph / "features/price.npy")
        price[BAD_ROW] = np.inf
        np.save(graph / "features/price.npy", price)
    out = tmp_path / "emb"
    args = ["-q", "embed", "--run", str(run), "--graph", str(graph)]
    args += ["--out", str(out), "--engine", "local"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, "part-00000", "NaN or infinite", "Nothing was written")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".emb")]


def _embeddings_with_a_nan(folder, contexts: bool = False):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((50, 8)).astype(np.float32)
    ids = pa.array([f"i{i}" for i in range(50)])
    write_parts(folder, "item", ids, matrix_batches(vectors, rows=20))
    publish(folder, {"count": 50, "dim": 8, "checkpoint_sha256": "x"})
    part = folder / "part-00002.parquet"  # rows 40..49
    table = pq.read_table(part)
    flat = pc.list_flatten(table["embedding"]).to_numpy(zero_copy_only=False).copy()
    flat[5 * 8 + 1] = np.nan  # item i45
    embedding = pa.ListArray.from_arrays(
        pa.array(np.arange(0, flat.size + 1, 8, dtype=np.int32)), pa.array(flat)
    )
    pq.write_table(table.set_column(1, "embedding", embedding), part)
    return part


def test_index_build_refuses_non_finite_vectors(tmp_path, monkeypatch, capsys):
    emb = tmp_path / "emb"
    part = _embeddings_with_a_nan(emb)
    out = tmp_path / "index"
    args = ["-q", "index", "build", "--embeddings", str(emb), "--out", str(out)]
    code, _, err = run_cli([*args, "--kind", "flat"], monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, str(part), "1 item vectors", "'i45'", "NaN or inf")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".index")]
