"""The PinSage network: feature projector, K convolutions, final head (DESIGN.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pinsage.nn.blocks import Block, ComputationGraph
from pinsage.nn.conv import NORM_EPS, PinSageConv, aggregate
from pinsage.nn.projector import FeatureBatch, FeatureProjector

__all__ = ["PinSageModel"]


class PinSageModel(nn.Module):
    r"""PinSage item and context embeddings (Ying et al., KDD 2018, Algorithm 2).

    .. math::
        h^0_v = \mathrm{proj}(x_v), \quad
        h^k_u = \mathrm{CONVOLVE}_k(h^{k-1}_u, \{h^{k-1}_v\}_{v \in N(u)}), \quad
        z_u = G_2\,\mathrm{ReLU}(G_1 h^K_u + g) \; [+ \, s_u]

    with ``residual``, :math:`s_u` is the top layer's input: an item's own
    :math:`h^{K-1}_u`, a context's items pooled as its messages are (importance:
    :math:`\sum_v \alpha_{uv} h^{K-1}_v`)
    (LightGCN's sum over layers). :math:`G_2` then starts at zero, so an untrained
    model scores with its inputs alone (with spectral IDs: the graph's low-pass
    filter) and the convolution and head learn what to add.

    Items and contexts (users) share the projector, the item convolutions and the
    head, so both land in one space (score = :math:`z_u \cdot z_i`). A context graph's
    top layer has its own convolution, ``context_conv``: its destination input is the
    context's learned ID embedding (or zeros), not an item's own vector, so its
    ``W [h_u ; n_u]`` weighs a different kind of input; the layers below are item
    layers and reuse ``convs[:-1]``. ``normalize_output`` (default) returns unit
    vectors: both losses and the FAISS inner-product index then compare directions
    only, the margin and the softmax temperature act on a fixed scale, and popular
    items cannot win by norm alone.

    ``cold_dropout`` (training only) treats a random share of the items of each item
    computation graph as cold, as an item with features but no interactions is at
    inference: its neighbourhood (in every layer) and its ID vector are dropped, so
    the feature path alone must place it among the others (the ID dropout of
    two-tower systems, carried over to the graph).

    Args:
        projector: the item input projector (output width ``dim``).
        num_layers: K, convolution layers (the sampler's ``num_layers``).
        dim: width of the projector output and of every convolution output.
        hidden_dim: width of the convolution messages.
        out_dim: width of the output embeddings z.
        aggregator: ``importance``, ``mean``, ``max`` or ``attention``.
        heads: attention heads (``attention`` only; ignored otherwise).
        dropout: dropout on every convolution's inputs.
        num_contexts: rows of the per-context ID embedding.
        context_id_embedding: learn a per-context ID embedding as the context's
            destination input; else that input is zeros (the context is purely the
            aggregate of its items).
        normalize_output: L2-normalise z (default True).
        cold_dropout: share of items seen as cold in training (default 0.0).
        residual: add :math:`s_u` to the output (default False); needs
            ``out_dim == dim``.

    Shapes:
        - input: a `ComputationGraph` with K blocks whose seeds are B items (or B
          contexts when ``cg.blocks[-1].dst_is_context``), and the `FeatureBatch` of
          ``cg.input_nodes`` in that order.
        - output: (B, out_dim).
    """

    def __init__(
        self,
        projector: FeatureProjector,
        num_layers: int,
        dim: int,
        hidden_dim: int,
        out_dim: int,
        aggregator: str = "importance",
        heads: int = 1,
        dropout: float = 0.0,
        num_contexts: int = 0,
        context_id_embedding: bool = False,
        normalize_output: bool = True,
        cold_dropout: float = 0.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        heads = heads if aggregator == "attention" else 1
        self.num_layers = num_layers
        self.dim = dim
        self.out_dim = out_dim
        self.aggregator = aggregator
        self.normalize_output = normalize_output
        self.cold_dropout = cold_dropout
        if residual and out_dim != dim:
            raise ValueError(f"residual needs out_dim == dim, got {out_dim} != {dim}")
        self.residual = residual
        self.projector = projector

        def conv() -> PinSageConv:
            return PinSageConv(dim, dim, hidden_dim, aggregator, heads, dropout)

        self.convs = nn.ModuleList(conv() for _ in range(num_layers))
        self.context_conv = conv()
        self.context_embedding = (
            nn.Embedding(num_contexts, dim) if context_id_embedding else None
        )
        self.lin_head1 = nn.Linear(dim, dim)  # G_1, g
        self.lin_head2 = nn.Linear(dim, out_dim, bias=False)  # G_2
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every learned weight (the projector's too)."""
        self.projector.reset_parameters()
        for conv in (*self.convs, self.context_conv):
            conv.reset_parameters()
        if self.context_embedding is not None:
            nn.init.normal_(self.context_embedding.weight, std=self.dim**-0.5)
        self.lin_head1.reset_parameters()
        self.lin_head2.reset_parameters()
        if self.residual:
            nn.init.zeros_(self.lin_head2.weight)

    def context_input(self, contexts: Tensor) -> Tensor:
        """Destination input of a context layer. Shapes: (B,) -> (B, dim)."""
        if self.context_embedding is not None:
            return self.context_embedding(contexts)
        return self.lin_head1.weight.new_zeros(contexts.numel(), self.dim)

    def convolve(
        self, cg: ComputationGraph, h: Tensor, *, cold: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Run the K layers on input vectors: :math:`h^K` and the residual ``s``.

        ``cold`` marks input items whose own neighbourhood is dropped in every item
        layer (an item destination's local id is its position among the inputs).
        Shapes: h (N_in, dim), cold (N_in,) bool -> (B, dim) and (B, dim) or None.
        """
        if len(cg.blocks) != self.num_layers:
            raise ValueError(
                f"PinSageModel has {self.num_layers} layers but the computation "
                f"graph has {len(cg.blocks)} blocks; sample with num_layers="
                f"{self.num_layers}"
            )
        for conv, block in zip(self.convs, cg.blocks, strict=True):
            conv = self.context_conv if block.dst_is_context else conv
            edge_index, edge_weight = block.edge_index, block.edge_weight
            if cold is not None and not block.dst_is_context:
                kept = ~cold[edge_index[1]]  # (E,)
                edge_index, edge_weight = edge_index[:, kept], edge_weight[kept]
            h_src, h_dst = h, self._dst_input(block, h)
            h = conv(h_src, h_dst, edge_index, edge_weight)
        return h, self.skip(block, h_src, h_dst, edge_index, edge_weight)

    def skip(
        self,
        block: Block,
        h_src: Tensor,
        h_dst: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
    ) -> Tensor | None:
        """The residual :math:`s_u` of the top block's destinations (None if off).

        An item's is its own input ``h_dst``; a context's, its sources pooled as
        the layer pools its messages (``attention``: the mean, as its edge weights
        are scores, not a distribution).
        Shapes: h_src (N_src, dim), h_dst (N_dst, dim), edge_index (2, E) ->
        (N_dst, dim) or None.
        """
        if not self.residual:
            return None
        if not block.dst_is_context:
            return h_dst
        kind = "mean" if self.aggregator == "attention" else self.aggregator
        return aggregate(h_src, edge_index, edge_weight, block.num_dst, kind)

    def _drawn_cold(self, cg: ComputationGraph) -> Tensor | None:
        """Input items seen as cold this step (`cold_dropout`), or None.

        Only in training and in item graphs: a context graph's items are engaged
        ones, never cold. Shapes: -> (N_in,) bool.
        """
        if not self.training or self.cold_dropout == 0 or cg.blocks[-1].dst_is_context:
            return None
        nodes = cg.input_nodes
        return torch.rand(nodes.shape, device=nodes.device) < self.cold_dropout

    def _dst_input(self, block: Block, h: Tensor) -> Tensor:
        if block.dst_is_context:
            return self.context_input(block.dst_nodes)  # (N_dst, dim)
        return h[: block.num_dst]  # item destinations come first among the sources

    def head(self, h: Tensor, skip: Tensor | None = None) -> Tensor:
        """The final ``G_2 ReLU(G_1 h + g) [+ skip]``, normalised if asked.

        Shapes: h (B, dim), skip (B, dim) or None -> (B, out_dim).
        """
        z = self.lin_head2(F.relu(self.lin_head1(h)))  # (B, out_dim)
        if skip is not None:
            z = z + skip
        return F.normalize(z, dim=1, eps=NORM_EPS) if self.normalize_output else z

    def embed_cold(self, features: FeatureBatch) -> Tensor:
        """Items embedded as items without interactions are: from features alone.

        The ID vector and every neighbourhood are left out (an edgeless graph), so
        this is the vector inference gives a cold item; training can then aim at
        that path directly (`train.cold_weight`).
        Shapes: features of N items -> (N, out_dim).
        """
        nodes = torch.arange(features.num_items, device=features.items.device)
        edgeless = Block(
            nodes, nodes, nodes.new_zeros(2, 0), features.dense.new_zeros(0)
        )
        h = self.projector(
            features, without_id=torch.ones_like(nodes, dtype=torch.bool)
        )
        cg = ComputationGraph([edgeless] * self.num_layers)
        return self.head(*self.convolve(cg, h))

    def forward(self, cg: ComputationGraph, features: FeatureBatch) -> Tensor:
        """Embed the seeds of ``cg``: items, or contexts if its top block says so."""
        cold = self._drawn_cold(cg)
        h = self.projector(features, without_id=cold)  # (N_in, dim)
        return self.head(*self.convolve(cg, h, cold=cold))
