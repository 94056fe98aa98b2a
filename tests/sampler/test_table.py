import numpy as np
import pytest
import torch

from pinsage.config import SamplerConfig
from pinsage.sampler import (
    CHUNK,
    build_blocks,
    neighborhood_table,
    table_lookup,
)
from tests.helpers import csr_from_edges


@pytest.fixture(scope="module")
def graph():
    # More items than one seeded range, so the table spans two.
    rng = np.random.default_rng(1)
    num_items, num_contexts = CHUNK + 600, 900
    items = rng.integers(num_items, size=30_000)
    contexts = rng.integers(num_contexts, size=30_000)
    pairs = np.unique(np.stack([items, contexts]), axis=1)
    return csr_from_edges(num_items, num_contexts, pairs[0], pairs[1])


@pytest.mark.parametrize("contexts", [False, True])
def test_table_does_not_depend_on_how_it_is_split(graph, contexts):
    cfg = SamplerConfig(num_walks=20, top_k=6, seed=3)
    whole = neighborhood_table(graph, cfg, contexts=contexts)
    total = graph.num_contexts if contexts else graph.num_items
    assert whole.ids.shape == (total, 6)
    parts = [
        neighborhood_table(graph, cfg, contexts=contexts, start=lo, stop=lo + CHUNK)
        for lo in range(0, total, CHUNK)
    ]
    for got, want in zip(zip(*parts, strict=True), whole, strict=True):
        assert torch.equal(torch.cat(got), want)
    again = neighborhood_table(graph, cfg, contexts=contexts)
    assert all(torch.equal(a, b) for a, b in zip(again, whole, strict=True))
    other = neighborhood_table(graph, SamplerConfig(num_walks=20, top_k=6, seed=4))
    assert not torch.equal(other.ids, neighborhood_table(graph, cfg).ids)


def test_table_rows_are_neighborhoods_of_their_node(graph):
    cfg = SamplerConfig(num_walks=20, walk_length=1, top_k=6)
    table = neighborhood_table(graph, cfg)
    item = 4321  # in the second range
    contexts = graph.item_indices[graph.item_indptr[item] : graph.item_indptr[item + 1]]
    two_hop = set()
    for c in contexts.tolist():
        lo, hi = graph.context_indptr[c], graph.context_indptr[c + 1]
        two_hop |= set(graph.context_indices[lo:hi].tolist())
    row = table.ids[item]
    # One traversal (item -> context -> item) reaches only items two hops away.
    assert set(row[row >= 0].tolist()) <= two_hop - {item}
    torch.testing.assert_close(table.weights[item].sum(), torch.tensor(1.0))


def test_blocks_from_a_table_use_exactly_its_rows(graph):
    items = neighborhood_table(graph, SamplerConfig(num_walks=20, top_k=6))
    ctx = neighborhood_table(graph, SamplerConfig(num_walks=20, top_k=6), contexts=True)
    seeds = torch.tensor([7, 800, 3])
    cg = build_blocks(seeds, 2, table_lookup(items), context_fn=table_lookup(ctx))
    for block, table in ((cg.blocks[-1], ctx), (cg.blocks[0], items)):
        src, dst = block.edge_index
        got = {
            (int(d), int(s)): float(w)
            for s, d, w in zip(
                block.src_nodes[src],
                block.dst_nodes[dst],
                block.edge_weight,
                strict=True,
            )
        }
        want = {
            (int(d), int(s)): float(w)
            for d in block.dst_nodes
            for s, w in zip(table.ids[d], table.weights[d], strict=True)
            if s >= 0
        }
        assert got == want
