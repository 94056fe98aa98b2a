"""Item input features projected to ``h^0``: the `FeatureBatch` and its projector.

`pinsage.features.FeatureStore` gathers a batch's rows into a `FeatureBatch`;
`FeatureProjector` embeds it into (N, dim). Text arrives tokenised and hashed
(`pinsage.features.text`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

from pinsage.errors import ConfigError

if TYPE_CHECKING:  # types only: the network does not depend on how graphs are stored
    from pinsage.features import FeatureStore
    from pinsage.graph.feature_columns import FeatureSpec

__all__ = [
    "Bags",
    "FeatureBatch",
    "FeatureProjector",
]


class Bags(NamedTuple):
    """Variable-length bags as `torch.nn.EmbeddingBag` takes them.

    Shapes: values (M,) int64 flat ids; offsets (N,) int64 start of each bag in
    ``values`` (bag i is ``values[offsets[i]:offsets[i+1]]``, the last runs to M).
    """

    values: Tensor
    offsets: Tensor


def _map_tensors(obj, fn):
    """Apply ``fn`` to every tensor in a tensor / Bags / dict of them."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, Bags):
        return Bags(fn(obj.values), fn(obj.offsets))
    return {k: _map_tensors(v, fn) for k, v in obj.items()}


@dataclass(frozen=True, eq=False)  # tensors: no elementwise ==
class FeatureBatch:
    """The input features of N items (DESIGN.md "Item input h^0").

    Shapes: items (N,) int64 item indices (for the ID embedding); dense (N, F_dense)
    float32 raw (unstandardised) scalar columns in `FeatureStore.dense_names` order
    (F_dense may be 0); vectors name -> (N, D) float32; categorical name -> Bags of
    vocabulary codes; text name -> Bags of hashed token ids in [0, text_buckets).
    """

    items: Tensor
    dense: Tensor
    vectors: dict[str, Tensor]
    categorical: dict[str, Bags]
    text: dict[str, Bags]

    @property
    def num_items(self) -> int:
        """N, the number of items in the batch."""
        return self.items.numel()

    def _apply(self, fn) -> FeatureBatch:
        return FeatureBatch(
            **{f.name: _map_tensors(getattr(self, f.name), fn) for f in fields(self)}
        )

    def to(
        self, device: torch.device | str, non_blocking: bool = False
    ) -> FeatureBatch:
        """Copy every tensor to ``device`` (``non_blocking`` from pinned memory)."""
        return self._apply(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> FeatureBatch:
        """Page-locked copies of every tensor, for overlapping host-to-GPU copies."""
        return self._apply(lambda t: t.pin_memory())


class _BagEmbedding(nn.Module):
    """Mean-pooled EmbeddingBag of width ``emb_dim``, projected to ``dim`` if needed."""

    def __init__(self, num_embeddings: int, emb_dim: int, dim: int) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(max(num_embeddings, 1), emb_dim, mode="mean")
        self.lin = nn.Linear(emb_dim, dim, bias=False) if emb_dim != dim else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # std emb_dim**-0.5: rows of about unit norm, like the other summed inputs.
        nn.init.normal_(self.bag.weight, std=self.bag.embedding_dim**-0.5)
        if self.lin is not None:
            self.lin.reset_parameters()

    def forward(self, bags: Bags) -> Tensor:
        out = self.bag(bags.values, bags.offsets)  # (N, emb_dim), empty bag: 0
        return out if self.lin is None else self.lin(out)


def _unit_output_init(lin: nn.Linear) -> None:
    """Weights N(0, 1 / (2 in out)), bias N(0, 1 / (2 out)).

    Then E|lin(x)|^2 = |x|^2 / (2 in) + 1/2: a standardised input (unit variance per
    column) gives outputs of about unit norm, like a row of the embedding tables,
    whatever the two widths.
    """
    nn.init.normal_(lin.weight, std=(2 * lin.in_features * lin.out_features) ** -0.5)
    nn.init.normal_(lin.bias, std=(2 * lin.out_features) ** -0.5)


class FeatureProjector(nn.Module):
    r"""Item input vectors :math:`h^0` from features and an optional ID embedding.

    .. math::
        h^0_v = W_d \frac{x^{dense}_v - \mu}{\sigma} + b_d
            + \sum_c (W_c x^{c}_v + b_c)
            + \sum_k \mathrm{mean}(E_k[\mathrm{codes}_k(v)])
            + \sum_t \mathrm{mean}(E_t[\mathrm{hash}(\mathrm{tokens}_t(v))])
            + E_{id}[v]

    Each feature kind is projected to ``dim`` and the projections are *summed*: a
    Linear over the concatenation equals the sum of per-kind Linears, so the sum loses
    nothing, while the nonlinearity follows at once in the first convolution (its
    ``ReLU(Q h + q)`` and ``ReLU(W [h ; n] + w)``). The sum also makes the ID-only
    model (no features: Gowalla) a plain embedding table, and an absent kind simply
    adds nothing. Dense columns are standardised with the stored column's mean and
    standard deviation, kept as buffers (they travel with the checkpoint). Every
    group starts with outputs of about unit norm (`_unit_output_init` for the
    Linears, rows of norm ~1 for the tables), so that no group dominates the sum by
    magnitude alone: with torch's default Linear init a single standardised column
    (a year) came out ~4.6x the norm of each embedded group.

    Args:
        specs: the graph's feature columns (`FeatureSpec`s).
        num_items: I, rows of the ID embedding.
        dim: output width.
        id_embedding: learn a per-item ID embedding; off for cold start (items
            embedded from features alone).
        text_buckets: hashed text token buckets (default 2**18).
        categorical_dim: categorical embedding width, projected to ``dim`` when it
            differs; ``None`` (default) uses ``dim``.
        text_dim: text token embedding width, likewise; ``None`` (default): ``dim``.
        dense_mean: (F_dense,) standardisation mean; ``None`` (default): zeros.
        dense_std: (F_dense,) standardisation std; ``None`` (default): ones.

    Shapes:
        - input: a `FeatureBatch` of N items.
        - output: (N, dim).
    """

    def __init__(
        self,
        specs: list[FeatureSpec],
        num_items: int,
        dim: int,
        *,
        id_embedding: bool,
        text_buckets: int = 2**18,
        categorical_dim: int | None = None,
        text_dim: int | None = None,
        dense_mean: Tensor | None = None,
        dense_std: Tensor | None = None,
    ) -> None:
        super().__init__()
        if not specs and not id_embedding:
            raise ConfigError(
                "model.id_embedding is false but the graph has no item features, so "
                "items would have no input at all; set model.id_embedding to true (or "
                "null), or build the graph with an items file."
            )
        self.dim = dim
        self.num_items = num_items
        self.text_buckets = text_buckets
        self.dense_names = [s.name for s in specs if s.kind == "dense"]
        self.vector_names = [s.name for s in specs if s.kind == "vector"]
        self.categorical_names = [s.name for s in specs if s.kind == "categorical"]
        self.text_names = [s.name for s in specs if s.kind == "text"]
        num_dense = len(self.dense_names)
        mean = torch.zeros(num_dense) if dense_mean is None else dense_mean.float()
        std = torch.ones(num_dense) if dense_std is None else dense_std.float()
        self.register_buffer("dense_mean", mean.clone())
        self.register_buffer("dense_std", std.clone())
        self.lin_dense = nn.Linear(num_dense, dim) if num_dense else None
        # Lists, not ModuleDicts: column names may hold characters module names cannot.
        self.lin_vectors = nn.ModuleList(
            nn.Linear(s.dim, dim) for s in specs if s.kind == "vector"
        )
        cat_dim = dim if categorical_dim is None else categorical_dim
        self.emb_categorical = nn.ModuleList(
            _BagEmbedding(s.dim, cat_dim, dim) for s in specs if s.kind == "categorical"
        )
        tok_dim = dim if text_dim is None else text_dim
        self.emb_text = nn.ModuleList(
            _BagEmbedding(text_buckets, tok_dim, dim) for _ in self.text_names
        )
        self.emb_id = nn.Embedding(num_items, dim) if id_embedding else None
        self.reset_parameters()

    @classmethod
    def from_store(
        cls, store: FeatureStore, dim: int, *, id_embedding: bool, **kwargs
    ) -> FeatureProjector:
        """A projector for ``store``'s columns, with its dense statistics."""
        return cls(
            store.specs,
            store.num_items,
            dim,
            id_embedding=id_embedding,
            text_buckets=store.text_buckets,
            dense_mean=store.dense_mean,
            dense_std=store.dense_std,
            **kwargs,
        )

    def reset_parameters(self) -> None:
        """Re-initialise every learned weight (not the dense statistics)."""
        if self.lin_dense is not None:
            _unit_output_init(self.lin_dense)
        for lin in self.lin_vectors:
            _unit_output_init(lin)
        for emb in (*self.emb_categorical, *self.emb_text):
            emb.reset_parameters()
        if self.emb_id is not None:
            nn.init.normal_(self.emb_id.weight, std=self.dim**-0.5)

    def forward(
        self, features: FeatureBatch, *, without_id: Tensor | None = None
    ) -> Tensor:
        """Embed a batch; ``without_id`` marks items whose ID vector is left out.

        Shapes: N items, without_id (N,) bool -> (N, dim).
        """
        h = self.dense_mean.new_zeros(features.num_items, self.dim)  # (N, dim)
        if self.lin_dense is not None:
            x = (features.dense - self.dense_mean) / self.dense_std  # (N, F_dense)
            h = h + self.lin_dense(x)
        for name, lin in zip(self.vector_names, self.lin_vectors, strict=True):
            h = h + lin(features.vectors[name])
        for name, emb in zip(self.categorical_names, self.emb_categorical, strict=True):
            h = h + emb(features.categorical[name])
        for name, emb in zip(self.text_names, self.emb_text, strict=True):
            h = h + emb(features.text[name])
        if self.emb_id is not None:
            h_id = self.emb_id(features.items)  # (N, dim)
            if without_id is not None:
                h_id = h_id * ~without_id[:, None]
            h = h + h_id
        return h

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(dim={self.dim}, "
            f"dense={len(self.dense_names)}, vectors={self.vector_names}, "
            f"categorical={self.categorical_names}, text={self.text_names}, "
            f"id_embedding={self.emb_id is not None})"
        )
