import math

import numpy as np
import pytest
import torch

from pinsage.eval import (
    heldout_item_pairs,
    item_to_item_metrics,
    popularity_scorer,
    popularity_scores,
    ranking_metrics,
    scored_ranking_metrics,
)
from tests.helpers import to_csr

NUM_USERS, NUM_ITEMS, DIM = 30, 50, 8


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny problems: avoid OpenMP wake-up costs when the machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_problem(seed: int):
    """Users with several train/test items; some users have no test items."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for u in range(NUM_USERS):
        items = rng.permutation(NUM_ITEMS)
        num_train = int(rng.integers(0, 8)) if u % 7 else 0
        num_test = int(rng.integers(1, 6)) if u % 5 else 0
        train.append(sorted(items[:num_train].tolist()))
        test.append(sorted(items[num_train : num_train + num_test].tolist()))
    gen = torch.Generator().manual_seed(seed)
    user_emb = torch.randn(NUM_USERS, DIM, generator=gen)
    item_emb = torch.randn(NUM_ITEMS, DIM, generator=gen)
    return user_emb, item_emb, train, test


def reference_ranking(user_emb, item_emb, train, test, ks):
    """LightGCN recall/NDCG written plainly, one user at a time."""
    sums = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg")}
    users = 0
    for u in range(len(train)):
        relevant = set(test[u])
        if not relevant:
            continue
        users += 1
        scores = (item_emb @ user_emb[u]).tolist()
        candidates = [i for i in range(len(scores)) if i not in set(train[u])]
        ranked = sorted(candidates, key=lambda i: -scores[i])
        for k in ks:
            hits = [p for p, i in enumerate(ranked[:k]) if i in relevant]
            dcg = sum(1 / math.log2(p + 2) for p in hits)
            idcg = sum(1 / math.log2(p + 2) for p in range(min(len(relevant), k)))
            sums[f"recall@{k}"] += len(hits) / len(relevant)
            sums[f"ndcg@{k}"] += dcg / idcg
    return {"users": users, **{key: v / users for key, v in sums.items()}}


def reference_ranks(query_emb, target, item_emb, query_items):
    ranks = []
    for q in range(len(target)):
        scores = (item_emb @ query_emb[q]).tolist()
        t = int(target[q])
        own = int(query_items[q]) if query_items is not None else -1
        rank = 1 + sum(
            1 for j, s in enumerate(scores) if j != t and j != own and s >= scores[t]
        )
        ranks.append(rank)
    return ranks


def assert_metrics_close(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ks", [[1], [5, 20], [3, 10, 60]])
def test_ranking_matches_reference(seed, ks):
    user_emb, item_emb, train, test = random_problem(seed)
    args = (user_emb, item_emb, *to_csr(train), *to_csr(test), ks)
    results = [ranking_metrics(*args, chunk_size=c) for c in (1, 7, 4096)]
    assert results[0] == results[1] == results[2]
    assert_metrics_close(
        results[0], reference_ranking(user_emb, item_emb, train, test, ks)
    )
    assert results[0]["users"] == sum(1 for t in test if t)


def test_ranking_hand_computed():
    # Both users rank items 3 > 2 > 1 > 0 (scores = item index).
    user_emb = torch.ones(2, 1)
    item_emb = torch.arange(4.0)[:, None]
    # User 0: train {3}; ranking 2, 1, 0; test {1}: hit at position 1.
    # User 1: no train; ranking 3, 2, 1, 0; test {3, 0}: hits at positions 0 and 3.
    train_indptr, train_indices = torch.tensor([0, 1, 1]), torch.tensor([3])
    test_indptr, test_indices = torch.tensor([0, 1, 3]), torch.tensor([1, 3, 0])
    got = ranking_metrics(
        user_emb,
        item_emb,
        train_indptr,
        train_indices,
        test_indptr,
        test_indices,
        [1, 2, 4],
    )
    inv_log3 = 1 / math.log2(3)
    want = {
        "users": 2,
        "recall@1": (0 + 1 / 2) / 2,
        "ndcg@1": (0 + 1) / 2,
        "recall@2": (1 + 1 / 2) / 2,
        "ndcg@2": (inv_log3 + 1 / (1 + inv_log3)) / 2,
        "recall@4": (1 + 1) / 2,
        "ndcg@4": (inv_log3 + (1 + 1 / math.log2(5)) / (1 + inv_log3)) / 2,
    }
    assert_metrics_close(got, want)


def test_ranking_training_items_never_hit_and_duplicates_ignored():
    # One user, test item 2 is also a training item; test item 1 is listed twice.
    got = ranking_metrics(
        torch.ones(1, 1),
        torch.arange(3.0)[:, None],
        torch.tensor([0, 1]),
        torch.tensor([2]),
        torch.tensor([0, 3]),
        torch.tensor([1, 2, 1]),
        [5],
    )
    # Distinct test items {1, 2}; ranking 1, 0 (K > candidates): one hit of two.
    assert got["recall@5"] == pytest.approx(0.5)
    assert got["ndcg@5"] == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_ranking_without_test_users():
    got = ranking_metrics(
        torch.ones(2, 1),
        torch.ones(3, 1),
        torch.tensor([0, 1, 1]),
        torch.tensor([0]),
        torch.zeros(3, dtype=torch.int64),
        torch.zeros(0, dtype=torch.int64),
        [2],
    )
    assert got == {"users": 0, "recall@2": 0.0, "ndcg@2": 0.0}


@pytest.mark.parametrize("bad", [[], [0], [3, -1]])
def test_bad_ks_rejected(bad):
    with pytest.raises(ValueError, match="ks"):
        ranking_metrics(
            torch.ones(1, 1),
            torch.ones(2, 1),
            torch.tensor([0, 0]),
            torch.zeros(0, dtype=torch.int64),
            torch.tensor([0, 1]),
            torch.tensor([1]),
            bad,
        )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("with_query_items", [True, False])
def test_item_to_item_matches_reference(seed, with_query_items):
    gen = torch.Generator().manual_seed(seed)
    item_emb = torch.randn(NUM_ITEMS, DIM, generator=gen)
    query_items = torch.randint(0, NUM_ITEMS, (40,), generator=gen)
    target = torch.randint(0, NUM_ITEMS, (40,), generator=gen)
    target[:3] = query_items[:3]  # a query may be its own target
    query_emb = item_emb[query_items]
    own = query_items if with_query_items else None
    ks = [1, 5, 10]
    results = [
        item_to_item_metrics(
            query_emb, target, item_emb, ks, query_items=own, chunk_size=c
        )
        for c in (1, 7, 4096)
    ]
    assert results[0] == results[1] == results[2]
    ranks = reference_ranks(query_emb, target, item_emb, own)
    want = {"pairs": 40, "mrr": float(np.mean([1 / math.ceil(r / 100) for r in ranks]))}
    want |= {f"hit_rate@{k}": float(np.mean([r <= k for r in ranks])) for k in ks}
    assert_metrics_close(results[0], want)


def test_item_to_item_excludes_query_item():
    # Scores for query vector 1: item i scores i. The query item 4 outranks the
    # target 3 only when it is not excluded.
    item_emb = torch.arange(5.0)[:, None]
    query, target = torch.ones(1, 1), torch.tensor([3])
    excluded = item_to_item_metrics(
        query, target, item_emb, [1], query_items=torch.tensor([4])
    )
    included = item_to_item_metrics(query, target, item_emb, [1])
    assert excluded["hit_rate@1"] == 1.0
    assert included["hit_rate@1"] == 0.0


def test_item_to_item_ties_pessimistic_and_scaled_mrr():
    # All 250 items tie: the target ranks last (250) -> 1 / ceil(2.5) = 1/3.
    item_emb = torch.ones(250, 2)
    got = item_to_item_metrics(
        torch.ones(2, 2), torch.tensor([0, 7]), item_emb, [10, 250, 10]
    )
    assert got == {"pairs": 2, "hit_rate@10": 0.0, "hit_rate@250": 1.0, "mrr": 1 / 3}


def test_item_to_item_counts_exactly_in_low_precision():
    # 301 tied items: a bfloat16 count would round 301 to 300 (8-bit significand).
    got = item_to_item_metrics(
        torch.ones(1, 1, dtype=torch.bfloat16),
        torch.tensor([5]),
        torch.ones(301, 1, dtype=torch.bfloat16),
        [300, 301],
    )
    assert got == {"pairs": 1, "hit_rate@300": 0.0, "hit_rate@301": 1.0, "mrr": 0.25}


def test_popularity_scores():
    counts = popularity_scores(torch.tensor([2, 0, 2, 2], dtype=torch.int32), 4)
    assert counts.tolist() == [1.0, 0.0, 3.0, 0.0]
    assert counts.dtype == torch.float32


def test_popularity_baseline():
    # Popularity: item 2 (3), item 1 (2), items 0 and 3 (1 each; tie -> 0 first).
    train = [[2, 1], [2, 1, 0], [2, 3]]
    test = [[0], [3], [1]]
    train_csr = to_csr(train)
    scorer = popularity_scorer(train_csr[1], 4)
    got = scored_ranking_metrics(scorer, 4, *train_csr, *to_csr(test), [1, 2])
    # User 0 ranks 0, 3: hit at 0. User 1 ranks 3: hit at 0. User 2 ranks 1, 0: hit.
    assert got == {
        "users": 3,
        "recall@1": 1.0,
        "ndcg@1": 1.0,
        "recall@2": 1.0,
        "ndcg@2": 1.0,
    }
    # Same as ranking_metrics with a shared ones vector when there are no ties.
    user_emb, item_emb, train, test = random_problem(3)
    train_csr, test_csr = to_csr(train), to_csr(test)
    pop = popularity_scores(train_csr[1], NUM_ITEMS)
    pop = pop + torch.rand(NUM_ITEMS, generator=torch.Generator().manual_seed(0)) / 2
    via_ranking = ranking_metrics(
        torch.ones(NUM_USERS, 1), pop[:, None], *train_csr, *test_csr, [5, 10]
    )
    want = reference_ranking(
        torch.ones(NUM_USERS, 1), pop[:, None], train, test, [5, 10]
    )
    assert_metrics_close(via_ranking, want)


def test_heldout_item_pairs():
    user_emb, item_emb, train, test = random_problem(4)
    args = (*to_csr(train), *to_csr(test))

    def pairs(seed):
        return heldout_item_pairs(*args, generator=torch.Generator().manual_seed(seed))

    queries, targets = pairs(11)
    again_q, again_t = pairs(11)
    assert torch.equal(queries, again_q) and torch.equal(targets, again_t)
    assert not torch.equal(queries, pairs(12)[0])
    assert queries.dtype == targets.dtype == torch.int64
    # One pair per held-out interaction of users with training items, in CSR order.
    want_targets = [i for u in range(NUM_USERS) if train[u] for i in test[u]]
    assert targets.tolist() == want_targets
    owners = [u for u in range(NUM_USERS) if train[u] for _ in test[u]]
    assert all(q in train[u] for q, u in zip(queries.tolist(), owners, strict=True))
    # Each held-out interaction draws on its own: uniform over the user's items.
    many_q, many_t = heldout_item_pairs(
        torch.tensor([0, 3, 3]),
        torch.tensor([3, 5, 9]),
        torch.tensor([0, 600, 601]),
        torch.zeros(601, dtype=torch.int64),
        generator=torch.Generator().manual_seed(0),
    )
    assert many_t.numel() == 600  # user 1 has no training items: skipped
    counts = torch.bincount(many_q, minlength=10)[[3, 5, 9]]
    assert counts.sum() == 600 and counts.min() > 150
