"""The local inference engine: every node's embedding, layer by layer, each once.

With neighbourhoods fixed in a table, layer k of every item is one convolution over a
block whose sources and destinations are all items; layer k+1 reads those vectors. The
K-1 item layers are shared by the item and the context outputs. This is the plain-torch
form of DESIGN.md's map / join / reduce, and the reference for the Ray engine.

Each layer computes its sources' messages once, then pools and updates the
destinations in chunks of about ``CHUNK_EDGES`` table slots: memory stays at the node
vectors plus one chunk's gathered messages (E x width floats for all E at once would
be 26 GB at a million items, T = 50, width 128).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from pinsage.features import FeatureStore
from pinsage.nn.blocks import Block
from pinsage.nn.conv import PinSageConv
from pinsage.nn.model import PinSageModel
from pinsage.progress import ProgressLog
from pinsage.sampler.walks import Neighbors

__all__ = ["CHUNK_EDGES", "embed_all", "table_block"]

log = logging.getLogger(__name__)

CHUNK_EDGES = 1 << 20  # gathered messages of a chunk: 512 MB at width 128


def table_block(table: Neighbors, num_items: int, *, contexts: bool = False) -> Block:
    """One block holding a whole neighbourhood table.

    Sources are all items (local id = item index); destinations are the table's rows:
    all items, or all contexts when ``contexts``.
    Shapes: table (N, T) -> Block with E = filled slots.
    """
    filled = torch.nonzero(table.ids.flatten() >= 0).squeeze(1)  # (E,)
    src = table.ids.flatten().index_select(0, filled)
    dst = filled // table.ids.shape[1]
    return Block(
        src_nodes=torch.arange(num_items),
        dst_nodes=torch.arange(table.ids.shape[0]),
        edge_index=torch.stack([src, dst]),
        edge_weight=table.weights.flatten().index_select(0, filled),
        dst_is_context=contexts,
    )


@torch.no_grad()
def embed_all(
    model: PinSageModel,
    store: FeatureStore,
    item_table: Neighbors,
    context_table: Neighbors | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Embeddings of every item (and every context when ``context_table`` is given).

    Shapes: item_table (I, T), context_table (C, T) -> ((I, out_dim), (C, out_dim)).
    """
    model.eval()
    num_items = item_table.ids.shape[0]
    h = model.projector(store.gather(torch.arange(num_items)))  # (I, dim)
    for conv in model.convs[:-1]:
        h = _convolve(conv, h, h, item_table)  # every item, once a layer
    z_items = _convolve(model.convs[-1], h, h, item_table, top=model)
    if context_table is None:
        return z_items, None
    h_dst = model.context_input(torch.arange(context_table.ids.shape[0]))
    z_contexts = _convolve(model.context_conv, h, h_dst, context_table, top=model)
    return z_items, z_contexts


def _convolve(
    conv: PinSageConv,
    h_src: Tensor,
    h_dst: Tensor,
    table: Neighbors,
    *,
    top: PinSageModel | None = None,
) -> Tensor:
    """``conv`` over a whole table, destinations in chunks of rows.

    With ``top`` (the model, when ``conv`` is a top layer) each chunk goes on
    through the model's head, with its residual.
    Shapes: h_src (I, F) all items; h_dst (N, F_dst) and table (N, T) the
    destinations -> (N, D), or (N, out_dim) with ``top``.
    """
    sources = conv.sources(h_src)  # each source's terms, once
    rows = max(1, CHUNK_EDGES // max(1, table.ids.shape[1]))
    width = conv.out_dim if top is None else top.out_dim
    # filled in place, not concatenated: no second copy of the layer at the end
    out = h_src.new_empty((table.ids.shape[0], width))
    progress = ProgressLog(log, "embedding layer", table.ids.shape[0], unit="nodes")
    for lo in range(0, table.ids.shape[0], rows):
        progress.update(lo)
        chunk = Neighbors(*(part[lo : lo + rows] for part in table))
        contexts = top is not None and conv is top.context_conv
        # destinations local to the chunk
        block = table_block(chunk, h_src.shape[0], contexts=contexts)
        e, w = block.edge_index, block.edge_weight
        dst = h_dst[lo : lo + rows]
        h = conv.combine(sources, dst, e, w)
        if top is not None:
            h = top.head(h, top.skip(block, h_src, dst, e, w))
        out[lo : lo + len(h)] = h
    return out
