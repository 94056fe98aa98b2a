"""The PinSage model a run's config describes, built over a graph and its feature store.

Training builds it from scratch (`build_model`, then `spectral_id_init`); eval, embed
and the benchmarks build it from a checkpoint (`model_from_checkpoint`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from pinsage.config import PipelineConfig
from pinsage.errors import CheckpointError, ConfigError
from pinsage.features import FeatureStore
from pinsage.graph.spectral import (
    interaction_matrix,
    normalized_interactions,
    top_right_singular,
)
from pinsage.graph.store import Graph
from pinsage.nn.model import PinSageModel
from pinsage.nn.projector import FeatureProjector
from pinsage.run.checkpoint import check_graph

__all__ = [
    "AUTO_COLD_DROPOUT",
    "build_model",
    "model_from_checkpoint",
    "spectral_id_init",
]


# `model.cold_dropout: null` on a graph with item features. On 2,000 items in 10
# planted clusters with 10% cold items, 0.2 brought cold items' recall@20 to about
# warm items' (docs/training.md "Cold start").
AUTO_COLD_DROPOUT = 0.2


def _check_features(cfg: PipelineConfig, graph: Graph) -> None:
    """`ConfigError` when a cold-start lever is on but ``graph`` has no item features.

    Both levers embed an item from its features alone, which would have no input.
    """
    if graph.features:
        return
    for key, value in (
        ("model.cold_dropout", cfg.model.cold_dropout),
        ("train.cold_weight", cfg.train.cold_weight),
    ):
        if value:  # None (auto) and 0 are off here
            raise ConfigError(
                f"{key} is {value} but the graph {graph.path} has no item features: "
                f"an item embedded as cold would have no input at all; set {key} to "
                "0, or build the graph with an items file."
            )


def _cold_dropout(cfg: PipelineConfig, graph: Graph) -> float:
    """``model.cold_dropout`` resolved: None -> `AUTO_COLD_DROPOUT` with features."""
    value = cfg.model.cold_dropout
    if value is None:
        return AUTO_COLD_DROPOUT if graph.features else 0.0
    return value


def build_model(cfg: PipelineConfig, graph: Graph, store: FeatureStore) -> PinSageModel:
    """The model of ``cfg.model`` with ``cfg.sampler.num_layers`` convolutions.

    The per-item ID embedding is on unless ``model.id_embedding`` is false (with no
    item features it is the only input). The ID rows of items without
    interactions in ``graph`` start at zero: training never meets those items (they
    are drawn as no negatives), so the rows stay zero and such items (cold start) are
    embedded from their features, not from random noise.
    """
    _check_features(cfg, graph)
    m = cfg.model
    id_embedding = m.id_embedding if m.id_embedding is not None else True
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
        cold_dropout=_cold_dropout(cfg, graph),
        residual=m.residual,
    )
    if projector.emb_id is not None:
        with torch.no_grad():
            projector.emb_id.weight[graph.csr.item_degrees() == 0] = 0.0
    # Embedding tables (IDs, hashed text, categories) see a few rows per batch: sparse
    # gradients keep backward and the optimizer step proportional to those rows,
    # not to the table (2^18 text buckets x 64 would dominate every step otherwise).
    for module in model.modules():
        if isinstance(module, nn.Embedding | nn.EmbeddingBag):
            module.sparse = True
    return model


@torch.no_grad()
def spectral_id_init(model: PinSageModel, graph: Graph, seed: int) -> None:
    r"""Start the item ID embeddings from the graph's spectrum (``model.id_init``).

    Row i becomes :math:`V_{i,:} \Sigma^{1/2}`, the item's coordinates on the top
    ``dim`` right singular vectors of :math:`\tilde R = D_U^{-1/2} R D_I^{-1/2}` (the
    ideal low-pass filter GF-CF and spectral CF build on), rescaled to the mean row
    norm of the random initialisation, so training starts from the graph's smooth
    signals instead of noise. A model without an ID embedding is left as it is.
    """
    table = model.projector.emb_id
    if table is None or min(graph.num_items, graph.num_contexts) < 2:
        return  # no table, or no spectrum to speak of (ARPACK needs k < min(shape))
    csr = graph.csr
    r = interaction_matrix(csr.context_indptr, csr.context_indices, graph.num_items)
    values, vt = top_right_singular(
        normalized_interactions(r), table.weight.shape[1], seed
    )
    rows = torch.from_numpy(vt.T * np.sqrt(values)[None, :]).float()  # (I, k)
    scale = table.weight.norm(dim=1).mean() / rows.norm(dim=1).mean().clamp_min(1e-12)
    table.weight.zero_()
    table.weight[:, : rows.shape[1]] = rows * scale


def model_from_checkpoint(
    checkpoint: dict, cfg: PipelineConfig, graph: Graph, where: Path
) -> tuple[PinSageModel, FeatureStore]:
    """The checkpoint's model over ``graph`` (in eval mode) and its feature store.

    `CheckpointError` naming ``where`` (the checkpoint) when it was trained on a graph
    of another shape or with other features: `embed` and `eval` refuse such a pair
    the same way instead of failing inside ``load_state_dict``.
    """
    check_graph(checkpoint, graph, where)
    store = FeatureStore.from_graph(graph, text_buckets=cfg.model.text_buckets)
    model = build_model(cfg, graph, store)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as exc:  # weight shapes differ: another graph's features
        detail = " ".join(str(exc).split())  # torch's message spans lines: one line
        raise CheckpointError(
            f"{where} does not fit the graph {graph.path}: its weights were trained "
            f"on other item features ({detail[:300]}); pass the graph the run was "
            "trained on."
        ) from exc
    return model.eval(), store
