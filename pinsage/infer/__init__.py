"""Bulk embedding inference: every item's (and context's) vector, each computed once.

`embed` is the job; `RayOptions` tunes its Ray engine; `read_embeddings` reads its
output back. The Ray-dependent names load on first use, so that importing
`pinsage.infer.local` (evaluation does, every epoch's process) does not import Ray.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pinsage.infer.output import read_embeddings

if TYPE_CHECKING:
    from pinsage.infer.job import embed
    from pinsage.infer.ray_engine import RayOptions

__all__ = ["RayOptions", "embed", "read_embeddings"]

_LAZY = {"embed": "pinsage.infer.job", "RayOptions": "pinsage.infer.ray_engine"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
