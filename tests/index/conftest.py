"""Embeddings folders of generated vectors, written as `pinsage embed` writes them.

Also `serve`: the lookup service on a free loopback port, in a thread.
"""

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import uvicorn

from pinsage.atomic import publish
from pinsage.index.service import create_app
from pinsage.infer.output import matrix_batches, write_parts
from tests.helpers import free_port


@contextlib.contextmanager
def _serving(index_dir: Path, **options) -> Iterator[str]:
    """Run `create_app(index_dir, **options)` under uvicorn; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(index_dir, **options),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def _write_embeddings(folder: Path, ids: list, vectors: np.ndarray) -> Path:
    write_parts(folder, "item", pa.array(ids), matrix_batches(vectors, rows=700))
    publish(
        folder, {"count": len(ids), "dim": vectors.shape[1], "checkpoint_sha256": "x"}
    )
    return folder


def clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Vectors around 50 centres: neighbourhoods an approximate index can find."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, d))
    return (centres[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, d))).astype(
        np.float32
    )


@pytest.fixture(scope="session")
def vectors() -> np.ndarray:
    return clustered(3000, 32)


@pytest.fixture(scope="session")
def embeddings(tmp_path_factory, vectors) -> Path:
    ids = [f"item-{i}" for i in range(len(vectors))]
    return _write_embeddings(
        tmp_path_factory.mktemp("emb") / "embeddings", ids, vectors
    )


@pytest.fixture
def write_embeddings():
    """Write a complete embeddings folder: (folder, ids, vectors) -> folder."""
    return _write_embeddings


@pytest.fixture(scope="module")
def write_embeddings_once():
    """`write_embeddings` for module-scoped fixtures."""
    return _write_embeddings


@pytest.fixture(scope="session")
def serve():
    """Serve an index folder: ``with serve(folder, **create_app options) as url:``."""
    return _serving
