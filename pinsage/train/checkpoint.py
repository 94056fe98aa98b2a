"""Atomic checkpoints with a ``latest`` pointer (STYLE.md rule 16).

A checkpoint is one dict: ``model`` (the unwrapped module's state), ``optimizer``,
``config`` (the resolved pipeline config as plain data), ``step``, ``best_metric``,
``rng`` (torch CPU and CUDA generator states; batch sampling needs none, it is seeded
by step). Files are written to a temporary sibling and renamed; ``latest`` is a small
text file naming the newest checkpoint, replaced the same way, so a crash at any point
leaves the previous checkpoint readable.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import torch

from pinsage.errors import CheckpointError
from pinsage.graph.store import Graph

__all__ = [
    "check_graph",
    "graph_key",
    "latest_checkpoint",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

log = logging.getLogger(__name__)

KEEP_LAST = 3  # older checkpoints are deleted; resume needs only the latest


def _replace(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def rng_state() -> dict:
    """Torch's global generator states (CPU, and CUDA where present)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoints/step-XXXXXXXX.pt`` and point ``checkpoints/latest`` at it."""
    folder = Path(run_dir) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{checkpoint['step']:08d}.pt"
    _replace(path, lambda tmp: torch.save(checkpoint, tmp))
    _replace(folder / "latest", lambda tmp: tmp.write_text(path.name + "\n"))
    for old in sorted(folder.glob("step-*.pt"))[:-KEEP_LAST]:
        old.unlink(missing_ok=True)
    log.info("checkpoint %s", path)
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``latest`` points at, or None when the run has none."""
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    return pointer.parent / pointer.read_text().strip()


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """Load the latest checkpoint; `CheckpointError` if missing or unreadable."""
    path = latest_checkpoint(run_dir)
    if path is None or not path.exists():
        raise CheckpointError(
            f"{run_dir}: no checkpoint to resume from (checkpoints/latest missing or "
            "dangling); train without --resume to start afresh."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on corrupt files
        raise CheckpointError(
            f"{path}: corrupt checkpoint ({type(exc).__name__}: {exc}); delete it and "
            "point checkpoints/latest at an older one, or train afresh."
        ) from exc
    missing = {"model", "optimizer", "config", "step"} - set(checkpoint)
    if missing:
        raise CheckpointError(
            f"{path}: not a pinsage checkpoint (missing {sorted(missing)})."
        )
    return checkpoint


def graph_key(graph: Graph) -> dict:
    """What a checkpoint records of its graph (``checkpoint["graph"]``)."""
    return {"num_items": graph.num_items, "num_contexts": graph.num_contexts}


def check_graph(checkpoint: dict[str, Any], graph: Graph, where: Path) -> None:
    """`CheckpointError` unless ``checkpoint`` was trained on a graph of this shape."""
    saved, now = checkpoint.get("graph", {}), graph_key(graph)
    if saved and saved != now:
        raise CheckpointError(
            f"{where} was trained on a graph with {saved}, but {graph.path} has "
            f"{now}; pass the graph the run was trained on, or train a new run."
        )
