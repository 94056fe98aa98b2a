"""Atomic artifact directories: write to a temporary sibling, then rename into place.

A crash (or an exception) while writing leaves the previous artifact or none, never a
half-written one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_dir", "write_json", "write_text"]


@contextmanager
def atomic_dir(out: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary sibling of ``out``; rename it to ``out`` on success.

    On an exception the temporary directory is removed and ``out`` is untouched. With
    ``overwrite`` an existing ``out`` is replaced only after the new one is complete.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is false (callers check first
            and turn this into a user-facing message).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        # Rename the old artifact aside first so that `out` is never missing and never
        # half-written: at every instant it is the old one or the new one.
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` through a temporary sibling and os.replace: never half-written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (`write_text`)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
