import numpy as np
import pytest
import torch

from pinsage.errors import ConfigError
from pinsage.eval.baselines import (
    baseline_metrics,
    content_features,
    content_scorer,
    gfcf_scorer,
    itemknn_scorer,
)
from pinsage.eval.cold import cold_start_metrics
from pinsage.eval.job import check_baselines
from pinsage.features.store import FeatureStore
from pinsage.graph import load_graph
from pinsage.graph.feature_columns import FeatureSpec
from pinsage.graph.spectral import interaction_matrix
from tests.helpers import to_csr

NUM_USERS, NUM_ITEMS = 40, 30


def random_csr(seed: int, density: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A user -> items CSR with a few repeated interactions (R counts them once)."""
    rng = np.random.default_rng(seed)
    dense = rng.random((NUM_USERS, NUM_ITEMS)) < density
    dense[np.arange(NUM_USERS), rng.integers(0, NUM_ITEMS, NUM_USERS)] = True
    rows = [np.flatnonzero(row) for row in dense]
    rows = [np.concatenate([r, r[:1]]) if u % 5 == 0 else r for u, r in enumerate(rows)]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    return torch.from_numpy(indptr), torch.from_numpy(np.concatenate(rows))


def dense_r(indptr: torch.Tensor, indices: torch.Tensor) -> np.ndarray:
    r = np.zeros((NUM_USERS, NUM_ITEMS))
    for u in range(NUM_USERS):
        r[u, indices[indptr[u] : indptr[u + 1]].numpy()] = 1.0
    return r


def inv_sqrt(d: np.ndarray) -> np.ndarray:
    return np.where(d > 0, 1.0 / np.sqrt(np.maximum(d, 1e-300)), 0.0)


def dense_cosine(r: np.ndarray) -> np.ndarray:
    norms = np.sqrt(r.sum(0))
    cosine = (r.T @ r) / np.maximum(np.outer(norms, norms), 1e-300)
    return cosine


def reference_itemknn(r: np.ndarray) -> np.ndarray:
    return r @ dense_cosine(r)


def reference_gfcf(r: np.ndarray, k: int) -> np.ndarray:
    du, di = inv_sqrt(r.sum(1)), inv_sqrt(r.sum(0))
    norm = du[:, None] * r * di[None, :]
    _, _, vt = np.linalg.svd(norm)
    vk = vt[:k]  # (k, I): the top k right singular vectors
    ideal = (r * di[None, :]) @ vk.T @ vk * np.sqrt(r.sum(0))[None, :]
    return r @ norm.T @ norm + 0.3 * ideal


def reference_recall(scores: np.ndarray, r: np.ndarray, test: np.ndarray, k: int):
    """Mean recall@k over users with held-out items, by a plain argsort.

    A held-out item that is also a training item counts in the denominator but is
    never a hit (it is excluded from the ranking), as `ranking_metrics` documents.
    """
    scores = np.where(r > 0, -np.inf, scores)
    recalls = []
    for u in np.flatnonzero(test.sum(1)):
        order = np.argsort(-scores[u], kind="stable")
        top, rest = scores[u, order[k - 1]], scores[u, order[k]]
        assert top != rest, "a tie at the cut-off: pick another seed"
        recalls.append(test[u, order[:k]].sum() / test[u].sum())
    return float(np.mean(recalls))


def test_interaction_matrix_is_binary():
    indptr, indices = random_csr(0, 0.2)
    r = interaction_matrix(indptr, indices, NUM_ITEMS)
    np.testing.assert_array_equal(r.toarray(), dense_r(indptr, indices))


def test_itemknn_scores_match_dense_cosine():
    indptr, indices = random_csr(1, 0.2)
    r = interaction_matrix(indptr, indices, NUM_ITEMS)
    users = torch.tensor([0, 3, 7, 39])
    got = itemknn_scorer(r)(users).numpy()
    want = reference_itemknn(dense_r(indptr, indices))[users.numpy()]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [3, 10])
def test_gfcf_scores_match_dense_svd(k):
    indptr, indices = random_csr(2, 0.25)
    r = interaction_matrix(indptr, indices, NUM_ITEMS)
    users = torch.arange(NUM_USERS)
    got = gfcf_scorer(r, rank=k)(users).numpy()
    want = reference_gfcf(dense_r(indptr, indices), k)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_baseline_metrics_match_reference_recall():
    indptr, indices = random_csr(3, 0.2)
    test_indptr, test_indices = random_csr(4, 0.1)
    r, test = dense_r(indptr, indices), dense_r(test_indptr, test_indices)
    got = baseline_metrics(
        ["itemknn", "gfcf", "popularity"],
        indptr,
        indices,
        test_indptr,
        test_indices,
        NUM_ITEMS,
        [5],
        chunk_size=7,
    )
    assert list(got) == ["itemknn", "gfcf", "popularity"]
    gfcf_rank = min(256, NUM_USERS, NUM_ITEMS) - 1
    for name, scores in [
        ("itemknn", reference_itemknn(r)),
        ("gfcf", reference_gfcf(r, gfcf_rank)),
    ]:
        want = reference_recall(scores, r, test, 5)
        assert got[name]["recall@5"] == pytest.approx(want, abs=1e-9), name
    # Popularity counts every interaction, repeated ones included.
    counts = np.bincount(indices.numpy(), minlength=NUM_ITEMS)
    popularity = counts[None, :] - np.arange(NUM_ITEMS)[None, :] / NUM_ITEMS
    want = reference_recall(np.repeat(popularity, NUM_USERS, 0), r, test, 5)
    assert got["popularity"]["recall@5"] == pytest.approx(want, abs=1e-9)


def test_unknown_baseline_is_refused():
    indptr, indices = random_csr(0, 0.2)
    with pytest.raises(ValueError, match="unknown baselines"):
        baseline_metrics(["svd"], indptr, indices, indptr, indices, NUM_ITEMS, [5])


def feature_store(seed: int) -> FeatureStore:
    """Every kind of feature column, with a few empty bags and a zero vector row."""
    rng = np.random.default_rng(seed)
    dense = torch.from_numpy(rng.normal(3.0, 2.0, (NUM_ITEMS, 2))).float()
    vector = torch.from_numpy(rng.normal(size=(NUM_ITEMS, 4))).float()
    vector[5] = 0.0

    def bags(width: int) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = rng.integers(0, 4, NUM_ITEMS)
        values = rng.integers(0, width, lengths.sum())
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        return torch.from_numpy(values), torch.from_numpy(offsets)

    std, mean = torch.std_mean(dense, dim=0, correction=0)
    return FeatureStore(
        specs=[
            FeatureSpec("price", "dense"),
            FeatureSpec("year", "dense"),
            FeatureSpec("vec", "vector", 4),
            FeatureSpec("genre", "categorical", 6),
            FeatureSpec("title", "text"),
        ],
        num_items=NUM_ITEMS,
        text_buckets=16,
        dense_names=["price", "year"],
        dense=dense,
        dense_mean=mean,
        dense_std=std,
        vectors={"vec": vector},
        categorical={"genre": bags(6)},
        text={"title": bags(16)},
    )


def reference_content_rows(store: FeatureStore) -> np.ndarray:
    """X written plainly: unit groups side by side (no dense), then unit rows."""

    def unit(block: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        return np.divide(block, norms, out=np.zeros_like(block), where=norms > 0)

    def counts(values, offsets, width):
        out = np.zeros((NUM_ITEMS, width))
        for i in range(NUM_ITEMS):
            for v in values[offsets[i] : offsets[i + 1]].tolist():
                out[i, v] += 1  # a repeated token counts twice
        return out

    groups = [
        store.vectors["vec"].double().numpy(),
        counts(*store.categorical["genre"], 6),
        counts(*store.text["title"], 16),
    ]
    return unit(np.hstack([unit(g) for g in groups]))


def test_content_scores_match_dense_feature_cosine():
    store = feature_store(5)
    indptr, indices = random_csr(5, 0.2)
    r = interaction_matrix(indptr, indices, NUM_ITEMS)
    x = reference_content_rows(store)
    np.testing.assert_allclose(content_features(store).toarray(), x, atol=1e-12)
    users = torch.tensor([0, 2, 9, 39])
    got = content_scorer(r, content_features(store))(users).numpy()
    want = (dense_r(indptr, indices) @ x @ x.T)[users.numpy()]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_baselines_report_cold_metrics_of_their_own_scores():
    store = feature_store(6)
    indptr, indices = random_csr(6, 0.2)
    cold = torch.arange(NUM_ITEMS) < 6  # items 0..5: no training interaction
    train = [
        [i for i in row.tolist() if i >= 6]
        for row in indices.split(indptr.diff().tolist())
    ]
    indptr, indices = to_csr(train)
    held = random_csr(7, 0.15)
    got = baseline_metrics(
        ["content", "popularity"],
        indptr,
        indices,
        *held,
        NUM_ITEMS,
        [5],
        features=store,
        cold=cold,
    )
    x = reference_content_rows(store)
    content = torch.from_numpy(dense_r(indptr, indices) @ x @ x.T)
    want = cold_start_metrics(
        lambda users: content[users].clone(),
        NUM_ITEMS,
        indptr,
        indices,
        *held,
        cold,
        [5],
    )
    for key, value in want.items():
        assert got["content"][key] == pytest.approx(value, abs=1e-6), key
    assert got["content"]["cold_only_recall@5"] > 0
    # Popularity gives cold items no score: they fill no top-5 slot.
    assert got["popularity"]["cold_top_share@5"] == 0.0
    assert got["popularity"]["cold_recall@5"] == 0.0


def test_content_baseline_needs_item_features(id_graph_dir, graph_dir):
    with pytest.raises(ConfigError, match="has no item features"):
        check_baselines(load_graph(id_graph_dir), ["popularity", "content"])
    check_baselines(load_graph(id_graph_dir), ["popularity", "itemknn", "gfcf"])
    check_baselines(load_graph(graph_dir), ["content"])  # features: fine
