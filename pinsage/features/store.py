"""Every item feature column of a graph as tensors, loaded once, gathered per batch.

`FeatureStore.from_graph` reads a graph's stored columns (text tokenised once, with
`pinsage.features.text`); `FeatureStore.gather` picks the rows of a batch into the
`pinsage.nn.projector.FeatureBatch` the model's projector embeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from pinsage.features.text import count_distinct_tokens, tokenize
from pinsage.graph.feature_columns import FeatureSpec
from pinsage.graph.store import Graph
from pinsage.nn.projector import Bags, FeatureBatch

__all__ = ["MIN_TEXT_BUCKETS", "FeatureStore", "text_buckets_for"]

# A column whose standard deviation is below this is constant: divide by 1 instead.
_MIN_STD = 1e-6
MAX_TOKENS = 32  # tokens kept per text value: titles and short descriptions
# Hash buckets per distinct token: with 8-16x, at most ~12% of tokens share a row.
BUCKETS_PER_TOKEN = 8
MIN_TEXT_BUCKETS = 64  # a table this small costs nothing; smaller gains nothing


def text_buckets_for(
    graph: Graph, max_buckets: int, max_tokens: int = MAX_TOKENS
) -> int:
    """Text hash buckets for ``graph``: a power of two >= 8x its distinct tokens.

    A table of ``max_buckets`` rows (and its two Adam moments) would fill the
    checkpoint for a vocabulary of a few hundred words; sized to the vocabulary of
    the largest text column, it grows with the data and never exceeds
    ``max_buckets``. Hashing stays corpus-independent for a given count, so a run
    records the count in its config and inference reuses it.
    """
    distinct = max(
        (
            count_distinct_tokens(graph.feature(s.name)["text"], max_tokens)
            for s in graph.features
            if s.kind == "text"
        ),
        default=0,
    )
    wanted = max(MIN_TEXT_BUCKETS, BUCKETS_PER_TOKEN * distinct)
    return min(max_buckets, 1 << (wanted - 1).bit_length())


def _gather_bags(values: Tensor, offsets: Tensor, rows: Tensor) -> Bags:
    """Rows of a CSR column as Bags. Shapes: offsets (I+1,), rows (N,) -> Bags."""
    start = offsets.index_select(0, rows)  # (N,)
    length = offsets.index_select(0, rows + 1) - start  # (N,)
    bag_offsets = torch.cumsum(length, 0) - length  # (N,) exclusive prefix sum
    total = int(length.sum())
    # Flat slot k of bag i reads values[start_i + (k - bag_offsets_i)].
    shift = torch.repeat_interleave(start - bag_offsets, length, output_size=total)
    position = shift + torch.arange(total, device=values.device)  # (M,)
    return Bags(values.index_select(0, position), bag_offsets)


def _tensor(array, dtype: np.dtype) -> Tensor:
    """A writable in-memory copy of a (memory-mapped) array as a tensor."""
    return torch.from_numpy(np.array(array, dtype=dtype, copy=True))


@dataclass(frozen=True, eq=False)  # tensors: no elementwise ==
class FeatureStore:
    """Every stored feature column of a graph as tensors, in item-index order.

    Shapes: dense (I, F_dense) float32 (columns ``dense_names``), dense_mean and
    dense_std (F_dense,) float32 (std of a constant column: 1); vectors name ->
    (I, D) float32; categorical and text name -> (values (M,) int64, offsets (I+1,)
    int64) CSR.
    """

    specs: list[FeatureSpec]
    num_items: int
    text_buckets: int
    dense_names: list[str]
    dense: Tensor
    dense_mean: Tensor
    dense_std: Tensor
    vectors: dict[str, Tensor]
    categorical: dict[str, tuple[Tensor, Tensor]]
    text: dict[str, tuple[Tensor, Tensor]]

    @classmethod
    def from_graph(
        cls, graph: Graph, text_buckets: int = 2**18, max_tokens: int = MAX_TOKENS
    ) -> FeatureStore:
        """Load (and tokenise) every feature column of ``graph`` once."""
        dense_cols, vectors, categorical, text = [], {}, {}, {}
        for spec in graph.features:
            col = graph.feature(spec.name)
            if spec.kind == "dense":
                dense_cols.append(_tensor(col["values"], np.float32))
            elif spec.kind == "vector":
                vectors[spec.name] = _tensor(col["values"], np.float32)
            elif spec.kind == "categorical":
                categorical[spec.name] = (
                    _tensor(col["codes"], np.int64),
                    _tensor(col["offsets"], np.int64),
                )
            else:
                ids, offsets = tokenize(col["text"], text_buckets, max_tokens)
                text[spec.name] = (torch.from_numpy(ids), torch.from_numpy(offsets))
        num_items = graph.num_items
        if dense_cols:
            dense = torch.stack(dense_cols, dim=1)  # (I, F_dense)
            std, mean = torch.std_mean(dense, dim=0, correction=0)  # (F_dense,) each
        else:
            dense, std, mean = torch.zeros(num_items, 0), torch.ones(0), torch.zeros(0)
        return cls(
            specs=list(graph.features),
            num_items=num_items,
            text_buckets=text_buckets,
            dense_names=[s.name for s in graph.features if s.kind == "dense"],
            dense=dense,
            dense_mean=mean,
            dense_std=torch.where(std < _MIN_STD, torch.ones_like(std), std),
            vectors=vectors,
            categorical=categorical,
            text=text,
        )

    def gather(self, items: Tensor) -> FeatureBatch:
        """The features of ``items``, vectorised. Shapes: items (N,) -> N rows."""
        rows = items.to(self.dense.device, torch.long)
        return FeatureBatch(
            items=rows,
            dense=self.dense.index_select(0, rows),
            vectors={k: v.index_select(0, rows) for k, v in self.vectors.items()},
            categorical={
                k: _gather_bags(v, o, rows) for k, (v, o) in self.categorical.items()
            },
            text={k: _gather_bags(v, o, rows) for k, (v, o) in self.text.items()},
        )
