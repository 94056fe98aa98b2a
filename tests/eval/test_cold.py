import math

import numpy as np
import pytest
import torch

from pinsage.eval.cold import cold_item_mask, cold_start_metrics, top_k_share
from tests.helpers import to_csr

NUM_USERS, NUM_ITEMS, DIM = 25, 40, 6


def problem(seed: int):
    """Random embeddings; items 0..9 cold (never trained), held out now and then."""
    rng = np.random.default_rng(seed)
    warm = np.arange(10, NUM_ITEMS)
    train, test = [], []
    for u in range(NUM_USERS):
        items = rng.permutation(warm)
        num_train = int(rng.integers(0, 6))
        train.append(sorted(items[:num_train].tolist()))
        held = items[num_train : num_train + int(rng.integers(0, 4))].tolist()
        held += rng.choice(10, size=int(rng.integers(0, 3)), replace=False).tolist()
        test.append(sorted(held) if u % 6 else [])
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(NUM_USERS, DIM, generator=gen),
        torch.randn(NUM_ITEMS, DIM, generator=gen),
        train,
        test,
    )


def reference(user_emb, item_emb, train, test, cold: set[int], ks):
    """The cold-start metrics written plainly, one user at a time."""
    parts = ("cold", "warm", "cold_only")
    sums = {f"{p}_{m}@{k}": 0.0 for p in parts for m in ("recall", "ndcg") for k in ks}
    users = dict.fromkeys(parts, 0)
    cold_slots = {k: 0 for k in ks}
    slots = {k: 0 for k in ks}
    for u in range(NUM_USERS):
        if not test[u]:
            continue
        scores = (item_emb @ user_emb[u]).tolist()
        ranked = sorted(
            (i for i in range(NUM_ITEMS) if i not in train[u]), key=lambda i: -scores[i]
        )
        for k in ks:
            cold_slots[k] += sum(i in cold for i in ranked[:k])
            slots[k] += len(ranked[:k])
        # cold_only: the same user ranks the cold items alone.
        ranked_cold = [i for i in ranked if i in cold]
        for part in parts:
            relevant = {i for i in test[u] if (i in cold) == (part != "warm")}
            if not relevant:
                continue
            users[part] += 1
            order = ranked_cold if part == "cold_only" else ranked
            for k in ks:
                hits = [p for p, i in enumerate(order[:k]) if i in relevant]
                dcg = sum(1 / math.log2(p + 2) for p in hits)
                idcg = sum(1 / math.log2(p + 2) for p in range(min(len(relevant), k)))
                sums[f"{part}_recall@{k}"] += len(hits) / len(relevant)
                sums[f"{part}_ndcg@{k}"] += dcg / idcg
    out = {key: v / users[key.rsplit("_", 1)[0]] for key, v in sums.items()}
    out |= {f"{p}_users": n for p, n in users.items()}
    out |= {f"cold_top_share@{k}": cold_slots[k] / slots[k] for k in ks}
    held = [i for row in test for i in row]
    out["cold_test_share"] = sum(i in cold for i in held) / len(held)
    out["cold_items"] = len(cold)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_cold_start_metrics_match_brute_force(seed):
    user_emb, item_emb, train, test = problem(seed)
    train_indptr, train_indices = to_csr(train)
    test_indptr, test_indices = to_csr(test)
    item_degree = torch.bincount(train_indices, minlength=NUM_ITEMS)
    item_indptr = torch.cat([torch.zeros(1, dtype=torch.int64), item_degree.cumsum(0)])
    cold = cold_item_mask(item_indptr)
    got = cold_start_metrics(
        lambda users: user_emb[users] @ item_emb.T,
        NUM_ITEMS,
        train_indptr,
        train_indices,
        test_indptr,
        test_indices,
        cold,
        [5, 20],
        chunk_size=7,
    )
    want = reference(
        user_emb,
        item_emb,
        train,
        test,
        set(torch.nonzero(cold).flatten().tolist()),
        [5, 20],
    )
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
    assert got["cold_users"] > 0 and got["warm_users"] > 0
    # Ranked among 10 cold items rather than 40, the cold items are found more often.
    assert got["cold_only_recall@5"] > got["cold_recall@5"]


def test_top_k_share_skips_unfillable_slots():
    # User 0 has seen items 0 and 1 of three: one slot to fill, with the cold item 2.
    train_indptr, train_indices = to_csr([[0, 1], []])
    scores = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    share = top_k_share(
        lambda users: scores[users].clone(),
        3,
        train_indptr,
        train_indices,
        torch.tensor([0, 1]),
        torch.tensor([False, False, True]),
        [1, 3],
    )
    assert share == {1: 1 / 2, 3: 2 / 4}  # top-1: items 2 and 0; top-3: 1 + 3 slots


@pytest.mark.parametrize("cold_items", [0.0, 0.2])
def test_evaluator_reports_cold_and_warm_when_the_test_has_cold_items(
    tmp_path, cold_items
):
    from pinsage.config import ModelConfig, PipelineConfig, SamplerConfig
    from pinsage.data.synth import SynthConfig, synthesize
    from pinsage.eval.job import evaluator
    from pinsage.features import FeatureStore
    from pinsage.graph import build_graph, load_graph
    from pinsage.run import build_model

    synth = SynthConfig(
        num_items=120,
        num_users=80,
        num_edges=1500,
        num_clusters=4,
        cold_items=cold_items,
    )
    data = synthesize(synth, tmp_path / "d")
    build_graph(
        data / "interactions.parquet", tmp_path / "g", items=data / "items.parquet"
    )
    graph = load_graph(tmp_path / "g")
    cfg = PipelineConfig(
        sampler=SamplerConfig(num_walks=10, top_k=5),
        model=ModelConfig(dim=8, hidden_dim=8, out_dim=8, text_buckets=256),
    )
    store = FeatureStore.from_graph(graph, text_buckets=256)
    torch.manual_seed(0)
    metrics = evaluator(graph, data / "test.parquet", cfg)(
        build_model(cfg, graph, store).eval(), store
    )
    if cold_items == 0:
        assert not any(key.startswith(("cold_", "warm_")) for key in metrics)
        return
    assert metrics["cold_items"] == int(cold_item_mask(graph.csr.item_indptr).sum())
    assert metrics["cold_items"] >= 24 and metrics["cold_users"] > 0
    assert 0 < metrics["cold_test_share"] < 1
    for key in ("cold_recall@20", "warm_recall@20", "cold_top_share@20"):
        assert 0 <= metrics[key] <= 1
