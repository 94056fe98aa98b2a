"""The local engine's chunking: any chunk size gives the one-chunk result."""

import pytest
import torch

from pinsage.config import ModelConfig, PipelineConfig, SamplerConfig
from pinsage.features import FeatureStore
from pinsage.graph import load_graph
from pinsage.infer import local
from pinsage.run import build_model
from pinsage.sampler.table import neighborhood_table


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("aggregator", ["importance", "mean", "max", "attention"])
def test_chunked_layers_equal_one_chunk(graph_dir, monkeypatch, aggregator, residual):
    sampler = SamplerConfig(num_walks=10, top_k=5, num_layers=2)
    model_cfg = ModelConfig(
        dim=16,
        hidden_dim=12,
        out_dim=16 if residual else 8,
        aggregator=aggregator,
        residual=residual,
    )
    cfg = PipelineConfig(sampler=sampler, model=model_cfg)
    graph = load_graph(graph_dir)
    store = FeatureStore.from_graph(graph, text_buckets=cfg.model.text_buckets)
    torch.manual_seed(0)
    model = build_model(cfg, graph, store)
    with torch.no_grad():  # a residual model's G_2 starts at zero
        model.lin_head2.weight.normal_()
    items = neighborhood_table(graph.csr, sampler)
    contexts = neighborhood_table(graph.csr, sampler, contexts=True)
    whole = local.embed_all(model, store, items, contexts)
    # 35 slots: chunks of 7 rows, the last one short (300 items, 150 users);
    # 1 slot: one row per chunk.
    for chunk_edges in (35, 1):
        monkeypatch.setattr(local, "CHUNK_EDGES", chunk_edges)
        chunked = local.embed_all(model, store, items, contexts)
        for got, want in zip(chunked, whole, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
