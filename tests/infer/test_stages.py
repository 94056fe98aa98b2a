"""The model stages without Ray: each equals the matching piece of the local engine."""

import numpy as np
import pyarrow as pa
import pytest
import torch

from pinsage.config import ModelConfig, PipelineConfig, SamplerConfig
from pinsage.features import FeatureStore
from pinsage.graph import load_graph
from pinsage.infer.local import table_block
from pinsage.infer.neighborhoods import table_rows
from pinsage.infer.stages import (
    Chain,
    Message,
    Project,
    Update,
    from_matrix,
    message_width,
    pool,
    to_matrix,
)
from pinsage.nn.conv import aggregate
from pinsage.run import build_model
from pinsage.sampler import build_blocks, table_lookup
from pinsage.sampler.table import neighborhood_table


def test_matrix_columns_round_trip_and_nulls_are_zero():
    m = np.arange(12, dtype=np.float32).reshape(4, 3)
    col = from_matrix(m)
    assert col.type == pa.list_(pa.float32(), 3)
    np.testing.assert_array_equal(to_matrix(col, 3), m)
    with_nulls = pa.chunked_array([col.slice(0, 2), pa.nulls(1, col.type), col[3:]])
    np.testing.assert_array_equal(
        to_matrix(with_nulls, 3), np.stack([m[0], m[1], np.zeros(3), m[3]])
    )


@pytest.mark.parametrize("kind", ["importance", "mean", "max"])
def test_pool_equals_aggregate_over_a_block_of_destinations(kind):
    gen = torch.Generator().manual_seed(0)
    m = torch.rand(6, 5, generator=gen)
    alpha = torch.tensor([0.4, 0.3, 0.2, 0.1, 0.5, 0.5])
    dst = [7, 3, 7, 7, 3, 7]  # rows of two destinations, interleaved
    block = pa.table(
        {
            "dst": dst,
            "src": [1, 2, 3, 4, 5, 6],
            "alpha": alpha.numpy(),
            "m": from_matrix(m.numpy()),
        }
    )
    out = pool(block, kind, 5)
    assert out["node"].to_pylist() == [3, 7]
    for row, node in enumerate([3, 7]):
        mine = [i for i, d in enumerate(dst) if d == node]
        want = aggregate(
            m[mine],
            torch.stack([torch.arange(len(mine)), torch.zeros(len(mine), dtype=int)]),
            alpha[mine],
            1,
            kind,
        )
        np.testing.assert_allclose(
            to_matrix(out["n"], 5)[row : row + 1], want.numpy(), atol=1e-6
        )
    empty = pool(block.slice(0, 0), kind, 5)
    assert empty.num_rows == 0 and empty.schema == out.schema


def test_stages_compose_to_one_convolution(graph_dir):
    graph = load_graph(graph_dir)
    cfg = PipelineConfig(
        sampler=SamplerConfig(num_walks=10, top_k=5, num_layers=1),
        model=ModelConfig(
            dim=16, hidden_dim=12, out_dim=8, residual=False, text_buckets=512
        ),
    )
    store = FeatureStore.from_graph(graph, text_buckets=512)
    model = build_model(cfg, graph, store).eval()
    table = neighborhood_table(graph.csr, cfg.sampler)
    nodes = pa.table({"node": pa.array(np.arange(graph.num_items))})

    first = Chain([model], [(Project, ([store],)), (Message, (0,))])(nodes)
    rows = table_rows(table)
    dst, src = rows["dst"].to_numpy(), rows["src"].to_numpy()
    m = to_matrix(first["m"], 12)
    n = np.zeros((graph.num_items, 12), np.float32)  # no neighbours: zeros
    for node in np.unique(dst):
        group = rows.filter(pa.array(dst == node)).append_column(
            "m", from_matrix(m[src[dst == node]])
        )
        n[node] = to_matrix(pool(group, "importance", 12)["n"], 12)[0]
    batch = first.select(["node", "h"]).append_column("n", from_matrix(n))
    z = to_matrix(Update(model, 0, True)(batch)["z"], 8)

    with torch.no_grad():
        h0 = model.projector(store.gather(torch.arange(graph.num_items)))
        block = table_block(table, graph.num_items)
        want = model.head(model.convs[0](h0, h0, block.edge_index, block.edge_weight))
    np.testing.assert_allclose(z, want.numpy(), atol=1e-5)


def _pooled_by_destination(rows: pa.Table, m: np.ndarray, count: int) -> np.ndarray:
    """`pool` run on each destination's rows alone (zeros without neighbours)."""
    dst, src = rows["dst"].to_numpy(), rows["src"].to_numpy()
    n = np.zeros((count, m.shape[1]), np.float32)
    for node in np.unique(dst):
        group = rows.filter(pa.array(dst == node)).append_column(
            "m", from_matrix(m[src[dst == node]])
        )
        n[node] = to_matrix(pool(group, "importance", m.shape[1])["n"], m.shape[1])[0]
    return n


def test_residual_stages_equal_the_model_forward(graph_dir):
    graph = load_graph(graph_dir)
    cfg = PipelineConfig(
        sampler=SamplerConfig(num_walks=10, top_k=5, num_layers=1),
        model=ModelConfig(dim=16, hidden_dim=12, out_dim=16, residual=True),
    )
    store = FeatureStore.from_graph(graph, text_buckets=512)
    torch.manual_seed(0)
    model = build_model(cfg, graph, store).eval()
    with torch.no_grad():  # G_2 starts at zero: weights, so the head counts too
        model.lin_head2.weight.normal_()
    items = neighborhood_table(graph.csr, cfg.sampler)
    contexts = neighborhood_table(graph.csr, cfg.sampler, contexts=True)
    nodes = pa.table({"node": pa.array(np.arange(graph.num_items))})
    steps = [(Project, ([store],)), (Message, (0,)), (Message, (None, "mc"))]
    first = Chain([model], steps)(nodes)
    # The context layer's messages carry the items' inputs behind them.
    assert message_width(model, None) == 12 + 16 == first["mc"].type.list_size

    n = _pooled_by_destination(table_rows(items), to_matrix(first["m"], 12), 300)
    batch = first.select(["node", "h"]).append_column("n", from_matrix(n))
    z_items = to_matrix(Update(model, 0, True)(batch)["z"], 16)
    m = to_matrix(first["mc"], 28)
    n = _pooled_by_destination(table_rows(contexts), m, graph.num_contexts)
    batch = pa.table(
        {"node": pa.array(np.arange(graph.num_contexts)), "n": from_matrix(n)}
    )
    z_contexts = to_matrix(Update(model, None, True)(batch)["z"], 16)

    with torch.no_grad():  # the training-time forward over the same neighbourhoods
        for seeds, got, context_fn in (
            (graph.num_items, z_items, None),
            (graph.num_contexts, z_contexts, table_lookup(contexts)),
        ):
            cg = build_blocks(
                torch.arange(seeds), 1, table_lookup(items), context_fn=context_fn
            )
            want = model(cg, store.gather(cg.input_nodes))
            np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
