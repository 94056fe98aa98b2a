"""Atomic checkpoints with a ``latest`` pointer (STYLE.md rule 16).

A checkpoint is one dict: ``model`` (the unwrapped module's state), ``optimizer``,
``config`` (the resolved pipeline config as plain data), ``step``, ``best_metric``,
``rng`` (torch CPU and CUDA generator states; batch sampling needs none, it is seeded
by step). Files are written to a temporary sibling and renamed; ``latest`` is a small
text file naming the newest checkpoint, replaced the same way, so a crash at any point
leaves the previous checkpoint readable.

Checkpoints are read with ``torch.load(weights_only=True)`` (`read_tensors`): tensors
and plain containers only, so a crafted file cannot run code when it is loaded; and
``latest`` may name only a file inside the run's own ``checkpoints/`` folder.
"""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from pinsage.atomic import remove_dead_leftovers_in, temp_sibling
from pinsage.errors import CheckpointError
from pinsage.graph.store import Graph

__all__ = [
    "check_graph",
    "graph_key",
    "latest_checkpoint",
    "load_checkpoint",
    "read_tensors",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

log = logging.getLogger(__name__)

KEEP_LAST = 3  # older checkpoints are deleted; resume needs only the latest


def _replace(path: Path, write) -> None:
    tmp = temp_sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)  # a failed write() (disk full) names no file
        raise
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


def _serialised(checkpoint: dict[str, Any]) -> memoryview:
    """The checkpoint as bytes (``torch.save`` into memory).

    Written to disk by Python, a full disk or a read-only folder is an OSError naming
    the file, which the CLI reports as one line; torch's own file writer turns it into
    a RuntimeError without an errno.
    """
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getbuffer()


def save_checkpoint(run_dir: Path, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoints/step-XXXXXXXX.pt`` and point ``checkpoints/latest`` at it."""
    folder = Path(run_dir) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    remove_dead_leftovers_in(folder)  # what a save killed by a crash left
    path = folder / f"step-{checkpoint['step']:08d}.pt"
    _replace(path, lambda tmp: tmp.write_bytes(_serialised(checkpoint)))
    _replace(folder / "latest", lambda tmp: tmp.write_text(path.name + "\n"))
    for old in sorted(folder.glob("step-*.pt"))[:-KEEP_LAST]:
        old.unlink(missing_ok=True)
    log.info("checkpoint %s", path)
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``latest`` points at, or None when the run has none.

    `CheckpointError` when ``latest`` names anything but a file in the same folder
    (a path, ``..``): whoever can edit the pointer must not make a run read, or
    later delete, files outside it.
    """
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    name = pointer.read_text().strip()
    if not name or name in {".", ".."} or "/" in name or os.sep in name or "\0" in name:
        raise CheckpointError(
            f"{pointer} names {name[:80]!r}, which is not a file in {pointer.parent}; "
            "it must hold a bare checkpoint file name such as step-00000100.pt. Write "
            "the name of one of that folder's checkpoints into it, or train afresh."
        )
    return pointer.parent / name


def read_tensors(path: Path) -> Any:
    """``torch.load`` that builds tensors and plain containers only, never objects.

    A pickle can name any callable to run while it loads; ``weights_only`` allows
    only tensors, numbers, strings and containers. `CheckpointError` (naming
    ``path``) when the file needs more, or is not a readable torch file.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on corrupt files
        text = str(exc)
        if found := re.search(r"Unsupported global: GLOBAL (\S+)", text):
            raise CheckpointError(
                f"{path}: refused to load: it names {found[1][:100]}, not only tensors "
                "and plain data, so pinsage did not write it or it was altered, and "
                "loading it could run code. Delete it and use a checkpoint pinsage "
                "wrote, or train afresh."
            ) from exc
        # Not torch's advice to retry with weights_only=False: only what it found.
        found = re.search(r"WeightsUnpickler error: \s*(\S[^\n]*)", text)
        reason = found[1] if found else f"{type(exc).__name__}: {text}"
        raise CheckpointError(
            f"{path}: corrupt checkpoint ({reason[:200]}); delete it and point "
            "checkpoints/latest at an older one, or train afresh."
        ) from exc


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """Load the latest checkpoint; `CheckpointError` if missing or unreadable."""
    path = latest_checkpoint(run_dir)
    if path is None or not path.exists():
        raise CheckpointError(
            f"{run_dir}: no checkpoint to resume from (checkpoints/latest missing or "
            "dangling); train without --resume to start afresh."
        )
    checkpoint = read_tensors(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path}: not a pinsage checkpoint (a {type(checkpoint).__name__}, not a "
            "dict); delete it and point checkpoints/latest at an older one."
        )
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
