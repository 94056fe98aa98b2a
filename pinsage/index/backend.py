"""FAISS, in its CPU or GPU build: import it once, and decide whether to use a GPU.

`pinsage[cpu]` installs faiss-cpu, `pinsage[gpu]` faiss-gpu (CUDA); the two wheels
provide the same ``faiss`` module and must never be installed together. With the GPU
build and a visible GPU, `pinsage index build` trains IVF's coarse quantizer and
computes the exact neighbours of its recall measurement on the GPU; the saved index
is a CPU index either way, so any machine can load and serve it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator

# FAISS's loader logs every CPU-feature probe at INFO (seven lines before a `query`
# answers, now that the CLI configures logging before FAISS is imported).
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

try:
    import faiss
except ImportError as exc:  # neither extra installed
    raise ImportError(
        "pinsage's index needs FAISS: pip install 'pinsage[cpu]' (faiss-cpu) or "
        "'pinsage[gpu]' (faiss-gpu, CUDA 12), never both."
    ) from exc

__all__ = ["exact_index", "faiss", "gpu_status", "gpu_training", "use_gpu"]

log = logging.getLogger(__name__)


def gpu_status() -> tuple[bool, str]:
    """(whether FAISS can use a GPU here, why or why not)."""
    if not hasattr(faiss, "StandardGpuResources"):
        return False, (
            "this FAISS build has no GPU support (faiss-cpu); install "
            "'pinsage[gpu]' in an environment without faiss-cpu"
        )
    count = faiss.get_num_gpus()
    if count == 0:
        return False, "FAISS sees no GPU (check CUDA_VISIBLE_DEVICES and the driver)"
    return True, f"FAISS sees {count} GPU(s)"


def use_gpu(requested: bool | None) -> bool:
    """Whether to build on a GPU: ``None`` uses one when present, quietly.

    ``True`` without a usable GPU logs a warning saying why, then falls back to the
    CPU (a build is never refused for want of a GPU).
    """
    if requested is False:
        return False
    ok, why = gpu_status()
    if requested and not ok:
        log.warning("--gpu: %s; building on the CPU instead", why)
    elif ok:
        log.info("building on the GPU: %s", why)
    return ok


def exact_index(d: int, gpu: bool) -> faiss.Index:
    """An exact inner-product index of width ``d``, on GPU 0 when ``gpu``."""
    index = faiss.IndexFlatIP(d)
    if gpu:
        index = faiss.index_cpu_to_gpu(_resources(), 0, index)
    return index


@functools.cache
def _resources() -> faiss.StandardGpuResources:
    # One per process, alive as long as it: GPU indexes must not outlive theirs.
    return faiss.StandardGpuResources()


@contextlib.contextmanager
def gpu_training(index: faiss.Index) -> Iterator[None]:
    """Within the block, an IVF index runs its k-means on GPU 0.

    FAISS's ``clustering_index`` hook: the k-means assigns on a GPU flat index and
    the centroids end up in the index's own CPU quantizer. The hook holds a borrowed
    pointer, so the GPU index lives exactly as long as the block. Other kinds build
    on the CPU (HNSW has no FAISS GPU implementation).
    """
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        log.info("no GPU training for %s; it builds on the CPU", type(index).__name__)
        yield
        return
    assigner = exact_index(ivf.d, gpu=True)
    ivf.clustering_index = assigner
    try:
        yield
    finally:
        ivf.clustering_index = None
        del assigner
