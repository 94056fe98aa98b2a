r"""Import the LightGCN text format (``train.txt`` + ``test.txt``) into a data folder.

One line per user: ``user item item ...``, 0-based integer ids separated by single
spaces (any run of spaces or tabs, and ``\r\n`` line ends, are accepted too); a line
may hold a user and no items. The source's split is kept: ``train.txt`` becomes
``interactions.parquet`` and ``test.txt`` becomes ``test.parquet``, both with int64
``user`` and ``item`` columns in file order.

Parsing is vectorised over the bytes of a file: a whitespace mask gives the token
boundaries, Horner's rule over digit places gives every id, and the line each token
starts on says which tokens are users (the first of their line) and which user an item
belongs to.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from pinsage.data.folder import write_data_folder
from pinsage.data.importers._common import is_up_to_date, read_source, source_digests
from pinsage.errors import DataError

__all__ = ["import_lightgcn"]

log = logging.getLogger(__name__)

_FORMAT_HINT = (
    "LightGCN files hold one line per user: `user item item ...` with 0-based integer "
    "ids separated by single spaces"
)
# Ids longer than this could overflow int64 (2^63 - 1 has 19 digits).
_MAX_ID_DIGITS = 18
_IS_SPACE = np.zeros(256, dtype=bool)  # lookup table: byte -> is whitespace
_IS_SPACE[list(b" \t\r\n")] = True
_IS_DIGIT = np.zeros(256, dtype=bool)
_IS_DIGIT[list(b"0123456789")] = True
_NEWLINE = ord("\n")


def _line_number(data: bytes, pos: int) -> int:
    return data.count(b"\n", 0, pos) + 1


def _token_at(data: bytes, pos: int) -> str:
    """The whitespace-delimited token around byte ``pos`` (for error messages)."""
    start = max(data.rfind(c, 0, pos) for c in (b" ", b"\t", b"\r", b"\n")) + 1
    ends = [
        e for e in (data.find(c, pos) for c in (b" ", b"\t", b"\r", b"\n")) if e >= 0
    ]
    return data[start : min(ends, default=len(data))].decode("utf-8", "replace")


def _token_values(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Decimal value of each token, by Horner's rule over digit places.

    The loop runs over digit places (at most ``_MAX_ID_DIGITS``), each step vectorised
    over all tokens. Shapes: buf (L,) bytes; starts, ends (T,) -> (T,) int64.
    """
    lengths = ends - starts
    values = np.zeros(len(starts), dtype=np.int64)
    last = max(len(buf) - 1, 0)
    for place in range(int(lengths.max(initial=0))):
        digit = buf[np.minimum(starts + place, last)].astype(np.int64) - ord("0")
        values = np.where(lengths > place, values * 10 + digit, values)
    return values


def _parse_lightgcn(path: Path, data: bytes) -> pa.Table:
    """Parse the bytes of one LightGCN file into a ``user``, ``item`` int64 table.

    Raises:
        DataError: a token is not a non-negative integer id (the message names the
            file, the line and the token).
    """
    buf = np.frombuffer(data, dtype=np.uint8)  # (L,) bytes
    space = _IS_SPACE[buf]
    bad = ~space & ~_IS_DIGIT[buf]
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}, line {_line_number(data, pos)}: token {_token_at(data, pos)!r} "
            f"is not a non-negative integer id; {_FORMAT_HINT}."
        )
    padded = np.ones(len(buf) + 2, dtype=bool)  # whitespace on both sides of the file
    padded[1:-1] = space
    starts = np.flatnonzero(padded[:-2] & ~space)  # (T,) first byte of each token
    ends = np.flatnonzero(~space & padded[2:]) + 1  # (T,) one past its last byte
    if (too_long := ends - starts > _MAX_ID_DIGITS).any():
        pos = int(starts[np.flatnonzero(too_long)[0]])
        raise DataError(
            f"{path}, line {_line_number(data, pos)}: id {_token_at(data, pos)!r} "
            f"has more than {_MAX_ID_DIGITS} digits and would overflow int64; "
            f"{_FORMAT_HINT}."
        )
    values = _token_values(buf, starts, ends)
    line = np.searchsorted(np.flatnonzero(buf == _NEWLINE), starts)  # (T,) line index
    is_user = np.diff(line, prepend=-1) != 0  # (T,) first token of its line
    owner = np.cumsum(is_user) - 1  # (T,) index of the line's user among users
    users = values[is_user]
    return pa.table(
        {
            "user": pa.array(users[owner[~is_user]]),
            "item": pa.array(values[~is_user]),
        }
    )


def import_lightgcn(src: Path, out: Path, *, overwrite: bool = False) -> Path:
    """Import a LightGCN ``train.txt``/``test.txt`` pair into the data folder ``out``.

    Args:
        src: Directory holding ``train.txt`` and ``test.txt``.
        out: Data folder to write (see DESIGN.md "Files").
        overwrite: Rewrite ``out`` even when it already holds this import.

    Returns:
        ``out``. Nothing is written when ``out`` is complete and was imported from
        files with the same contents.

    Raises:
        DataError: a file is missing or malformed, or ``train.txt`` holds no pair.
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DataError(
            f"{src} is not a directory; pass the folder that holds train.txt and "
            "test.txt."
        )
    files = {name: src / name for name in ("train.txt", "test.txt")}
    raw = {name: read_source(path) for name, path in files.items()}
    params = {"source": "lightgcn", "files": source_digests(raw)}
    if is_up_to_date(out, src, params, overwrite=overwrite):
        log.info("%s already holds this import of %s; nothing to do", out, src)
        return out
    t0 = time.perf_counter()
    train = _parse_lightgcn(files["train.txt"], raw["train.txt"])
    test = _parse_lightgcn(files["test.txt"], raw["test.txt"])
    if train.num_rows == 0:
        raise DataError(
            f"{files['train.txt']}: holds no (user, item) pair; {_FORMAT_HINT}."
        )
    if test.num_rows == 0:
        log.warning(
            "%s holds no (user, item) pair: the test split is empty", files["test.txt"]
        )
    write_data_folder(
        out, {"interactions": train, "test": test}, params, overwrite=True
    )
    log.info("imported %s in %.2fs", src, time.perf_counter() - t0)
    return out
