"""Text features: tokenising and hashing tokens to embedding rows.

Text tokens are hashed, not looked up in a vocabulary: lower-cased text is split on
runs of characters that are neither letters nor digits (Unicode classes, pyarrow
``split_pattern_regex``), each distinct token's UTF-8 bytes are hashed with 64-bit
FNV-1a (vectorised over tokens with numpy) and reduced modulo ``text_buckets``. A
token's bucket depends on the token alone, never on the corpus, so a rebuilt graph or
a new item maps the same word to the same embedding row; collisions are the price
(the hashing trick), and ``text_buckets`` sets it. A run sizes it to its graph's
vocabulary (`count_distinct_tokens`, `pinsage.nn.projector.text_buckets_for`) and
records it in its config, so inference hashes with the count training used.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["TOKEN_SPLIT_PATTERN", "count_distinct_tokens", "fnv1a_64", "tokenize"]

# Split text on runs of anything that is not a letter or a digit (any script).
TOKEN_SPLIT_PATTERN = r"[^\p{L}\p{N}]+"
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)  # 64-bit FNV-1a offset basis
_FNV_PRIME = np.uint64(0x100000001B3)  # 64-bit FNV prime


def fnv1a_64(strings: pa.Array) -> np.ndarray:
    """64-bit FNV-1a hash of each string's UTF-8 bytes (nulls hash as empty).

    Vectorised over strings: the loop runs over byte positions (the longest string's
    length), each step updating the strings still that long, sorted to a prefix.
    Shapes: (S,) strings -> (S,) uint64.
    """
    arr = strings.cast(pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) == 0:
        return np.empty(0, dtype=np.uint64)
    _, offset_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offset_buf, dtype=np.int64)[
        arr.offset : arr.offset + len(arr) + 1
    ]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8)
        if data_buf is not None
        else np.empty(0, dtype=np.uint8)
    )
    lengths = np.diff(offsets)
    order = np.argsort(-lengths, kind="stable")  # longest first: live ones are a prefix
    starts, lengths = offsets[:-1][order], lengths[order]
    h = np.full(len(arr), _FNV_OFFSET, dtype=np.uint64)
    for j in range(int(lengths[0])):
        live = int(np.searchsorted(-lengths, -j, side="left"))  # count length > j
        h[:live] ^= data[starts[:live] + j].astype(np.uint64)
        h[:live] *= _FNV_PRIME  # wraps modulo 2**64, as FNV-1a wants
    out = np.empty_like(h)
    out[order] = h
    return out


def _row_tokens(
    text: pa.Array | pa.ChunkedArray, max_tokens: int
) -> tuple[pa.Array, np.ndarray]:
    """Each row's first ``max_tokens`` tokens, flattened, and the row of each.

    Shapes: text (N,) strings -> (tokens (M,) strings, row (M,) int64, non-decreasing).
    """
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    num_rows = len(text)
    lists = pc.split_pattern_regex(
        pc.utf8_lower(pc.fill_null(text.cast(pa.large_string()), "")),
        TOKEN_SPLIT_PATTERN,
    )
    row = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    tokens = pc.list_flatten(lists)
    nonempty = pc.greater(pc.binary_length(tokens), 0)
    tokens, row = tokens.filter(nonempty), row[nonempty.to_numpy(zero_copy_only=False)]
    count = np.bincount(row, minlength=num_rows)  # rows are grouped, in order
    rank = np.arange(len(row)) - (np.cumsum(count) - count)[row]  # position in row
    keep = rank < max_tokens
    return tokens.filter(pa.array(keep)), row[keep]


def count_distinct_tokens(text: pa.Array | pa.ChunkedArray, max_tokens: int) -> int:
    """How many distinct tokens `tokenize` would hash (before any collision)."""
    tokens, _ = _row_tokens(text, max_tokens)
    return len(pc.unique(tokens))


def tokenize(
    text: pa.Array | pa.ChunkedArray, num_buckets: int, max_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hashed token ids of each row's first ``max_tokens`` tokens (module docstring).

    Shapes: text (N,) strings -> (ids (M,) int64 in [0, num_buckets), offsets (N+1,)
    int64 CSR: row i's tokens are ``ids[offsets[i]:offsets[i+1]]``).
    """
    num_rows = len(text)
    tokens, row = _row_tokens(text, max_tokens)
    encoded = pc.dictionary_encode(tokens)  # hash each distinct token once
    bucket = (fnv1a_64(encoded.dictionary) % np.uint64(num_buckets)).astype(np.int64)
    ids = bucket[encoded.indices.to_numpy(zero_copy_only=False)]
    offsets = np.zeros(num_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=num_rows), out=offsets[1:])
    return ids, offsets
