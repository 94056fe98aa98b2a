"""The model stages of bulk inference as batch functions over Arrow tables.

Each stage is a callable class (``__init__`` loads the model, ``__call__(batch) ->
batch``) or a plain function, so it runs and is tested without Ray; `ray_engine` only
wires them into a Ray Data pipeline (STYLE.md rule 17). `Chain` runs several stages on
each batch in one actor, so one pass over the items both finishes layer k and starts
layer k+1. Vectors travel as Arrow ``fixed_size_list<float32>`` columns: they survive
Ray Data's hash joins, and a left join's missing rows arrive as nulls, which
`to_matrix` turns into zero vectors.

Columns: ``node`` int64 (item or context index), ``h`` a layer's vectors, ``m`` (or
any name `Message` is given) messages, ``alpha`` float32 importance weights, ``n``
pooled neighbourhoods, ``z`` final embeddings.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import torch

from pinsage.features import FeatureStore
from pinsage.nn.conv import PinSageConv, aggregate
from pinsage.nn.model import PinSageModel

__all__ = [
    "Chain",
    "Gather",
    "Message",
    "Project",
    "Update",
    "from_matrix",
    "message_steps",
    "message_width",
    "pool",
    "to_matrix",
    "unbox",
]


def to_matrix(column: pa.Array | pa.ChunkedArray, width: int) -> np.ndarray:
    """A ``fixed_size_list<float32>`` column as a matrix; null rows become zeros.

    Shapes: column (N,) lists of ``width`` -> (N, width) float32.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    out = np.zeros((len(column), width), dtype=np.float32)
    valid = column.is_valid().to_numpy(zero_copy_only=False)  # (N,) bool
    # flatten() skips the values of null rows, so it lines up with the valid rows.
    values = column.flatten().to_numpy(zero_copy_only=False)
    out[valid] = values.reshape(-1, width)
    return out


def from_matrix(matrix: np.ndarray) -> pa.FixedSizeListArray:
    """A matrix as a ``fixed_size_list<float32>`` column. Shapes: (N, D) -> (N,)."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    flat = pa.array(matrix.reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1])


def unbox(box: list) -> Any:
    """The object in a one-element list: an ObjectRef is fetched, anything else kept.

    Ray resolves ObjectRefs passed directly as actor arguments; one inside a list is
    passed as is, so the object is fetched here, once per actor, and never pickled
    with a batch. Without Ray, the list holds the object itself.
    """
    (obj,) = box
    return ray.get(obj) if isinstance(obj, ray.ObjectRef) else obj


def _nodes(batch: pa.Table) -> torch.Tensor:
    return torch.from_numpy(batch["node"].to_numpy().astype(np.int64))


class Project:
    """Layer-0 input ``h^0 = projector(features)`` of a batch of items.

    Shapes: batch {node (B,)} -> {node (B,), h (B, dim)}.
    """

    def __init__(self, model: PinSageModel, store_box: list) -> None:
        self.model = model
        self.store: FeatureStore = unbox(store_box)

    @torch.inference_mode()
    def __call__(self, batch: pa.Table) -> pa.Table:
        """Project one batch of items."""
        nodes = _nodes(batch)
        h = self.model.projector(self.store.gather(nodes))  # (B, dim)
        return pa.table({"node": batch["node"], "h": from_matrix(h.numpy())})


def _conv(model: PinSageModel, layer: int | None) -> PinSageConv:
    return model.context_conv if layer is None else model.convs[layer]


def _carries_inputs(model: PinSageModel, layer: int | None) -> bool:
    """Whether layer ``layer``'s messages carry their sources' ``h`` too.

    The context layer of a ``residual`` model does: its destinations' residual is
    their items pooled as the messages are, so one join and one pool yield both.
    """
    return layer is None and model.residual


def message_width(model: PinSageModel, layer: int | None) -> int:
    """Width of layer ``layer``'s message column (`Message`, `pool`, `Update`)."""
    conv = _conv(model, layer)
    return conv.hidden_dim + (conv.in_dim if _carries_inputs(model, layer) else 0)


def message_steps(
    model: PinSageModel, k: int, contexts: bool
) -> tuple[list[tuple[type, tuple]], dict[str, int]]:
    """The stages that follow h^k, and the columns (name: width) they append.

    h^k feeds ``convs[k]``, so its layer-k messages (``m``) follow it while k < K;
    from h^(K-1) also the context layer's (``m_context``), when contexts are embedded.
    """
    steps: list[tuple[type, tuple]] = []
    columns: dict[str, int] = {}
    if k < len(model.convs):
        steps.append((Message, (k,)))
        columns["m"] = message_width(model, k)
    if contexts and k == len(model.convs) - 1:
        steps.append((Message, (None, "m_context")))
        columns["m_context"] = message_width(model, None)
    return steps, columns


class Message:
    """Messages ``m_v = ReLU(Q_k h_v + q_k)`` of layer ``layer`` (None: context layer).

    Appends column ``column`` and keeps the batch's others. A residual model's
    context layer sends ``[m_v ; h_v]`` (`message_width`).
    Shapes: batch {node (B,), h (B, dim), ...} -> {..., column (B, width)}.
    """

    def __init__(
        self, model: PinSageModel, layer: int | None, column: str = "m"
    ) -> None:
        self.conv = _conv(model, layer)
        self.column = column
        self.with_inputs = _carries_inputs(model, layer)

    @torch.inference_mode()
    def __call__(self, batch: pa.Table) -> pa.Table:
        """Messages of one batch of sources."""
        h = torch.from_numpy(to_matrix(batch["h"], self.conv.in_dim))  # (B, dim)
        m = self.conv.message(h)  # (B, hidden_dim)
        if self.with_inputs:
            m = torch.cat([m, h], dim=1)  # (B, hidden_dim + dim)
        return batch.append_column(self.column, from_matrix(m.numpy()))


def pool(block: pa.Table, kind: str, width: int) -> pa.Table:
    """The aggregates ``n_u`` of every destination in ``block``, in one call.

    ``block`` must hold all the rows of each of its destinations (a hash partition on
    ``dst``); the same `aggregate` as the convolution then pools them all at once.
    Shapes: block {dst (E,), alpha (E,), m (E, width)} -> {node (U,), n (U, width)},
    U the distinct destinations, ascending.
    """
    dst = torch.from_numpy(block["dst"].to_numpy().astype(np.int64))  # (E,)
    nodes, local = torch.unique(dst, return_inverse=True)  # (U,), (E,)
    m = torch.from_numpy(to_matrix(block["m"], width))  # (E, width)
    alpha = torch.from_numpy(block["alpha"].to_numpy().astype(np.float32))  # (E,)
    edge_index = torch.stack([torch.arange(dst.numel()), local])  # (2, E)
    n = aggregate(m, edge_index, alpha, nodes.numel(), kind)  # (U, width)
    return pa.table(
        {"node": pa.array(nodes.numpy(), pa.int64()), "n": from_matrix(n.numpy())}
    )


def _read_only_tensor(array: np.ndarray) -> torch.Tensor:
    """A read-only array (Ray's zero-copy view of a shared object) as a tensor.

    No copy: the tensor is only read (gathered from), so the writability torch warns
    about does not matter. Shapes: any -> the same.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(array)


class Gather:
    """Join + reduce of whole node ranges against broadcast messages (map-side join).

    Each row of the batch names one neighbourhood part (`part_ranges`): the rows of
    destinations ``start..stop-1``. Their sources' messages are gathered from the
    broadcast matrix ``messages`` (row = source node) and pooled per destination, so
    nothing is shuffled: the table stays where it was written and only the matrix
    travels, once per actor. ``inputs`` (row = node), when given, supplies each
    destination's own ``h`` for `Update`; contexts take theirs from the model.
    Shapes: batch {part, start, stop} -> {node (B,), [h (B, dim)], n (B, width)},
    B the nodes of the batch's ranges.
    """

    def __init__(
        self,
        model: PinSageModel,
        kind: str,
        messages_box: list,
        inputs_box: list | None = None,
    ) -> None:
        self.kind = kind
        self.messages = _read_only_tensor(unbox(messages_box))  # (N_src, width)
        self.inputs: np.ndarray | None = (
            None if inputs_box is None else unbox(inputs_box)
        )

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Pool every destination of the batch's ranges."""
        parts = zip(
            batch["part"].to_pylist(),
            batch["start"].to_pylist(),
            batch["stop"].to_pylist(),
            strict=True,
        )
        return pa.concat_tables(self._range(*part) for part in parts)

    def _range(self, part: str, start: int, stop: int) -> pa.Table:
        rows = pq.read_table(part)
        src = torch.from_numpy(rows["src"].to_numpy())  # (E,)
        local = torch.from_numpy(rows["dst"].to_numpy() - start)  # (E,)
        alpha = torch.from_numpy(rows["alpha"].to_numpy())  # (E,)
        edge_index = torch.stack([src, local])  # (2, E)
        # (B, width); aggregate gathers the sources' rows itself, in one pass
        n = aggregate(self.messages, edge_index, alpha, stop - start, self.kind)
        out = {"node": pa.array(np.arange(start, stop, dtype=np.int64))}
        if self.inputs is not None:
            out["h"] = from_matrix(self.inputs[start:stop])
        out["n"] = from_matrix(n.numpy())
        return pa.table(out)


class Update:
    """Layer output ``norm(ReLU(W [h_u ; n_u] + w))``, then the head if ``head``.

    For item layers (``layer`` an index) ``h_u`` is the batch's ``h``; for the context
    layer (``layer=None``) it is the model's context input of ``node``. A null ``n``
    (no neighbours) is the zero vector, as in the convolution. A residual model's
    head adds an item's ``h_u``, or a context's pooled inputs (the tail of its ``n``).
    Shapes: batch {node (B,), [h (B, dim)], n (B, width) or null} ->
    {node (B,), h (B, dim)}, or {node (B,), z (B, out_dim)} with ``head``.
    """

    def __init__(self, model: PinSageModel, layer: int | None, head: bool) -> None:
        self.model = model
        self.conv = _conv(self.model, layer)
        self.layer = layer
        self.head = head
        self.width = message_width(model, layer)

    @torch.inference_mode()
    def __call__(self, batch: pa.Table) -> pa.Table:
        """Update one batch of destinations."""
        if self.layer is None:
            h_dst = self.model.context_input(_nodes(batch))  # (B, dim)
        else:
            h_dst = torch.from_numpy(to_matrix(batch["h"], self.conv.dst_dim))
        pooled = torch.from_numpy(to_matrix(batch["n"], self.width))  # (B, width)
        n = pooled[:, : self.conv.hidden_dim]
        h = self.conv.update(h_dst, n)  # (B, dim)
        if self.head:
            skip = None
            if self.model.residual:
                skip = pooled[:, n.shape[1] :] if self.layer is None else h_dst
            z = self.model.head(h, skip)  # (B, out_dim)
            return pa.table({"node": batch["node"], "z": from_matrix(z.numpy())})
        return pa.table({"node": batch["node"], "h": from_matrix(h.numpy())})


class Chain:
    """Model stages applied in turn to each batch, by one actor.

    ``steps`` are (stage class, arguments after the model) pairs; the model is
    fetched once and shared by them, in eval mode.
    """

    def __init__(self, model_box: list, steps: list[tuple[type, tuple]]) -> None:
        self.model: PinSageModel = unbox(model_box).eval()
        self.steps = [stage(self.model, *args) for stage, args in steps]

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Run every step on ``batch``."""
        for step in self.steps:
            batch = step(batch)
        return batch
