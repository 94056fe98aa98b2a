"""The local inference engine: every node's embedding, layer by layer, each once.

With neighbourhoods fixed in a table, layer k of every item is one convolution over a
block whose sources and destinations are all items; layer k+1 reads those vectors. The
K-1 item layers are shared by the item and the context outputs. This is the plain-torch
form of DESIGN.md's map / join / reduce, and the reference for the Ray engine.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pinsage.nn.features import FeatureStore
from pinsage.nn.model import PinSageModel
from pinsage.sampler.blocks import Block
from pinsage.sampler.walks import Neighbors

__all__ = ["embed_all", "table_block"]


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
    items = table_block(item_table, num_items)
    h = model.projector(store.gather(torch.arange(num_items)))  # (I, dim)
    for conv in model.convs[:-1]:
        h = conv(h, h, items.edge_index, items.edge_weight)  # every item, once a layer
    z_items = model.head(model.convs[-1](h, h, items.edge_index, items.edge_weight))
    if context_table is None:
        return z_items, None
    ctx = table_block(context_table, num_items, contexts=True)
    h_dst = model.context_input(ctx.dst_nodes)
    z_contexts = model.head(
        model.context_conv(h, h_dst, ctx.edge_index, ctx.edge_weight)
    )
    return z_items, z_contexts
