"""Cold start in training: items without interactions are never negatives, and their
ID vectors start (and so stay) at zero."""

from dataclasses import replace

import pytest
import torch

from pinsage.config import ModelConfig, PipelineConfig
from pinsage.errors import ConfigError
from pinsage.features import FeatureStore
from pinsage.graph import load_graph
from pinsage.run.factory import AUTO_COLD_DROPOUT, build_model
from pinsage.train import train
from pinsage.train.batch import make_batch
from pinsage.train.loss import in_batch_softmax_loss
from pinsage.train.negatives import negative_distribution, random_negatives
from pinsage.train.objective import batch_loss
from tests.helpers import COLD, csr_from_edges, tiny_config, write_tiny_graph

# Items 0..3 engaged (item 3 twice), item 4 never: a catalogue-only, cold item.
GRAPH = csr_from_edges(5, 3, items=[0, 1, 2, 3, 3], contexts=[0, 0, 1, 1, 2])


def test_uniform_negatives_skip_items_without_interactions():
    probs = negative_distribution(GRAPH, 0.0)
    torch.testing.assert_close(
        probs, torch.tensor([0.25, 0.25, 0.25, 0.25, 0.0]).double()
    )
    gen = torch.Generator().manual_seed(0)
    ids, log_q = random_negatives(1000, 5, probs, generator=gen)
    assert set(ids.tolist()) == {0, 1, 2, 3}
    torch.testing.assert_close(log_q, torch.full((1000,), 250.0).log())


def test_negatives_by_degree_and_all_warm_graph():
    probs = negative_distribution(GRAPH, 1.0)
    torch.testing.assert_close(probs, torch.tensor([1, 1, 1, 2, 0]).double() / 5)
    warm = csr_from_edges(3, 2, items=[0, 1, 2], contexts=[0, 1, 1])
    assert negative_distribution(warm, 0.0) is None  # the plain uniform draw


def test_id_rows_of_items_without_interactions_start_at_zero(tmp_path):
    graph = write_tiny_graph(tmp_path)
    store = FeatureStore.from_graph(graph, text_buckets=64)
    cfg = PipelineConfig(
        model=ModelConfig(dim=8, hidden_dim=8, out_dim=8, id_embedding=True)
    )
    table = build_model(cfg, graph, store).projector.emb_id.weight
    assert torch.equal(table[COLD], torch.zeros(8))
    assert bool((table[:COLD].norm(dim=1) > 0).all())


def test_cold_dropout_auto_and_refused_without_features(graph_dir, id_graph_dir):
    explicit = PipelineConfig(model=ModelConfig(cold_dropout=0.1))
    for path, auto in ((graph_dir, AUTO_COLD_DROPOUT), (id_graph_dir, 0.0)):
        graph = load_graph(path)
        store = FeatureStore.from_graph(graph, text_buckets=64)
        assert build_model(PipelineConfig(), graph, store).cold_dropout == auto
        if graph.features:
            assert build_model(explicit, graph, store).cold_dropout == 0.1
        else:  # an item seen as cold would have no input at all
            with pytest.raises(ConfigError, match="cold_dropout is 0.1 but the graph"):
                build_model(explicit, graph, store)


@pytest.mark.parametrize("objective", ["context", "item"])
def test_cold_weight_adds_the_in_batch_loss_of_items_embedded_cold(
    graph_dir, objective
):
    cfg = tiny_config(objective=objective)
    graph = load_graph(graph_dir)
    store = FeatureStore.from_graph(graph, text_buckets=cfg.model.text_buckets)
    weighted = replace(cfg.train, cold_weight=0.5)
    b = make_batch(
        graph.csr, store, cfg.sampler, weighted, step=1, epoch=1, negative_probs=None
    )
    model = build_model(cfg, graph, store).eval()  # eval: no cold-dropout draws
    extra = batch_loss(model, b, weighted) - batch_loss(model, b, cfg.train)
    seeds = b.items.seeds
    if objective == "context":
        query = model(b.contexts, b.context_features)[b.context_pos]
        pos = b.query_pos
    else:
        query = model(b.items, b.item_features)[b.query_pos[b.item_pair]]
        pos = b.positive_pos[b.item_pair]
    cold = model.embed_cold(store.gather(seeds[pos]))  # gathered afresh
    want = 0.5 * in_batch_softmax_loss(query, cold, seeds[pos], cfg.train.temperature)
    assert extra.item() == pytest.approx(want.item(), rel=1e-5)


def test_cold_weight_trains_and_needs_features(graph_dir, id_graph_dir, tmp_path):
    cfg = tiny_config(cold_weight=1.0, epochs=1, steps_per_epoch=2)
    assert train(cfg, graph_dir, tmp_path / "r")["loss"] > 0
    graph = load_graph(id_graph_dir)
    store = FeatureStore.from_graph(graph, text_buckets=64)
    with pytest.raises(ConfigError, match="train.cold_weight is 1.0 but the graph"):
        build_model(cfg, graph, store)
