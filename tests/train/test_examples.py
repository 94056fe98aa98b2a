from collections import Counter
from dataclasses import replace

import numpy as np
import torch

from pinsage.config import SamplerConfig
from pinsage.sampler import PAD, item_neighbors
from pinsage.train.examples import sample_positive_pairs
from pinsage.train.negatives import (
    hard_negatives,
    hard_negatives_at,
    random_negatives,
    with_batch_items,
)
from tests.helpers import csr_from_edges

# contexts 0: items {0, 1, 2}; 1: {2, 3}; 2: {4} (single item)
GRAPH = dict(
    num_items=6, num_contexts=3, items=[0, 1, 2, 2, 3, 4], contexts=[0, 0, 0, 1, 1, 2]
)


def test_positive_pairs_are_co_engagements_with_uniform_distribution():
    g = csr_from_edges(**GRAPH)
    pairs = sample_positive_pairs(g, 60_000, generator=torch.Generator().manual_seed(0))
    items_of = {0: {0, 1, 2}, 1: {2, 3}, 2: {4}}
    for c, q, p, ok in zip(*(t.tolist() for t in pairs), strict=True):
        assert q in items_of[c] and p in items_of[c]
        assert ok == (len(items_of[c]) > 1) and (p != q) == ok
    # Interactions are uniform (1/6 each); the partner is uniform over the others:
    # (0, 1) = 1/6 * 1/2; (2, 3) = 1/6 (item 2 through context 1, whose only other
    # item is 3); (4, 4) = 1/6 (context 2 has one item: no partner, the pair repeats q).
    counts = Counter(zip(pairs.queries.tolist(), pairs.positives.tolist(), strict=True))
    for (q, p), expected in {
        (0, 1): 1 / 12,
        (0, 2): 1 / 12,
        (2, 3): 1 / 6,
        (4, 4): 1 / 6,
    }.items():
        assert abs(counts[(q, p)] / 60_000 - expected) < 0.01


def test_random_negatives_uniform_and_weighted_log_q():
    gen = torch.Generator().manual_seed(0)
    ids, log_q = random_negatives(1000, 6, None, generator=gen)
    assert (
        ids.min() >= 0
        and ids.max() < 6
        and torch.allclose(log_q, torch.full((1000,), np.log(1000 / 6)).float())
    )
    probs = torch.tensor([0.5, 0.5, 0, 0, 0, 0], dtype=torch.double)
    ids, log_q = random_negatives(100, 6, probs, generator=gen)
    assert set(ids.tolist()) <= {0, 1} and torch.allclose(
        log_q, torch.full((100,), np.log(50.0)).float()
    )


def test_batch_items_correction_is_the_expected_count_in_the_mixed_sample():
    # Empirically: R uniform negatives plus the queries of B sampled engagements hold
    # item n, on average, exp(log_q_n) times.
    g = csr_from_edges(**GRAPH)
    gen = torch.Generator().manual_seed(0)
    trials, r, b = 40_000, 4, 3
    random_ids, _ = random_negatives(r * trials, 6, None, generator=gen)
    engaged = sample_positive_pairs(g, b * trials, generator=gen).queries
    counts = torch.bincount(torch.cat([random_ids, engaged]), minlength=6) / trials
    ids, log_q = with_batch_items(
        g, torch.zeros(r, dtype=torch.long), torch.arange(6)[:b], None
    )
    # Closed form for this graph: degrees (1, 1, 2, 1, 1, 0) of 6 edges.
    degree = torch.tensor([1, 1, 2, 1, 1, 0], dtype=torch.double)
    want = r / 6 + b * degree / 6
    torch.testing.assert_close(counts.double(), want, atol=0.03, rtol=0)
    torch.testing.assert_close(log_q.double(), want[ids].log(), atol=1e-6, rtol=0)


def test_curriculum():
    assert [hard_negatives_at(e, 3) for e in range(1, 7)] == [0, 1, 2, 3, 3, 3]


def test_hard_negatives_come_from_the_band_of_the_visit_ranking():
    rng = np.random.default_rng(0)
    pairs = np.unique(
        np.stack([rng.integers(200, size=3000), rng.integers(60, size=3000)]), axis=1
    )
    g = csr_from_edges(200, 60, pairs[0], pairs[1])
    cfg = SamplerConfig(num_walks=400, walk_length=4, restart=0.3)
    seeds = torch.tensor([3, 50, 120])
    band = (0.05, 0.2)  # ranks 10..39 of 200 items
    hard = hard_negatives(
        g, seeds, 50, band, cfg, generator=torch.Generator().manual_seed(1)
    )
    assert hard.shape == (3, 50)
    # Replay the function's own walks (same generator state) to get its exact ranking.
    gen = torch.Generator().manual_seed(1)
    ranking = item_neighbors(g, seeds, replace(cfg, top_k=40), generator=gen).ids
    for r in range(3):
        assert set(hard[r].tolist()) <= set(ranking[r, 10:40].tolist())
        assert len(set(hard[r].tolist())) > 10  # spread over the band, not one item
        assert seeds[r].item() not in hard[r].tolist()


def test_hard_negatives_for_sparse_reach_and_contexts():
    g = csr_from_edges(**GRAPH)
    cfg = SamplerConfig(num_walks=50, walk_length=3, restart=0.5)
    hard = hard_negatives(
        g,
        torch.tensor([0, 4, 5]),
        4,
        (0.5, 1.0),
        cfg,
        generator=torch.Generator().manual_seed(0),
    )
    # Item 0 reaches {1, 2, 3} (< lo = 3 items): it draws from the less visited half.
    assert set(hard[0].tolist()) <= {1, 2, 3}
    assert (hard[1] == PAD).all()  # item 4's context has no other item: nothing reached
    assert (hard[2] == PAD).all()  # item 5 is isolated
    hard = hard_negatives(
        g,
        torch.tensor([1]),
        3,
        (0.0, 1.0),
        cfg,
        generator=torch.Generator().manual_seed(0),
        from_context=True,
    )
    assert set(hard[0].tolist()) <= {0, 1, 2, 3}
