"""What one minibatch's convolutions run over: per-layer message graphs (blocks).

The records the network consumes; `pinsage.sampler.blocks` builds them from random
walks (training) or a precomputed neighbourhood table (inference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Block", "ComputationGraph"]


@dataclass(frozen=True)
class Block:
    """One convolution layer's bipartite message graph, sources -> destinations.

    Shapes: src_nodes (N_src,) int64 item indices; dst_nodes (N_dst,) int64 item
    indices (or context indices when ``dst_is_context``); edge_index (2, E) int64 local
    ids, row 0 into src_nodes, row 1 into dst_nodes; edge_weight (E,) float32 alpha,
    summing to 1 over each destination's incoming edges (no edges: isolated).
    For item destinations ``src_nodes[:N_dst] == dst_nodes``.
    """

    src_nodes: Tensor
    dst_nodes: Tensor
    edge_index: Tensor
    edge_weight: Tensor
    dst_is_context: bool = False

    @property
    def num_src(self) -> int:
        """Number of source nodes, N_src."""
        return self.src_nodes.numel()

    @property
    def num_dst(self) -> int:
        """Number of destination nodes, N_dst."""
        return self.dst_nodes.numel()

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Block:
        """Copy to ``device`` (``non_blocking`` from pinned memory)."""
        return Block(
            *(
                t.to(device, non_blocking=non_blocking)
                for t in (
                    self.src_nodes,
                    self.dst_nodes,
                    self.edge_index,
                    self.edge_weight,
                )
            ),
            dst_is_context=self.dst_is_context,
        )


@dataclass(frozen=True)
class ComputationGraph:
    """The blocks of one minibatch, outermost first.

    ``blocks[0].src_nodes`` are the input items (features gathered once, for them);
    ``blocks[-1].dst_nodes`` are the seeds, in the order given.
    """

    blocks: list[Block]

    @property
    def input_nodes(self) -> Tensor:
        """The input items, ``blocks[0].src_nodes``."""
        return self.blocks[0].src_nodes

    @property
    def seeds(self) -> Tensor:
        """The seeds, ``blocks[-1].dst_nodes``."""
        return self.blocks[-1].dst_nodes

    def to(
        self, device: torch.device | str, non_blocking: bool = False
    ) -> ComputationGraph:
        """Copy every block to ``device`` (``non_blocking`` from pinned memory)."""
        return ComputationGraph([b.to(device, non_blocking) for b in self.blocks])
