"""Append new items' vectors to a built index (`pinsage index add`), no rebuild.

Items embedded after training (`pinsage embed --items`) go after the index's last
row: every existing row, and so the context files' training-item rows, keeps its
place. FAISS adds to a trained index as it does at build time (IVF lists keep their
centroids: a few percent of new items change nothing of note; rebuild after large
additions). The folder is rewritten as a temporary sibling and renamed, so a service
keeps serving the old one until `POST /reload` swaps to the result.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pinsage.atomic import atomic_dir, publish
from pinsage.errors import DataError
from pinsage.index.backend import faiss
from pinsage.index.build import IDS_FILE, INDEX_FILE, VECTORS_FILE
from pinsage.index.contexts import CONTEXT_FILES
from pinsage.index.search import Index
from pinsage.infer.output import read_embeddings
from pinsage.manifests import EmbeddingsManifest, IndexManifest

__all__ = ["add_to_index"]

log = logging.getLogger(__name__)


def _new_rows(index: Index, embeddings: Path) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings' ids and normalised vectors, checked against the index."""
    ids, vectors = read_embeddings(embeddings)  # DataError when incomplete or NaN
    if vectors.shape[1] != index.index.d:
        raise DataError(
            f"{embeddings}: vectors of width {vectors.shape[1]}, the index "
            f"{index.name} holds width {index.index.d}; embed with the run the index "
            "was built from."
        )
    if (ids.dtype == object) != (index.ids.dtype == object):
        raise DataError(
            f"{embeddings}: its item ids and the index's are of different types "
            "(strings and integers); embed the new items of this index's graph."
        )
    present = set(index.ids.tolist())
    repeated = [i for i in ids.tolist() if i in present]
    if repeated or len(set(ids.tolist())) != len(ids):
        shown = repeated[:5] or "ids repeated within the folder"
        raise DataError(
            f"{embeddings}: {len(repeated)} of its items are already in the index "
            f"{index.name} (e.g. {shown}); `pinsage index add` takes new items only "
            "(rebuild the index with `pinsage index build` to replace vectors)."
        )
    x = np.ascontiguousarray(vectors, dtype=np.float32).copy()
    faiss.normalize_L2(x)
    return ids, x


def add_to_index(
    index_dir: Path, embeddings: Path, *, out: Path | None = None
) -> IndexManifest:
    """Append ``embeddings`` (new items) to the index ``index_dir``; the new manifest.

    Writes to ``out`` (default: ``index_dir`` itself, replaced atomically).

    Raises:
        DataError: an incomplete folder, another width or id type, or items already
            in the index.
    """
    index_dir = Path(index_dir)
    out = index_dir if out is None else Path(out)
    t0 = time.perf_counter()
    index = Index.load(index_dir)
    ids, x = _new_rows(index, Path(embeddings))
    index.index.add(x)
    all_ids = np.concatenate([index.ids, ids])
    source = EmbeddingsManifest.read(Path(embeddings))
    added = {
        "embeddings": str(Path(embeddings).resolve()),
        "checkpoint_sha256": source.checkpoint_sha256 if source else None,
        "count": len(ids),
    }
    manifest = replace(
        index.manifest, count=len(all_ids), added=[*index.manifest.added, added]
    )
    with atomic_dir(out, overwrite=True) as tmp:
        faiss.write_index(index.index, str(tmp / INDEX_FILE))
        pq.write_table(pa.table({"item": all_ids}), tmp / IDS_FILE)
        np.save(tmp / VECTORS_FILE, np.concatenate([index.vectors, x]))
        if manifest.contexts:
            for name in CONTEXT_FILES:
                shutil.copy2(index_dir / name, tmp / name)
        publish(tmp, manifest.to_json())
    log.info(
        "added %d items to the index %s (%d in all) in %.1fs",
        len(ids),
        out,
        len(all_ids),
        time.perf_counter() - t0,
    )
    return manifest
