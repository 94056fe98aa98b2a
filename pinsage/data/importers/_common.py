"""Helpers every importer shares: reading sources, fingerprints, skip-if-complete."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pinsage.atomic import complete_manifest
from pinsage.data.folder import is_current
from pinsage.errors import DataError

__all__ = ["is_up_to_date", "read_source", "source_digests"]


def read_source(path: Path) -> bytes:
    """Read a whole source file; a missing or unreadable one raises `DataError`."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise DataError(f"{path} {what}; check the source folder and the --format.")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"{path} cannot be read ({exc}); check its permissions."
        ) from exc


def source_digests(sources: dict[str, bytes]) -> dict[str, str]:
    """SHA-256 of each source file's bytes, keyed by file name (recorded in params)."""
    return {name: hashlib.sha256(data).hexdigest() for name, data in sources.items()}


def is_up_to_date(out: Path, src: Path, params: dict, *, overwrite: bool) -> bool:
    """True when ``out`` is a complete data folder written with ``params``.

    Raises `DataError` when writing ``out`` would destroy something that is not an
    older data folder: the source itself, or a non-empty directory of other files
    (the latter only without ``overwrite``).
    """
    out, src = Path(out), Path(src)
    if out.resolve() == src.resolve() or out.resolve() in src.resolve().parents:
        raise DataError(
            f"--out {out} is or contains the source folder {src}; writing it would "
            "replace the source: choose another --out."
        )
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; choose a directory path for --out.")
    if (
        complete_manifest(out) is None
        and out.exists()
        and any(out.iterdir())
        and not overwrite
    ):
        raise DataError(
            f"--out {out} exists and is not a data folder; pass --overwrite to replace "
            "it or choose another --out."
        )
    return is_current(out, params) and not overwrite
