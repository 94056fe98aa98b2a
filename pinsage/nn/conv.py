"""The PinSage convolution and its neighbourhood aggregators (DESIGN.md "Convolution").

One layer maps source vectors to destination vectors over a block's edges:
messages ``m_v = ReLU(Q h_v + q)``, an aggregate ``n_u`` of u's incoming messages,
then ``h'_u = norm(ReLU(W [h_u ; n_u] + w))``. `aggregate` is a pure function of the
messages and the edges, so it can be tested (and reused by bulk inference's reduce
step) on its own. Everything is vectorised with ``index_add_`` / ``scatter_reduce_``
over edges; no Python loop touches a node or an edge.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pinsage.config import AGGREGATORS

__all__ = ["PinSageConv", "aggregate", "segment_softmax"]

# Negative slope of the LeakyReLU on attention scores: GAT's value.
ATTENTION_NEGATIVE_SLOPE = 0.2
# Smallest norm divided by in the output L2 normalisation (an all-zero row stays zero).
NORM_EPS = 1e-12


def segment_softmax(scores: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Softmax of ``scores`` within each group of rows sharing ``index``.

    Numerically stable: each group's maximum is subtracted before ``exp``.
    Shapes: scores (E, H), index (E,) int64 in [0, num_segments) -> (E, H).
    """
    heads = scores.shape[1]
    seg_max = scores.new_zeros(num_segments, heads)  # (N, H); empty groups stay 0
    # The shift cancels in the softmax, so it needs no gradient.
    seg_max.scatter_reduce_(
        0,
        index.unsqueeze(1).expand_as(scores),
        scores.detach(),
        "amax",
        include_self=False,
    )
    exp = (scores - seg_max.index_select(0, index)).exp()  # (E, H), each <= 1
    seg_sum = scores.new_zeros(num_segments, heads).index_add_(0, index, exp)
    return exp / seg_sum.index_select(0, index)


def aggregate(
    messages: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor | None,
    num_dst: int,
    kind: str,
) -> Tensor:
    r"""Aggregate source messages into destinations along ``edge_index`` (src -> dst).

    ``kind``:

    - ``importance``: :math:`n_u = \sum_v \alpha_{uv} m_v`, ``edge_weight`` = alpha.
    - ``mean``: the plain mean of u's messages (GraphSAGE-mean; ignores the weights).
    - ``max``: the element-wise maximum of u's messages (GraphSAGE-pool).
    - ``attention``: ``edge_weight`` holds unnormalised scores (E, H), softmaxed over
      each destination's edges per head; each head's weighted sum of its messages,
      averaged over heads.

    A destination without incoming edges aggregates to zero for every kind.

    Shapes: messages (N_src, C) ((N_src, H, C) for attention); edge_index (2, E);
    edge_weight (E,) alpha, (E, H) scores for attention, unused (may be None) for
    mean and max -> (N_dst, C).
    """
    src, dst = edge_index[0], edge_index[1]
    msg = messages.index_select(0, src)  # (E, C) or (E, H, C)
    out = messages.new_zeros((num_dst, *messages.shape[1:]))  # (N_dst, [H,] C)
    if kind == "importance":
        return out.index_add_(0, dst, msg * edge_weight.unsqueeze(1))
    if kind == "mean":
        count = torch.bincount(dst, minlength=num_dst).clamp_min(1)  # (N_dst,)
        return out.index_add_(0, dst, msg) / count.unsqueeze(1).to(msg.dtype)
    if kind == "max":
        index = dst.unsqueeze(1).expand_as(msg)  # (E, C)
        return out.scatter_reduce_(0, index, msg, "amax", include_self=False)
    if kind == "attention":
        coef = segment_softmax(edge_weight, dst, num_dst)  # (E, H)
        out.index_add_(0, dst, msg * coef.unsqueeze(2))  # (N_dst, H, C)
        return out.mean(dim=1)  # (N_dst, C)
    raise ValueError(f"unknown aggregator '{kind}'; expected one of {AGGREGATORS}")


class PinSageConv(nn.Module):
    r"""The PinSage convolution (Ying et al., KDD 2018, Algorithm 1 "CONVOLVE").

    .. math::
        m_v = \mathrm{ReLU}(Q h_v + q), \quad
        n_u = \sum_{v \in N(u)} \alpha_{uv} m_v, \quad
        h'_u = \frac{z_u}{\lVert z_u \rVert_2}, \quad
        z_u = \mathrm{ReLU}(W [h_u \Vert n_u] + w)

    The aggregation :math:`n_u` is importance pooling by default; ``mean``, ``max``
    (GraphSAGE) and ``attention`` are ablations. ``attention`` computes GAT-style
    coefficients per head,
    :math:`a^h_{uv} = \mathrm{softmax}_v(\mathrm{LeakyReLU}(a_d^{h\top} W_d h_u +
    a_s^{h\top} (Q^h h_v + q^h)))`, each head with its own messages
    :math:`m^h_v = \mathrm{ReLU}(Q^h h_v + q^h)` of width ``hidden_dim``, and
    *averages* the heads (:math:`n_u = \frac{1}{H} \sum_h \sum_v a^h_{uv} m^h_v`),
    as GAT does in its last layer: ``n_u`` keeps the same width for every aggregator,
    so ``W`` does too, and ``hidden_dim`` needs no divisibility by ``heads``.
    :math:`a_d^{h\top} W_d` is learned as one map from the destination input, whose
    width ``dst_dim`` may differ from the sources' (contexts).

    Args:
        in_dim: width F of the source vectors ``h_src``.
        out_dim: width D of the output vectors.
        hidden_dim: width C of the messages; ``None`` (default) uses ``out_dim``.
        aggregator: ``importance`` (default), ``mean``, ``max`` or ``attention``.
        heads: attention heads (default 1); must be 1 for the other aggregators.
        dropout: dropout probability on ``h_src`` and ``h_dst`` (default 0.0).
        dst_dim: width of ``h_dst``; ``None`` (default) uses ``in_dim``.

    Shapes:
        - input: h_src (N_src, F), h_dst (N_dst, F_dst), edge_index (2, E) int64
          local ids (row 0 into h_src, row 1 into h_dst), edge_weight (E,) alpha
          (used by ``importance`` only).
        - output: (N_dst, D), each row of unit L2 norm (or zero).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int | None = None,
        aggregator: str = "importance",
        heads: int = 1,
        dropout: float = 0.0,
        dst_dim: int | None = None,
    ) -> None:
        super().__init__()
        if aggregator not in AGGREGATORS:
            raise ValueError(
                f"PinSageConv: unknown aggregator '{aggregator}'; "
                f"expected one of {AGGREGATORS}"
            )
        if heads < 1 or (heads > 1 and aggregator != "attention"):
            raise ValueError(
                f"PinSageConv: heads={heads}; must be >= 1, and 1 unless the "
                "aggregator is 'attention'"
            )
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.hidden_dim = out_dim if hidden_dim is None else hidden_dim
        self.dst_dim = in_dim if dst_dim is None else dst_dim
        self.aggregator = aggregator
        self.heads = heads
        self.dropout = dropout
        self.lin_msg = nn.Linear(in_dim, heads * self.hidden_dim)  # Q, q
        self.lin_out = nn.Linear(self.dst_dim + self.hidden_dim, out_dim)  # W, w
        if aggregator == "attention":
            self.att_src = nn.Parameter(torch.empty(heads, self.hidden_dim))  # a_s
            self.lin_att_dst = nn.Linear(self.dst_dim, heads, bias=False)  # a_d^T W_d
        else:
            self.register_parameter("att_src", None)
            self.lin_att_dst = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every weight (PyTorch's Linear init, Glorot for ``a_s``)."""
        self.lin_msg.reset_parameters()
        self.lin_out.reset_parameters()
        if self.att_src is not None:
            nn.init.xavier_uniform_(self.att_src)
        if self.lin_att_dst is not None:
            self.lin_att_dst.reset_parameters()

    def message(self, h_src: Tensor) -> Tensor:
        """Messages ``ReLU(Q h_v + q)``.

        Shapes: h_src (N_src, F) -> (N_src, C), or (N_src, H, C) for attention.
        """
        m = F.relu(self.lin_msg(h_src))  # (N_src, H * C)
        if self.aggregator == "attention":
            return m.view(-1, self.heads, self.hidden_dim)  # (N_src, H, C)
        return m

    def update(self, h_dst: Tensor, n: Tensor) -> Tensor:
        """Updated vectors ``norm(ReLU(W [h_u ; n_u] + w))``.

        Shapes: h_dst (N_dst, F_dst), n (N_dst, C) -> (N_dst, D).
        """
        z = F.relu(self.lin_out(torch.cat([h_dst, n], dim=1)))  # (N_dst, D)
        return F.normalize(z, p=2.0, dim=1, eps=NORM_EPS)

    def sources(self, h_src: Tensor) -> tuple[Tensor, Tensor | None]:
        """What the sources contribute: messages, and for attention their scores.

        Split from `combine` so that a caller can convolve the destinations in chunks
        and still compute each source's terms once.
        Shapes: h_src (N_src, F) -> m (N_src, C) and None, or for attention
        m (N_src, H, C) and score_src (N_src, H).
        """
        if self.aggregator != "attention":
            return self.message(h_src), None
        pre = self.lin_msg(h_src).view(-1, self.heads, self.hidden_dim)  # (N_src, H, C)
        return F.relu(pre), (pre * self.att_src).sum(dim=2)

    def combine(
        self,
        sources: tuple[Tensor, Tensor | None],
        h_dst: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
    ) -> Tensor:
        """Pool the `sources` terms into each destination and update it.

        Shapes: sources as `sources` returns; h_dst (N_dst, F_dst); edge_index (2, E)
        -> (N_dst, D).
        """
        m, score_src = sources
        if score_src is not None:  # attention: scores replace the importance weights
            score_dst = self.lin_att_dst(h_dst)  # (N_dst, H)
            edge_weight = F.leaky_relu(
                score_src.index_select(0, edge_index[0])
                + score_dst.index_select(0, edge_index[1]),
                ATTENTION_NEGATIVE_SLOPE,
            )  # (E, H)
        n = aggregate(m, edge_index, edge_weight, h_dst.shape[0], self.aggregator)
        return self.update(h_dst, n)

    def forward(
        self, h_src: Tensor, h_dst: Tensor, edge_index: Tensor, edge_weight: Tensor
    ) -> Tensor:
        """Convolve: Shapes h_src (N_src, F), h_dst (N_dst, F_dst) -> (N_dst, D)."""
        h_src = F.dropout(h_src, self.dropout, self.training)
        h_dst = F.dropout(h_dst, self.dropout, self.training)
        return self.combine(self.sources(h_src), h_dst, edge_index, edge_weight)

    def __repr__(self) -> str:
        heads = f", heads={self.heads}" if self.aggregator == "attention" else ""
        dst = f", dst_dim={self.dst_dim}" if self.dst_dim != self.in_dim else ""
        return (
            f"{self.__class__.__name__}({self.in_dim}, {self.out_dim}, "
            f"hidden_dim={self.hidden_dim}, aggregator='{self.aggregator}'{heads}{dst})"
        )
