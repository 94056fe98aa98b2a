"""Items added after training: `embed --items` and `index add` against a full re-embed.

The reference is independent of the incremental path: `build_graph` on the union of
the old and new files (new ids sort last, so old items keep their indices), then the
local engine's whole-table embedding with the checkpoint's weights and zero ID rows
for the new items.
"""

import json
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from pinsage.config import PipelineConfig, load_section
from pinsage.data.synth import synthesize
from pinsage.errors import DataError
from pinsage.features import FeatureStore
from pinsage.graph import build_graph, load_graph
from pinsage.index import Index, build_index
from pinsage.index.add import add_to_index
from pinsage.infer import embed, read_embeddings
from pinsage.infer.local import embed_all
from pinsage.infer.new_items import embed_new_items
from pinsage.run import build_model, load_checkpoint
from pinsage.sampler.table import neighborhood_table
from pinsage.train import train
from tests.helpers import TINY_SYNTH, run_cli, run_config

NEW = 20  # items held back from training, the largest ids


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Old graph + run (ID embeddings on, 2 layers), the new files, the union graph."""
    root = tmp_path_factory.mktemp("new-items")
    data = synthesize(TINY_SYNTH, root / "data")
    items = pq.read_table(data / "items.parquet")
    inter = pq.read_table(data / "interactions.parquet")
    new_ids = pa.array(np.sort(items["item"].to_numpy())[-NEW:])
    is_new = pc.is_in(items["item"], value_set=new_ids)
    hits_new = pc.is_in(inter["item"], value_set=new_ids)
    old_inter = inter.filter(pc.invert(hits_new))
    known = pc.is_in(inter["user"], value_set=pc.unique(old_inter["user"]))
    new_inter = inter.filter(pc.and_(hits_new, known))
    files = {
        "old_items": items.filter(pc.invert(is_new)),
        "old_inter": old_inter,
        "new_items": items.filter(is_new),
        "new_inter": new_inter,
        "all_items": items,
        "all_inter": pa.concat_tables([old_inter, new_inter]),
    }
    for name, table in files.items():
        pq.write_table(table, root / f"{name}.parquet")
    for name in ("old", "all"):
        build_graph(
            root / f"{name}_inter.parquet",
            root / f"{name}_graph",
            items=root / f"{name}_items.parquet",
        )
    cfg = run_config()
    cfg = replace(cfg, model=replace(cfg.model, id_embedding=True))
    train(cfg, root / "old_graph", root / "run")
    return root


def _full_reembed(root) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of every item of the union graph, by the local engine."""
    checkpoint = load_checkpoint(root / "run")
    cfg = load_section(PipelineConfig, checkpoint["config"], "config")
    old = load_graph(root / "old_graph")
    model = build_model(cfg, old, FeatureStore.from_graph(old, cfg.model.text_buckets))
    model.load_state_dict(checkpoint["model"])
    table = model.projector.emb_id
    full = load_graph(root / "all_graph")
    grown = torch.zeros(full.num_items, table.embedding_dim)
    grown[: old.num_items] = table.weight.detach()
    model.projector.emb_id = torch.nn.Embedding.from_pretrained(grown)
    store = FeatureStore.from_graph(full, cfg.model.text_buckets)
    item_table = neighborhood_table(full.csr, cfg.sampler.for_inference())
    z, _ = embed_all(model.eval(), store, item_table)
    return np.asarray(full.item_ids.to_pylist()), z.numpy()


def test_new_items_get_the_vectors_of_a_full_reembed(world):
    out = world / "new_emb"
    manifest = embed_new_items(
        world / "run",
        world / "old_graph",
        world / "new_items.parquet",
        out,
        interactions=world / "new_inter.parquet",
    )
    assert manifest.count == NEW
    assert (
        manifest.with_interactions
        == pq.read_metadata(world / "new_inter.parquet").num_rows
    )
    ids, z = read_embeddings(out)
    all_ids, reference = _full_reembed(world)
    assert set(ids.tolist()) <= set(all_ids[-NEW:].tolist())
    rows = np.searchsorted(all_ids, ids)
    np.testing.assert_allclose(z, reference[rows], atol=1e-5)
    # A re-run for the same files does nothing.
    again = embed_new_items(
        world / "run",
        world / "old_graph",
        world / "new_items.parquet",
        out,
        interactions=world / "new_inter.parquet",
    )
    assert again == manifest


def test_index_add_serves_the_new_items(world):
    emb = world / "old_emb"
    embed(world / "run", world / "old_graph", emb, engine="local")
    build_index(emb, world / "index", kind="flat")
    new = world / "new_emb_for_index"
    embed_new_items(
        world / "run", world / "old_graph", world / "new_items.parquet", new
    )
    manifest = add_to_index(world / "index", new)
    index = Index.load(world / "index")
    old_ids, old_z = read_embeddings(emb)
    new_ids, new_z = read_embeddings(new)
    assert manifest.count == len(index) == len(old_ids) + NEW
    vectors = np.concatenate([old_z, new_z])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(index.vectors, vectors, atol=1e-6)
    # Lookups by a new item (and the old items it is near) against brute force.
    all_ids = np.concatenate([old_ids, new_ids])
    for query in [new_ids[0], old_ids[3]]:
        row = int(np.flatnonzero(all_ids == query)[0])
        scores = vectors @ vectors[row]
        scores[row] = -np.inf
        expected = all_ids[np.argsort(-scores, kind="stable")[:5]]
        got, _ = index.search(items=[query], k=5)
        assert got[0].tolist() == expected.tolist()
    with pytest.raises(DataError, match="already in the index"):
        add_to_index(world / "index", new)


def test_unknown_category_is_left_out(world, tmp_path):
    items = pq.read_table(world / "new_items.parquet").slice(0, 1)
    nulled = items.set_column(
        items.schema.get_field_index("category"),
        "category",
        pa.array([None], pa.string()),
    )
    unseen = items.set_column(
        items.schema.get_field_index("category"), "category", pa.array(["never-seen"])
    )
    vectors = []
    for name, table in (("nulled", nulled), ("unseen", unseen)):
        pq.write_table(table, tmp_path / f"{name}.parquet")
        embed_new_items(
            world / "run",
            world / "old_graph",
            tmp_path / f"{name}.parquet",
            tmp_path / name,
        )
        vectors.append(read_embeddings(tmp_path / name)[1])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_bad_new_items_are_refused(world, tmp_path):
    old = pq.read_table(world / "old_items.parquet").slice(0, 2)
    pq.write_table(old, tmp_path / "old.parquet")
    with pytest.raises(DataError, match="already in the graph"):
        embed_new_items(
            world / "run", world / "old_graph", tmp_path / "old.parquet", tmp_path / "a"
        )
    new = pq.read_table(world / "new_items.parquet").drop_columns(["title"])
    pq.write_table(new, tmp_path / "no_title.parquet")
    with pytest.raises(DataError, match="title"):
        embed_new_items(
            world / "run",
            world / "old_graph",
            tmp_path / "no_title.parquet",
            tmp_path / "b",
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_embeds_and_adds(world, tmp_path, monkeypatch, capsys):
    emb, index, new = tmp_path / "emb", tmp_path / "index", tmp_path / "new"
    base = ["embed", "--run", str(world / "run"), "--graph", str(world / "old_graph")]
    steps = [
        [*base, "--out", str(emb), "--engine", "local"],
        ["index", "build", "--embeddings", str(emb), "--out", str(index)],
        [*base, "--items", str(world / "new_items.parquet"), "--out", str(new)],
        ["index", "add", "--index", str(index), "--embeddings", str(new)],
    ]
    outputs = []
    for args in steps:
        code, out, err = run_cli(args, monkeypatch, capsys)
        assert code == 0, err
        outputs.append(out)
    assert f"{NEW} new item embeddings" in outputs[2]
    assert f"added {NEW} items" in outputs[3]
    new_id = read_embeddings(new)[0][0]
    code, out, err = run_cli(
        ["query", "--index", str(index), "--item", str(new_id), "--json"],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert json.loads(out)["item"] == new_id
    code, _, err = run_cli([*steps[2], "--contexts"], monkeypatch, capsys)
    assert code == 2 and "--users" in err
