"""Atomic artifact directories: write to a temporary sibling, then rename into place.

A crash (or an exception) while writing leaves the previous artifact or none, never a
half-written one. What a crash does leave is a hidden sibling: ``.NAME.tmp-...`` (the
new artifact, incomplete) or ``.NAME.old-...`` (the previous one, set aside for the
rename). Its name carries the writer's host and pid, ``.NAME.tmp-HHHHHH-PID-XXXXXXXX``,
so that the next writer of NAME (`remove_dead_leftovers`, called by `atomic_dir`)
removes it once that writer is dead, and never while it is still writing.

Every artifact folder (data, graph, embeddings, index) ends the same way: `publish`
writes its ``manifest.json`` and then ``_SUCCESS`` into the temporary sibling, and
`complete_manifest` is the one rule for "this folder is complete": both files there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pinsage.errors import DataError

__all__ = [
    "MANIFEST",
    "SUCCESS",
    "atomic_dir",
    "complete_manifest",
    "current_manifest",
    "file_sha256",
    "publish",
    "read_json",
    "remove_dead_leftovers",
    "remove_dead_leftovers_in",
    "temp_sibling",
    "write_json",
    "write_text",
]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"  # what an artifact folder holds and how it was made
SUCCESS = "_SUCCESS"  # written last: the folder is complete

# A leftover whose writer cannot be checked (written on another host, or named before
# names carried a pid) is removed once untouched this long: no writer pauses a day.
UNCHECKABLE_AGE_S = 24 * 3600
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_LEFTOVER = re.compile(
    r"\.(?P<name>.+)\.(?:tmp|old)-(?:(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-)?[0-9a-f]{8}"
)


def temp_sibling(path: Path, kind: str = "tmp") -> Path:
    """A fresh hidden sibling of ``path`` naming this writer (module docstring).

    ``kind`` is ``tmp`` (the artifact being written) or ``old`` (the one replaced).
    """
    path = Path(path)
    unique = f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return path.with_name(f".{path.name}.{kind}-{unique}")


def _writer_alive(match: re.Match, path: Path) -> bool:
    """Whether the writer that named ``path`` may still be writing it."""
    if match["pid"] is None or match["host"] != _HOST:
        try:
            return time.time() - path.lstat().st_mtime < UNCHECKABLE_AGE_S
        except FileNotFoundError:
            return False  # removed meanwhile
    try:
        os.kill(int(match["pid"]), 0)  # signal 0: existence check only
    except (ProcessLookupError, OverflowError):  # no such process (or pid)
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _remove_dead(folder: Path, name: str | None) -> list[Path]:
    """Remove the dead leftovers in ``folder`` of artifact ``name`` (None: any)."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for path in entries:
        match = _LEFTOVER.fullmatch(path.name)
        if match is None or (name is not None and match["name"] != name):
            continue
        if _writer_alive(match, path):
            continue
        log.info("removing %s, left by a writer that died", path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def remove_dead_leftovers(out: Path) -> list[Path]:
    """Remove the temporary siblings of ``out`` that dead writers left; return them.

    A killed writer cannot clean up after itself, so the next writer of ``out`` does.
    A leftover of a live writer (its pid exists on this host) is kept: removing it
    would break that writer's rename.
    """
    out = Path(out)
    return _remove_dead(out.parent, out.name)


def remove_dead_leftovers_in(folder: Path) -> list[Path]:
    """`remove_dead_leftovers` for every artifact directly in ``folder``.

    For folders whose every entry is ours (a run root, a run's checkpoints), where the
    names of the artifacts a killed writer was replacing are not known in advance.
    """
    return _remove_dead(Path(folder), None)


@contextmanager
def atomic_dir(out: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary sibling of ``out``; rename it to ``out`` on success.

    On an exception the temporary directory is removed and ``out`` is untouched. With
    ``overwrite`` an existing ``out`` is replaced only after the new one is complete.
    What killed writers of ``out`` left is removed first (`remove_dead_leftovers`).

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is false (callers check first
            and turn this into a user-facing message).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_leftovers(out)
    tmp = temp_sibling(out)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(out)  # a failed write() (disk full) names no file
        raise
    if out.exists():
        # Rename the old artifact aside first so that `out` is never missing and never
        # half-written: at every instant it is the old one or the new one.
        old = temp_sibling(out, "old")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` through a temporary sibling and os.replace: never half-written.

    Dead writers' leftovers of ``path`` are removed first (`remove_dead_leftovers`).
    """
    path = Path(path)
    remove_dead_leftovers(path)
    tmp = temp_sibling(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (`write_text`)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> dict:
    """The JSON object `write_json` wrote at ``path``; `DataError` if it is not one.

    JSON runs no code, but a manifest edited by hand or cut short must end in a
    message naming the file, not in a traceback from the first ``.get`` on a list.
    """
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{path} is not valid JSON ({exc}); rewrite it with the command that "
            "wrote it (--overwrite), or restore it."
        ) from exc
    if not isinstance(value, dict):
        raise DataError(
            f"{path} holds a JSON {type(value).__name__}, not an object; rewrite it "
            "with the command that wrote it (--overwrite), or restore it."
        )
    return value


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (files too big to read whole).

    The one checksum of the project: sources in manifests, checkpoints in the
    embeddings' manifest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def publish(folder: Path, manifest: dict) -> None:
    """Write ``folder``'s manifest, then ``_SUCCESS``: the artifact is complete.

    Called last, on the temporary sibling `atomic_dir` yields, so that a folder
    with ``_SUCCESS`` always has the manifest that describes it.
    """
    write_json(Path(folder) / MANIFEST, manifest)
    (Path(folder) / SUCCESS).touch()


def current_manifest(folder: Path, key: dict) -> dict | None:
    """The manifest of ``folder`` when it is complete and was made from ``key``.

    The one "nothing to do" rule of every stage: ``key`` names what the artifact is
    made from (a data folder's parameters, a graph's sources and options, the
    embeddings' checkpoint and graph, the index's embeddings and kind), and the
    folder is current when `complete_manifest` holds each of its items unchanged.
    None otherwise: absent, incomplete, or made from something else.
    """
    manifest = complete_manifest(folder)
    if manifest is None or any(manifest.get(k) != v for k, v in key.items()):
        return None
    return manifest


def complete_manifest(folder: Path) -> dict | None:
    """The manifest of a complete artifact folder; None when it is not complete.

    Complete means `publish` finished: ``_SUCCESS`` and ``manifest.json`` are both
    there. `DataError` naming the file when the manifest is not a JSON object.
    """
    folder = Path(folder)
    if not (folder / SUCCESS).exists() or not (folder / MANIFEST).exists():
        return None
    return read_json(folder / MANIFEST)
