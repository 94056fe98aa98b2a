from dataclasses import replace

import numpy as np
import pytest
import torch

from pinsage.config import SamplerConfig
from pinsage.sampler import (
    PAD,
    context_neighbors,
    item_neighbors,
    top_visited,
    walk_visits,
)
from tests.helpers import csr_from_edges, expected_visits, transition_matrices

# A hand-made graph: items 0..4, contexts 0..2; item 4 is isolated.
HAND = dict(
    num_items=5,
    num_contexts=3,
    items=[0, 1, 1, 2, 2, 3, 0],
    contexts=[0, 0, 1, 1, 2, 2, 2],
)


def _random_graph(seed: int, weighted: bool):
    rng = np.random.default_rng(seed)
    num_items, num_contexts, num_edges = 12, 7, 30
    pairs = np.unique(
        np.stack(
            [
                rng.integers(num_items - 1, size=num_edges),
                rng.integers(num_contexts, size=num_edges),
            ]
        ),
        axis=1,
    )  # the last item stays isolated
    weights = rng.uniform(0.2, 3.0, size=pairs.shape[1]) if weighted else None
    return dict(
        num_items=num_items,
        num_contexts=num_contexts,
        items=pairs[0],
        contexts=pairs[1],
    ), weights


GRAPHS = [(HAND, None), (HAND, [1, 2, 0.5, 3, 1, 1, 4])] + [
    _random_graph(s, w) for s in (1, 2) for w in (False, True)
]
NUM_WALKS = 100_000


def _tolerance(expected: np.ndarray, length: int) -> np.ndarray:
    # Visits of one walk to one item lie in [0, length], so Var <= length * mean;
    # 5 standard errors of the mean over NUM_WALKS walks, plus float slack.
    return 5 * np.sqrt(length * expected / NUM_WALKS) + 1e-4


@pytest.mark.parametrize("spec,weights", GRAPHS)
@pytest.mark.parametrize("length,restart", [(1, 0.0), (3, 0.5), (5, 0.3)])
def test_item_walk_visits_match_exact_distribution(spec, weights, length, restart):
    graph = csr_from_edges(**spec, weights=weights)
    p_ic, p_ci = transition_matrices(**spec, weights=weights)
    step = p_ic @ p_ci
    cfg = SamplerConfig(num_walks=NUM_WALKS, walk_length=length, restart=restart)
    gen = torch.Generator().manual_seed(7)
    seed_item = 1 if spec is HAND else int(np.flatnonzero(p_ic.sum(1))[0])
    rows, items = walk_visits(graph, torch.tensor([seed_item]), cfg, generator=gen)
    assert (rows == 0).all()
    observed = np.bincount(items.numpy(), minlength=spec["num_items"]) / NUM_WALKS
    start = np.eye(spec["num_items"])[seed_item] @ step  # after the first traversal
    exact = expected_visits(start, step, length, restart)
    np.testing.assert_array_less(np.abs(observed - exact), _tolerance(exact, length))


@pytest.mark.parametrize("spec,weights", GRAPHS)
def test_context_walk_visits_match_exact_distribution(spec, weights):
    graph = csr_from_edges(**spec, weights=weights)
    p_ic, p_ci = transition_matrices(**spec, weights=weights)
    length, restart = 4, 0.4
    cfg = SamplerConfig(num_walks=NUM_WALKS, walk_length=length, restart=restart)
    gen = torch.Generator().manual_seed(3)
    rows, items = walk_visits(
        graph, torch.tensor([2]), cfg, generator=gen, from_context=True
    )
    observed = np.bincount(items.numpy(), minlength=spec["num_items"]) / NUM_WALKS
    exact = expected_visits(p_ci[2], p_ic @ p_ci, length, restart)
    np.testing.assert_array_less(np.abs(observed - exact), _tolerance(exact, length))


def test_walks_never_leave_neighborhood_of_weight_zero_paths():
    # Two disconnected components: walks from one never reach the other.
    graph = csr_from_edges(4, 2, items=[0, 1, 2, 3], contexts=[0, 0, 1, 1])
    cfg = SamplerConfig(num_walks=500, walk_length=5, restart=0.2)
    _, items = walk_visits(
        graph, torch.tensor([0]), cfg, generator=torch.Generator().manual_seed(0)
    )
    assert set(items.tolist()) <= {0, 1}


def test_item_neighbors_top_k_weights_and_isolated():
    graph = csr_from_edges(**HAND)
    cfg = SamplerConfig(num_walks=2000, walk_length=3, restart=0.5, top_k=3)
    seeds = torch.tensor([1, 4, 0, 1])
    nb = item_neighbors(graph, seeds, cfg, generator=torch.Generator().manual_seed(0))
    assert nb.ids.shape == (4, 3)
    assert (nb.ids[1] == PAD).all() and nb.weights[1].sum() == 0  # isolated item 4
    for r in (0, 2, 3):
        filled = nb.ids[r] >= 0
        assert seeds[r] not in nb.ids[r][filled]
        assert torch.isclose(nb.weights[r].sum(), torch.tensor(1.0))
        assert (nb.visits[r][filled].diff() <= 0).all()  # decreasing visits
        torch.testing.assert_close(nb.weights[r], nb.visits[r] / nb.visits[r].sum())
    # Item 1 reaches items 0, 2 and (through item 2's context 2) 3.
    assert set(nb.ids[0].tolist()) == {0, 2, 3}


def test_same_seed_same_output_different_seed_different_output():
    graph = csr_from_edges(**_random_graph(5, True)[0])
    cfg = SamplerConfig(num_walks=50, top_k=4)
    seeds = torch.arange(11)

    def run(seed):
        return item_neighbors(
            graph, seeds, cfg, generator=torch.Generator().manual_seed(seed)
        )

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a.visits, c.visits)


def test_top_visited_matches_counter_reference():
    rng = np.random.default_rng(0)
    rows = rng.integers(6, size=3000)
    items = rng.integers(40, size=3000) ** 2 % 37  # skewed
    exclude = np.arange(6) * 5
    nb = top_visited(
        torch.from_numpy(rows),
        torch.from_numpy(items),
        6,
        5,
        exclude=torch.from_numpy(exclude),
    )
    for r in range(6):
        counts = np.bincount(items[(rows == r) & (items != exclude[r])], minlength=37)
        order = sorted(range(37), key=lambda i: (-counts[i], i))[:5]
        order = [i for i in order if counts[i] > 0]
        assert nb.ids[r, : len(order)].tolist() == order
        assert nb.visits[r, : len(order)].tolist() == [counts[i] for i in order]


def test_context_neighbors_are_items_of_the_walks():
    graph = csr_from_edges(**HAND)
    cfg = SamplerConfig(num_walks=1000, walk_length=1, restart=0.5, top_k=5)
    nb = context_neighbors(
        graph, torch.tensor([0, 2]), cfg, generator=torch.Generator().manual_seed(0)
    )
    # One traversal from a context reaches exactly its own items.
    assert set(nb.ids[0][nb.ids[0] >= 0].tolist()) == {0, 1}
    assert set(nb.ids[1][nb.ids[1] >= 0].tolist()) == {0, 2, 3}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_distribution_and_is_deterministic():
    spec, weights = GRAPHS[1]
    graph = csr_from_edges(**spec, weights=weights).to("cuda")
    cfg = SamplerConfig(num_walks=NUM_WALKS, walk_length=3, restart=0.5)

    def run():
        gen = torch.Generator(device="cuda").manual_seed(11)
        return walk_visits(graph, torch.tensor([1], device="cuda"), cfg, generator=gen)

    (_, i1), (_, i2) = run(), run()
    assert i1.is_cuda and torch.equal(i1, i2)
    p_ic, p_ci = transition_matrices(**spec, weights=weights)
    step = p_ic @ p_ci
    exact = expected_visits(np.eye(5)[1] @ step, step, 3, 0.5)
    observed = np.bincount(i1.cpu().numpy(), minlength=5) / NUM_WALKS
    np.testing.assert_array_less(np.abs(observed - exact), _tolerance(exact, 3))
    nb = item_neighbors(
        graph,
        torch.tensor([0, 1, 4], device="cuda"),
        cfg,
        generator=torch.Generator(device="cuda").manual_seed(0),
    )
    assert nb.ids.is_cuda and (nb.ids[2] == PAD).all()


def test_drop_pairs_hides_exactly_the_named_items_and_renormalises():
    from pinsage.sampler.walks import PAD, Neighbors, drop_pairs

    ids = torch.tensor([[4, 2, 7, PAD], [2, 4, 9, 1], [3, PAD, PAD, PAD]])
    visits = torch.tensor([[5, 3, 2, 0], [6, 4, 1, 1], [2, 0, 0, 0]])
    nbrs = Neighbors(ids, visits, (visits / visits.sum(1, keepdim=True)).float())
    dst = torch.tensor([10, 11, 12])
    # Context 10 engaged item 2, context 11 items 4 and 1; context 12 engaged 5
    # (not in its row); context 13 is not in this batch of rows.
    got = drop_pairs(
        nbrs, dst, torch.tensor([10, 11, 11, 12, 13]), torch.tensor([2, 4, 1, 5, 3])
    )
    assert got.ids.tolist() == [[4, 7, PAD, PAD], [2, 9, PAD, PAD], [3, PAD, PAD, PAD]]
    assert got.visits.tolist() == [[5, 2, 0, 0], [6, 1, 0, 0], [2, 0, 0, 0]]
    want = torch.tensor([[5 / 7, 2 / 7, 0, 0], [6 / 7, 1 / 7, 0, 0], [1.0, 0, 0, 0]])
    torch.testing.assert_close(got.weights, want)


def test_debiased_weights_divide_visits_by_degree_power():
    from pinsage.sampler.walks import PAD, Neighbors, debiased

    ids = torch.tensor([[0, 1, 2], [3, PAD, PAD]])
    visits = torch.tensor([[6, 3, 1], [4, 0, 0]])
    nbrs = Neighbors(ids, visits, (visits / visits.sum(1, keepdim=True)).float())
    degree = torch.tensor([9, 1, 4, 16])
    got = debiased(nbrs, degree, 0.5)
    raw = np.array([6 / 3, 3 / 1, 1 / 2])
    np.testing.assert_allclose(got.weights[0].numpy(), raw / raw.sum(), rtol=1e-6)
    assert got.weights[1].tolist() == [1.0, 0.0, 0.0]
    assert debiased(nbrs, degree, 0.0) is nbrs
    assert torch.equal(got.ids, ids) and torch.equal(got.visits, visits)


def test_debiased_item_neighbors_come_from_the_sampler():
    graph = csr_from_edges(4, 3, [0, 1, 1, 2, 3, 3, 3], [0, 0, 1, 1, 0, 1, 2])
    cfg = SamplerConfig(num_walks=400, top_k=3, degree_power=1.0)
    gen = torch.Generator().manual_seed(0)
    plain = item_neighbors(
        graph,
        torch.tensor([0]),
        replace(cfg, degree_power=0.0),
        generator=torch.Generator().manual_seed(0),
    )
    got = item_neighbors(graph, torch.tensor([0]), cfg, generator=gen)
    assert torch.equal(got.ids, plain.ids)
    degree = graph.item_degree[plain.ids[0].clamp_min(0)].double()
    want = plain.visits[0] / degree
    torch.testing.assert_close(
        got.weights[0].double(), want / want.sum(), rtol=1e-6, atol=1e-7
    )
