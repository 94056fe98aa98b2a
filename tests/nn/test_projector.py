import numpy as np
import pyarrow as pa
import pytest
import torch

from pinsage.errors import ConfigError
from pinsage.features import FeatureStore, fnv1a_64, tokenize
from pinsage.graph.feature_columns import FeatureSpec
from pinsage.nn import FeatureProjector
from tests.helpers import COLD, ITEMS, assert_shape, write_tiny_graph

BUCKETS = 1024


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return write_tiny_graph(tmp_path_factory.mktemp("nn_features"))


@pytest.fixture(scope="module")
def store(graph):
    return FeatureStore.from_graph(graph, text_buckets=BUCKETS, max_tokens=4)


def _fnv1a_reference(text: str) -> int:
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) % 2**64
    return h


def _bag_rows(bags, n):
    values, offsets = bags.values.tolist(), bags.offsets.tolist() + [len(bags.values)]
    return [values[offsets[i] : offsets[i + 1]] for i in range(n)]


def test_fnv1a_matches_reference_and_known_vectors():
    words = ["", "a", "foobar", "héllo", "a much longer token than the others", "b"]
    got = fnv1a_64(pa.array(words)).tolist()
    assert got == [_fnv1a_reference(w) for w in words]
    assert got[:2] == [0xCBF29CE484222325, 0xAF63DC4C8601EC8C]  # published vectors
    sliced = fnv1a_64(pa.array(words).slice(2, 2)).tolist()
    assert sliced == got[2:4]


def test_tokenize_lowercases_splits_truncates_and_hashes():
    text = pa.chunked_array([["Red Guitar, blue NOTES!", None], ["", "a-b_c d e"]])
    ids, offsets = tokenize(text, BUCKETS, max_tokens=3)
    expected = [["red", "guitar", "blue"], [], [], ["a", "b", "c"]]
    assert offsets.tolist() == [0, 3, 3, 3, 6]
    assert ids.tolist() == [
        _fnv1a_reference(t) % BUCKETS for row in expected for t in row
    ]


def test_store_gathers_the_right_rows(graph, store):
    rows = graph.item_index([3, 9, 0, 3])
    batch = store.gather(torch.from_numpy(rows))
    assert torch.equal(batch.items, torch.from_numpy(rows))
    assert store.dense_names == ["price"]
    assert_shape(batch.dense, (4, 1))
    assert batch.dense[:, 0].tolist() == [4.0, 10.0, 1.0, 4.0]
    assert batch.vectors["emb"].tolist() == [ITEMS["emb"][i] for i in (3, 9, 0, 3)]
    vocab = graph.feature("genre")["vocab"].to_pylist()
    genres = [
        [vocab[c] for c in row] for row in _bag_rows(batch.categorical["genre"], 4)
    ]
    assert [sorted(g) for g in genres] == [["pop"], ["rock"], ["pop", "rock"], ["pop"]]
    tokens = [
        ["pop", "pop", "pop"],
        ["cold", "start", "item", "only"],  # max_tokens=4 drops "text"
        ["red", "guitar", "blue", "notes"],
    ]
    expected = [[_fnv1a_reference(t) % BUCKETS for t in row] for row in tokens]
    assert _bag_rows(batch.text["title"], 4) == [*expected, expected[0]]


def test_store_dense_statistics(store):
    prices = np.array(ITEMS["price"], dtype=np.float32)
    torch.testing.assert_close(store.dense_mean, torch.tensor([prices.mean()]))
    torch.testing.assert_close(store.dense_std, torch.tensor([prices.std()]))


def test_batch_to_keeps_structure(store):
    batch = store.gather(torch.tensor([1, 2]))
    moved = batch.to("cpu", non_blocking=True)
    assert torch.equal(moved.text["title"].values, batch.text["title"].values)
    assert moved.categorical.keys() == batch.categorical.keys()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinning needs CUDA")
def test_batch_pin_memory(store):
    assert store.gather(torch.tensor([1, 2])).pin_memory().dense.is_pinned()


def test_projector_cold_start_without_id_embedding(graph, store):
    torch.manual_seed(0)
    proj = FeatureProjector.from_store(store, 8, id_embedding=False)
    assert proj.emb_id is None
    torch.testing.assert_close(proj.dense_mean, store.dense_mean)
    out = proj(store.gather(torch.arange(graph.num_items)))
    assert_shape(out, (graph.num_items, 8))
    cold = int(graph.item_index([COLD])[0])
    assert out[cold].norm() > 0
    # The cold item's vector comes from its own features only.
    torch.testing.assert_close(out[cold], proj(store.gather(torch.tensor([cold])))[0])


def test_projector_parts_sum(store):
    torch.manual_seed(0)
    proj = FeatureProjector.from_store(
        store, 6, id_embedding=True, categorical_dim=3, text_dim=4
    )
    batch = store.gather(torch.tensor([0, 4, 9]))
    x = (batch.dense - store.dense_mean) / store.dense_std
    expected = (
        proj.lin_dense(x)
        + proj.lin_vectors[0](batch.vectors["emb"])
        + proj.emb_categorical[0](batch.categorical["genre"])
        + proj.emb_text[0](batch.text["title"])
        + proj.emb_id(batch.items)
    )
    torch.testing.assert_close(proj(batch), expected)
    assert_shape(proj.emb_categorical[0].bag.weight, (3, 3))  # vocabulary of 3


def test_projector_id_only_and_no_input():
    torch.manual_seed(0)
    proj = FeatureProjector([], 5, 4, id_embedding=True)
    store = FeatureStore(
        specs=[],
        num_items=5,
        text_buckets=BUCKETS,
        dense_names=[],
        dense=torch.zeros(5, 0),
        dense_mean=torch.zeros(0),
        dense_std=torch.ones(0),
        vectors={},
        categorical={},
        text={},
    )
    out = proj(store.gather(torch.tensor([4, 1])))
    torch.testing.assert_close(out, proj.emb_id.weight[[4, 1]])
    with pytest.raises(ConfigError, match="id_embedding"):
        FeatureProjector([], 5, 4, id_embedding=False)


def test_projector_reset_keeps_statistics(store):
    proj = FeatureProjector.from_store(store, 4, id_embedding=True)
    before = proj.emb_id.weight.detach().clone()
    proj.reset_parameters()
    assert not torch.equal(before, proj.emb_id.weight)
    torch.testing.assert_close(proj.dense_mean, store.dense_mean)
    assert "dense_std" in proj.state_dict()


def test_projector_accepts_dotted_column_names():
    spec = FeatureSpec("a.b", "vector", 2)
    proj = FeatureProjector([spec], 3, 4, id_embedding=False)
    assert len(proj.lin_vectors) == 1


def test_projector_groups_start_at_comparable_norms():
    # One standardised column (a year), a raw vector, a table: none dominates at start.
    torch.manual_seed(0)
    specs = [
        FeatureSpec("year", "dense"),
        FeatureSpec("emb", "vector", 16),
        FeatureSpec("genre", "categorical", 20),
    ]
    proj = FeatureProjector(specs, 1000, 64, id_embedding=True)
    x = torch.randn(1000, 16)
    norms = {
        "year": proj.lin_dense(x[:, :1]).norm(dim=1).mean(),
        "emb": proj.lin_vectors[0](x).norm(dim=1).mean(),
        "genre": proj.emb_categorical[0].bag.weight.norm(dim=1).mean(),
        "id": proj.emb_id.weight.norm(dim=1).mean(),
    }
    for name, norm in norms.items():
        assert 0.6 < norm.item() < 1.2, (name, norms)
