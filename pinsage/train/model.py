"""Build the PinSage model a config describes, for a given graph and feature store."""

from __future__ import annotations

import torch
from torch import nn

from pinsage.config import PipelineConfig, TrainConfig
from pinsage.graph.store import Graph
from pinsage.nn.features import FeatureProjector, FeatureStore
from pinsage.nn.model import PinSageModel

__all__ = ["build_model", "make_optimizers", "sparse_parameters"]


def build_model(cfg: PipelineConfig, graph: Graph, store: FeatureStore) -> PinSageModel:
    """The model of ``cfg.model`` with ``cfg.sampler.num_layers`` convolutions.

    The per-item ID embedding is on when asked, and by default exactly when the graph
    has no item features (then it is the only input).
    """
    m = cfg.model
    id_embedding = m.id_embedding if m.id_embedding is not None else not graph.features
    # The store was tokenised with m.text_buckets; the projector takes its size from it.
    projector = FeatureProjector.from_store(store, m.dim, id_embedding=id_embedding)
    model = PinSageModel(
        projector,
        num_layers=cfg.sampler.num_layers,
        dim=m.dim,
        hidden_dim=m.hidden_dim,
        out_dim=m.out_dim,
        aggregator=m.aggregator,
        heads=m.heads,
        dropout=m.dropout,
        num_contexts=graph.num_contexts,
        context_id_embedding=m.context_id_embedding,
    )
    # Embedding tables (IDs, hashed text, categories) see a few rows per batch: sparse
    # gradients keep backward and the optimizer step proportional to those rows,
    # not to the table (2^18 text buckets x 64 would dominate every step otherwise).
    for module in model.modules():
        if isinstance(module, nn.Embedding | nn.EmbeddingBag):
            module.sparse = True
    return model


def sparse_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The embedding tables with sparse gradients, by parameter name."""
    sparse = {
        id(m.weight)
        for m in model.modules()
        if isinstance(m, nn.Embedding | nn.EmbeddingBag) and m.sparse
    }
    return {name: p for name, p in model.named_parameters() if id(p) in sparse}


def make_optimizers(model: nn.Module, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """SparseAdam for the sparse embedding tables, AdamW for every other weight.

    The AdamW optimizer comes first: its parameters are the ones gradient clipping
    covers.
    """
    sparse = {id(p) for p in sparse_parameters(model).values()}
    sparse_params = [p for p in model.parameters() if id(p) in sparse]
    dense_params = [p for p in model.parameters() if id(p) not in sparse]
    optimizers: list[torch.optim.Optimizer] = [
        torch.optim.AdamW(dense_params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ]
    if sparse_params:
        optimizers.append(torch.optim.SparseAdam(sparse_params, lr=cfg.lr))
    return optimizers
