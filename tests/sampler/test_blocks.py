import numpy as np
import pytest
import torch

from pinsage.config import SamplerConfig
from pinsage.sampler import (
    PAD,
    Neighbors,
    build_blocks,
    context_blocks,
    item_blocks,
    item_neighbors,
)
from tests.helpers import csr_from_edges


@pytest.fixture(scope="module")
def graph():
    rng = np.random.default_rng(0)
    num_items, num_contexts = 300, 120
    items = rng.integers(num_items - 10, size=3000)  # the last 10 items are isolated
    contexts = rng.integers(num_contexts, size=3000)
    pairs = np.unique(np.stack([items, contexts]), axis=1)
    return csr_from_edges(num_items, num_contexts, pairs[0], pairs[1])


def _check_invariants(cg, seeds):
    blocks = cg.blocks
    assert torch.equal(cg.seeds, seeds)
    for lower, upper in zip(blocks, blocks[1:], strict=False):
        assert torch.equal(
            lower.dst_nodes, upper.src_nodes
        )  # layer k-1 dst = layer k src
    for b in blocks:
        assert torch.unique(b.src_nodes).numel() == b.num_src  # deduplicated
        if not b.dst_is_context:
            assert torch.equal(b.src_nodes[: b.num_dst], b.dst_nodes)  # dst first
        src, dst = b.edge_index
        assert src.min() >= 0 and src.max() < b.num_src  # edges inside the block
        assert dst.min() >= 0 and dst.max() < b.num_dst
        sums = torch.zeros(b.num_dst).index_add_(0, dst, b.edge_weight)
        has_edges = torch.bincount(dst, minlength=b.num_dst) > 0
        torch.testing.assert_close(sums[has_edges], torch.ones(int(has_edges.sum())))
        # No self loops through the neighbourhood: a node is not its own neighbour.
        if not b.dst_is_context:
            assert not (b.src_nodes[src] == b.dst_nodes[dst]).any()


def test_item_blocks_invariants(graph):
    seeds = torch.tensor([5, 17, 291, 0, 44])  # 291 is isolated
    cfg = SamplerConfig(num_walks=30, top_k=5, num_layers=3)
    cg = item_blocks(graph, seeds, cfg, generator=torch.Generator().manual_seed(0))
    assert len(cg.blocks) == 3
    _check_invariants(cg, seeds)
    top = cg.blocks[-1]
    assert (top.edge_index[1] != 2).all()  # the isolated seed has no incoming edge


def test_outermost_sources_are_union_of_reached_neighborhoods(graph):
    # With a fixed neighbourhood table the reachable set can be computed independently.
    cfg = SamplerConfig(num_walks=40, top_k=4)
    table = item_neighbors(
        graph, torch.arange(300), cfg, generator=torch.Generator().manual_seed(1)
    )

    def lookup(dst):
        return Neighbors(table.ids[dst], table.visits[dst], table.weights[dst])

    seeds = torch.tensor([3, 8, 100])
    cg = build_blocks(seeds, 2, lookup)
    _check_invariants(cg, seeds)
    hop1 = set(seeds.tolist()) | {
        i for s in seeds.tolist() for i in table.ids[s].tolist() if i != PAD
    }
    hop2 = hop1 | {i for s in hop1 for i in table.ids[s].tolist() if i != PAD}
    assert set(cg.input_nodes.tolist()) == hop2
    assert set(cg.blocks[1].src_nodes.tolist()) == hop1
    # Edge weights are the table's alphas.
    b = cg.blocks[-1]
    src, dst = b.edge_index
    for s, d, w in zip(
        b.src_nodes[src].tolist(),
        b.dst_nodes[dst].tolist(),
        b.edge_weight.tolist(),
        strict=True,
    ):
        row = table.ids[d].tolist()
        assert w == pytest.approx(table.weights[d, row.index(s)].item())


def test_context_blocks_invariants(graph):
    contexts = torch.tensor([0, 7, 119])
    cfg = SamplerConfig(num_walks=30, top_k=6, num_layers=2)
    cg = context_blocks(
        graph, contexts, cfg, generator=torch.Generator().manual_seed(0)
    )
    assert cg.blocks[-1].dst_is_context and not cg.blocks[0].dst_is_context
    _check_invariants(cg, contexts)
    assert cg.blocks[-1].num_src > 0


def test_duplicate_seeds_are_rejected(graph):
    with pytest.raises(ValueError, match="distinct"):
        item_blocks(
            graph, torch.tensor([1, 1]), SamplerConfig(), generator=torch.Generator()
        )


def test_blocks_deterministic(graph):
    cfg = SamplerConfig(num_walks=20, top_k=5)
    seeds = torch.arange(10)
    a = item_blocks(graph, seeds, cfg, generator=torch.Generator().manual_seed(4))
    b = item_blocks(graph, seeds, cfg, generator=torch.Generator().manual_seed(4))
    for x, y in zip(a.blocks, b.blocks, strict=True):
        assert torch.equal(x.src_nodes, y.src_nodes) and torch.equal(
            x.edge_index, y.edge_index
        )
