"""A PinSage model's optimizers: SparseAdam for embedding tables, AdamW for the rest."""

from __future__ import annotations

import torch
from torch import nn

from pinsage.config import TrainConfig

__all__ = ["make_optimizers", "sparse_parameters"]


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
