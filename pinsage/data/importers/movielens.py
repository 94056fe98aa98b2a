"""Import MovieLens ratings and movies into a data folder.

The layout is detected from the files in the source folder:

- ml-100k: ``u.data`` (``user<TAB>item<TAB>rating<TAB>timestamp``) and ``u.item``
  (``|``-separated: id, title, release date, video release date, IMDb URL, 19 genre
  flags).
- ml-1m (and ml-10m): ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``) and
  ``movies.dat`` (``MovieID::Title::Genres``, genres ``|``-separated).
- ml-latest, ml-latest-small, ml-20m, ml-25m: ``ratings.csv``
  (``userId,movieId,rating,timestamp``) and ``movies.csv`` (``movieId,title,genres``,
  titles quoted when they hold commas).

MovieLens text is latin-1 in the older sets and UTF-8 in the newer ones: bytes that are
valid UTF-8 are read as UTF-8, anything else as latin-1 (latin-1 accents are almost
never valid UTF-8).

Output: ``interactions.parquet`` and ``test.parquet`` (``user``, ``item`` int64,
``weight`` float32 = rating, ``timestamp`` int64), split per user in time: the last
``test_fraction`` share (floor) of each user's ratings by timestamp, ties broken in a
seeded random order, is held out. Ratings are explicit feedback: with ``min_rating``
only those at or above it are kept as positives (4 of 5 stars is the usual choice);
the others say the user did *not* like the movie. ``items.parquet``: ``item`` int64,
``title`` string (a text feature), ``genres`` list<string> (a multi-valued
categorical) and ``year`` float32 (the release year from the title's trailing "(1995)"
or the release date; null when absent).

Everything is vectorised (pyarrow.csv, pyarrow.compute, numpy): no Python loop runs
over ratings; 25M ratings import in about 20 s on two cores, parsing and sorting most.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from pinsage.data.cold import with_cold_items
from pinsage.data.folder import write_data_folder
from pinsage.data.importers._common import is_up_to_date, read_source, source_digests
from pinsage.errors import ConfigError, DataError

__all__ = ["import_movielens", "split_temporal"]

log = logging.getLogger(__name__)

# Layout -> (ratings file, movies file); the ratings file identifies the layout.
_LAYOUTS = {
    "ml-100k": ("u.data", "u.item"),
    "ml-1m": ("ratings.dat", "movies.dat"),
    "ml-latest": ("ratings.csv", "movies.csv"),
}
# ml-100k's genre flag columns, in file order.
_GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
# Genre values that mean "no genre" (ml-100k's `unknown` flag is dropped the same way).
_NO_GENRES = ["(no genres listed)", ""]
# pyarrow.csv splits on one byte: `::` becomes the ASCII unit separator (never in text).
_UNIT_SEP = "\x1f"
_ID = r"-?\d{1,18}"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TITLE_YEAR = r"\((?P<year>\d{4})(?:[-–]\d{4})?\)\s*$"  # "(1995)", "(1975–1979)"
_DATE_YEAR = r"(?P<year>\d{4})\s*$"  # "01-Jan-1995"


@dataclass(frozen=True)
class _Format:
    """How one MovieLens file is laid out."""

    delimiter: str  # "::" is rewritten to one byte for pyarrow.csv
    columns: tuple[str, ...]  # every column of a line, in order
    types: dict[str, pa.DataType]  # the columns to keep, with their types
    line: str  # regex every data line matches: names the first bad line on errors
    shape: str  # what a line looks like, for error messages
    header: str | None = None  # the expected first line; None when there is none
    quoted: bool = False  # fields may be "double-quoted" (CSV)


def _rating_format(sep: str, shape: str, header: str | None = None) -> _Format:
    types = {
        "user": pa.int64(),
        "item": pa.int64(),
        "weight": pa.float32(),
        "timestamp": pa.int64(),
    }
    line = rf"^{_ID}{sep}{_ID}{sep}{_NUMBER}{sep}{_ID}\r?$"
    return _Format(sep, tuple(types), types, line, shape, header)


_RATINGS = {
    "ml-100k": _rating_format("\t", "user<TAB>item<TAB>rating<TAB>timestamp"),
    "ml-1m": _rating_format("::", "UserID::MovieID::Rating::Timestamp"),
    "ml-latest": _rating_format(
        ",", "userId,movieId,rating,timestamp", header="userId,movieId,rating,timestamp"
    ),
}
_U_ITEM = _Format(
    "|",
    ("item", "title", "release_date", "video_release_date", "url", *_GENRES_100K),
    {"item": pa.int64(), "title": pa.string(), "release_date": pa.string()}
    | {g: pa.int8() for g in _GENRES_100K},
    rf"^{_ID}\|[^|]*\|[^|]*\|[^|]*\|[^|]*(?:\|[01]){{19}}\r?$",
    "movie id|title|release date|video release date|IMDb URL|19 genre flags (0/1)",
)
_MOVIES_CSV = _Format(
    ",",
    ("item", "title", "genres"),
    {"item": pa.int64(), "title": pa.string(), "genres": pa.string()},
    rf'^{_ID},(?:"(?:[^"]|"")*"|[^",]*),[^,"]*\r?$',
    'movieId,title,genres (titles with commas in "double quotes")',
    header="movieId,title,genres",
    quoted=True,
)
# movies.dat is parsed by one regex, not pyarrow.csv: a greedy title up to the last
# `::` keeps a title that ends in ':' whole.
_MOVIES_DAT = rf"^(?P<item>{_ID})::(?P<title>.*)::(?P<genres>[^:]*?)\r?$"


def _to_utf8(raw: bytes) -> bytes:
    """The text as UTF-8 bytes: kept when valid UTF-8, else decoded as latin-1."""
    try:
        raw.decode("utf-8")
        return raw
    except UnicodeDecodeError:
        return raw.decode("latin-1").encode("utf-8")


def _lines(data: bytes) -> pa.Array:
    """The file's physical lines as a binary array (line n + 1 is element n)."""
    return pc.split_pattern(pa.array([data], pa.large_binary()), b"\n").flatten()


def _first_bad_line(data: bytes, pattern: str, skip: int) -> tuple[int, str] | None:
    """1-based number and text of the first line past ``skip`` not matching ``pattern``.

    Blank lines pass, as pyarrow.csv skips them too. Only runs once parsing failed.
    """
    lines = _lines(data)
    good = pc.match_substring_regex(lines, rf"(?:{pattern})|^\r?$")
    good = np.array(good.to_numpy(zero_copy_only=False))  # writable copy
    good[:skip] = True
    bad = np.flatnonzero(~good)
    if len(bad) == 0:
        return None
    n = int(bad[0])
    return n + 1, lines[n].as_py().decode("utf-8", "replace").rstrip("\r")


def _format_error(path: Path, data: bytes, fmt: _Format, exc: Exception) -> DataError:
    where = _first_bad_line(data, fmt.line, 1 if fmt.header else 0)
    if where is None:  # pyarrow objected to something the line regex accepts
        return DataError(f"{path}: cannot be parsed as `{fmt.shape}` ({exc}).")
    line, text = where
    detail = str(exc).replace(_UNIT_SEP, "::")  # pyarrow saw `::` as the unit separator
    return DataError(
        f"{path}, line {line}: {text!r} is not a `{fmt.shape}` line ({detail}); fix "
        "or remove that line."
    )


def _check_header(path: Path, data: bytes, fmt: _Format) -> None:
    first = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
    if fmt.header is not None and first != fmt.header:
        raise DataError(
            f"{path}, line 1: header is {first!r}, expected {fmt.header!r}; is this a "
            "MovieLens file? Pass the unpacked MovieLens folder unchanged."
        )


def _read_delimited(path: Path, data: bytes, fmt: _Format) -> pa.Table:
    """Parse a delimited file with pyarrow.csv, keeping ``fmt.types`` columns.

    Raises:
        DataError: the header or a line breaks ``fmt`` (names the first bad line).
    """
    _check_header(path, data, fmt)
    delimiter, parsed = fmt.delimiter, data
    if delimiter == "::":
        delimiter, parsed = _UNIT_SEP, data.replace(b"::", _UNIT_SEP.encode())
    try:
        return pcsv.read_csv(
            pa.BufferReader(parsed),
            read_options=pcsv.ReadOptions(
                column_names=list(fmt.columns), skip_rows=1 if fmt.header else 0
            ),
            parse_options=pcsv.ParseOptions(
                delimiter=delimiter, quote_char='"' if fmt.quoted else False
            ),
            # No null values: an empty id or rating is an error, not a silent null.
            convert_options=pcsv.ConvertOptions(
                column_types=fmt.types, include_columns=list(fmt.types), null_values=[]
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _format_error(path, data, fmt, exc) from exc


def _read_ratings(path: Path, data: bytes, fmt: _Format) -> pa.Table:
    """Read a ratings file into ``user``, ``item``, ``weight``, ``timestamp``."""
    table = _read_delimited(path, data, fmt)
    if table.num_rows == 0:
        raise DataError(f"{path}: holds no ratings; expected `{fmt.shape}` lines.")
    weight = table.column("weight").to_numpy()
    if (bad := ~(weight > 0)).any():  # NaN included: the graph needs weights > 0
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: rating {weight[row]} in data row {row + 1} is not a positive "
            "number; ratings become edge weights, which must be > 0: fix or drop it."
        )
    return table


def _genre_lists(genres: pa.Array) -> pa.Array:
    """Split "A|B" genre strings into lists, dropping the "no genre" markers."""
    lists = pc.split_pattern(genres, "|")
    values = pc.list_flatten(lists)
    keep = pc.invert(pc.is_in(values, pa.array(_NO_GENRES)))
    keep = keep.to_numpy(zero_copy_only=False)
    owner = pc.list_parent_indices(lists).to_numpy()[keep]
    counts = np.bincount(owner, minlength=len(genres))
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values.filter(pa.array(keep)))


def _year(title: pa.Array, release_date: pa.Array | None = None) -> pa.Array:
    """Release year (float32) from the title's "(1995)", else the release date."""
    year = pc.struct_field(pc.extract_regex(title, _TITLE_YEAR), "year")
    if release_date is not None:
        dated = pc.struct_field(pc.extract_regex(release_date, _DATE_YEAR), "year")
        year = pc.coalesce(year, dated)
    return year.cast(pa.float32())


def _items_table(
    path: Path, item: pa.Array, title: pa.Array, genres: pa.Array, year: pa.Array
) -> pa.Table:
    """Assemble ``items.parquet``, sorted by item, rejecting repeated ids."""
    if pc.count_distinct(item).as_py() != len(item):
        counts = pc.value_counts(item)
        dup = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"]
        raise DataError(
            f"{path}: movie id {dup.as_py()} appears more than once; each movie needs "
            "exactly one line."
        )
    title = pc.utf8_trim_whitespace(title)
    table = pa.table({"item": item, "title": title, "genres": genres, "year": year})
    return table.take(pc.sort_indices(item))


def _read_u_item(path: Path, raw: bytes) -> pa.Table:
    """ml-100k ``u.item``: 19 genre flag columns become a genre list."""
    table = _read_delimited(path, _to_utf8(raw), _U_ITEM)
    # `unknown` (flag 0) means "no genre", like "(no genres listed)" in later sets.
    flags = np.column_stack([table.column(g).to_numpy() for g in _GENRES_100K[1:]])
    rows, cols = np.nonzero(flags)  # row-major: genres keep the file's column order
    offsets = np.r_[0, np.cumsum(np.bincount(rows, minlength=len(flags)))]
    genres = pa.ListArray.from_arrays(
        pa.array(offsets.astype(np.int32)), pa.array(np.array(_GENRES_100K[1:])[cols])
    )
    title = table.column("title").combine_chunks()
    release = table.column("release_date").combine_chunks()
    item = table.column("item").combine_chunks()
    return _items_table(path, item, title, genres, _year(title, release))


def _read_movies_dat(path: Path, raw: bytes) -> pa.Table:
    """ml-1m ``movies.dat``: ``MovieID::Title::Genres``, parsed by one regex."""
    data = _to_utf8(raw)
    lines = _lines(data).cast(pa.large_string())
    fields = pc.extract_regex(lines, _MOVIES_DAT)
    blank = pc.match_substring_regex(lines, r"^\r?$").to_numpy(zero_copy_only=False)
    matched = pc.is_valid(fields).to_numpy(zero_copy_only=False)
    if (bad := ~(matched | blank)).any():
        n = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}, line {n + 1}: {lines[n].as_py()!r} is not a "
            "`MovieID::Title::Genres` line; fix or remove that line."
        )
    fields = fields.filter(pa.array(matched))
    title = pc.struct_field(fields, "title").cast(pa.string())
    item = pc.struct_field(fields, "item").cast(pa.int64())
    genres = _genre_lists(pc.struct_field(fields, "genres").cast(pa.string()))
    return _items_table(path, item, title, genres, _year(title))


def _read_movies_csv(path: Path, raw: bytes) -> pa.Table:
    """ml-latest / ml-25m ``movies.csv``: ``movieId,title,genres`` with a header."""
    table = _read_delimited(path, _to_utf8(raw), _MOVIES_CSV)
    title = table.column("title").combine_chunks()
    genres = _genre_lists(table.column("genres").combine_chunks())
    item = table.column("item").combine_chunks()
    return _items_table(path, item, title, genres, _year(title))


_READ_MOVIES = {
    "ml-100k": _read_u_item,
    "ml-1m": _read_movies_dat,
    "ml-latest": _read_movies_csv,
}


def split_temporal(
    ratings: pa.Table, test_fraction: float, seed: int = 0
) -> tuple[pa.Table, pa.Table]:
    """Hold out the last ``test_fraction`` (floor) of each user's rows by time.

    Rows are ordered by (user, timestamp, r) with r a random permutation of the rows
    (in input order) drawn from ``seed``: ties in time (many ratings share a second)
    are broken at random, not by item id, which would hold out the higher ids of a
    tie, and the split is still deterministic. Both returned tables keep that order.

    Returns:
        ``(train, test)``.
    """
    ratings = ratings.combine_chunks()  # takes from one chunk are ~2x faster
    tie = np.random.default_rng(seed).permutation(ratings.num_rows)  # (R,)
    user = ratings.column("user").to_numpy()
    stamp = ratings.column("timestamp").to_numpy()
    order = np.lexsort((tie, stamp, user))  # (R,) last key sorts first
    user = user[order]
    starts = np.flatnonzero(np.diff(user, prepend=user[:1] - 1) != 0)  # (U,)
    counts = np.diff(np.r_[starts, len(user)])
    num_test = np.floor(counts * test_fraction).astype(np.int64)
    first_test = np.repeat(starts + counts - num_test, counts)  # (R,)
    is_test = np.arange(len(user)) >= first_test
    # One take per output instead of sorting the whole table and filtering it twice.
    return ratings.take(order[~is_test]), ratings.take(order[is_test])


def _check_options(test_fraction: float, min_rating: float | None) -> None:
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"--test-fraction must be in [0, 1), got {test_fraction}.")
    if min_rating is not None and not min_rating > 0:
        raise ConfigError(
            f"--min-rating must be a positive number (e.g. 4), got {min_rating}."
        )


def _positives(path: Path, ratings: pa.Table, min_rating: float) -> pa.Table:
    """The ratings at or above ``min_rating``; `DataError` naming ``path`` if none."""
    kept = ratings.filter(pc.greater_equal(ratings.column("weight"), min_rating))
    if kept.num_rows == 0:
        highest = pc.max(ratings.column("weight")).as_py()
        raise DataError(
            f"{path}: no rating is >= --min-rating {min_rating:g} (the highest is "
            f"{highest:g}); lower --min-rating."
        )
    log.info(
        "%s: kept %d of %d ratings >= %g as positives",
        path,
        kept.num_rows,
        ratings.num_rows,
        min_rating,
    )
    return kept


def _detect_layout(src: Path) -> str:
    found = [
        name for name, (ratings, _) in _LAYOUTS.items() if (src / ratings).is_file()
    ]
    expected = ", ".join(ratings for ratings, _ in _LAYOUTS.values())
    if not found:
        raise DataError(
            f"{src}: no MovieLens ratings file ({expected}); pass the unpacked "
            "MovieLens folder, e.g. ml-1m/."
        )
    if len(found) > 1:
        raise DataError(
            f"{src}: holds the ratings files of several layouts ({found}); keep one "
            "MovieLens set per folder."
        )
    return found[0]


def import_movielens(
    src: Path,
    out: Path,
    *,
    test_fraction: float = 0.2,
    min_rating: float | None = None,
    rating_weights: bool = True,
    cold_items: float = 0.0,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Import a MovieLens folder (ml-100k, ml-1m, ml-latest, ml-25m...) into ``out``.

    Args:
        src: The unpacked MovieLens folder; its layout is detected from its files.
        out: Data folder to write (see DESIGN.md "Files").
        test_fraction: Share of each user's latest ratings held out in
            ``test.parquet``, in [0, 1).
        min_rating: Keep only ratings at or above it (the positives); ``None``
            keeps every rating.
        rating_weights: Keep the rating as the interaction's weight (default;
            walks then follow well-rated movies more often); False: every kept
            rating weighs 1 (no ``weight`` column).
        cold_items: Share of the items made cold (`pinsage.data.cold`): the ones
            first rated last lose their training ratings; 0 (default): none.
        seed: Seed of the random order that breaks timestamp ties in the split
            (and in the choice of cold items).
        overwrite: Rewrite ``out`` even when it already holds this import.

    Returns:
        ``out``. Nothing is written when ``out`` is complete and was imported from
        files with the same contents and the same parameters.

    Raises:
        ConfigError: ``test_fraction`` is outside [0, 1), or ``min_rating`` is not
            a positive number.
        DataError: a file is missing or malformed (the message names it and the line).
    """
    src, out = Path(src), Path(out)
    _check_options(test_fraction, min_rating)
    if not src.is_dir():
        raise DataError(
            f"{src} is not a directory; pass the unpacked MovieLens folder."
        )
    layout = _detect_layout(src)
    raw = {name: read_source(src / name) for name in _LAYOUTS[layout]}
    params = {
        "source": "movielens",
        "layout": layout,
        "test_fraction": test_fraction,
        "min_rating": min_rating,
        "seed": seed,
        "files": source_digests(raw),
    } | ({"cold_items": cold_items} if cold_items else {})
    if not rating_weights:
        params["rating_weights"] = False
    if is_up_to_date(out, src, params, overwrite=overwrite):
        log.info("%s already holds this import of %s; nothing to do", out, src)
        return out
    t0 = time.perf_counter()
    ratings, items = _read_tables(src, layout, raw, min_rating, rating_weights)
    train, test = split_temporal(ratings, test_fraction, seed)
    tables = {"interactions": train, "test": test, "items": items}
    if cold_items:
        tables, _ = with_cold_items(tables, cold_items, seed, str(src))
    write_data_folder(out, tables, params, overwrite=True)
    log.info("imported %s (%s) in %.1fs", src, layout, time.perf_counter() - t0)
    return out


def _read_tables(
    src: Path,
    layout: str,
    raw: dict[str, bytes],
    min_rating: float | None,
    rating_weights: bool,
) -> tuple[pa.Table, pa.Table]:
    """The ratings (the kept ones, weighted or not) and the movies of a layout.

    ``raw``'s bytes are popped as they are parsed: ml-25m's ratings are 650 MB.
    """
    ratings_name, movies_name = _LAYOUTS[layout]
    ratings = _read_ratings(src / ratings_name, raw.pop(ratings_name), _RATINGS[layout])
    if min_rating is not None:
        ratings = _positives(src / ratings_name, ratings, min_rating)
    if not rating_weights:
        ratings = ratings.drop_columns(["weight"])
    return ratings, _READ_MOVIES[layout](src / movies_name, raw.pop(movies_name))
