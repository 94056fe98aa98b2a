"""Tiny MovieLens folders in the three published layouts (ml-100k, ml-1m, latest),
written from one list of ratings and movies so the importer tests can compute
what each import must give."""

from __future__ import annotations

import csv
from pathlib import Path

# (user, item, rating, timestamp): user 1 has a timestamp tie (broken at random),
# user 3 a single rating, user 4 ratings out of time order in the file; a half star.
RATINGS = [
    (1, 10, 4.0, 100), (1, 20, 3.0, 100), (1, 30, 5.0, 90), (1, 40, 2.0, 120),
    (1, 50, 1.0, 110), (2, 10, 5.0, 300), (2, 30, 4.0, 200), (2, 40, 3.5, 250),
    (3, 20, 2.0, 50), (4, 50, 4.0, 70), (4, 20, 5.0, 60), (4, 10, 3.0, 80),
    (4, 40, 1.0, 65), (4, 30, 2.0, 75),
]  # fmt: skip
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
# (item, title, genres, release date (ml-100k only), year from the title)
MOVIES = [
    (10, "Toy Story (1995)", ["Animation", "Children's", "Comedy"], "1-Jan-1995", 1995),
    (20, "Misérables, Les (1995)", ["Drama", "War"], "01-Jan-1995", 1995),
    (30, "Heat (1995)", ["Action", "Crime", "Thriller"], "01-Jan-1995", 1995),
    (40, "Untitled", [], "05-Oct-1996", None),
    (50, 'The "Quoted" Film (2001)', ["Comedy"], "", 2001),
    (60, "Unrated, ends in a colon:", ["Drama"], "", None),
]  # fmt: skip


def _write_ml_100k(src: Path) -> None:
    rows = [f"{u}\t{i}\t{r:g}\t{t}\n" for u, i, r, t in RATINGS]
    (src / "u.data").write_text("".join(rows))
    lines = []
    for item, title, genres, date, _ in MOVIES:
        # `unknown` is set exactly when no other genre is, as in ml-100k.
        flags = [g in genres or (g == "unknown" and not genres) for g in GENRES_100K]
        flag_text = "|".join(str(int(f)) for f in flags)
        lines.append(f"{item}|{title}|{date}||http://imdb/{item}|{flag_text}\n")
    (src / "u.item").write_bytes("".join(lines).encode("latin-1"))


def _genre_text(genres: list[str]) -> str:
    return "|".join(genres) or "(no genres listed)"


def _write_ml_1m(src: Path) -> None:
    rows = [f"{u}::{i}::{r:g}::{t}\n" for u, i, r, t in RATINGS]
    (src / "ratings.dat").write_text("".join(rows))
    lines = [f"{i}::{title}::{_genre_text(gs)}\n" for i, title, gs, _, _ in MOVIES]
    (src / "movies.dat").write_bytes("".join(lines).encode("latin-1"))


def _write_ml_latest(src: Path) -> None:
    with open(src / "ratings.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["userId", "movieId", "rating", "timestamp"])
        w.writerows((u, i, f"{r:g}", t) for u, i, r, t in RATINGS)
    with open(src / "movies.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")  # quotes titles holding commas or quotes
        w.writerow(["movieId", "title", "genres"])
        w.writerows((i, title, _genre_text(gs)) for i, title, gs, _, _ in MOVIES)


WRITERS = {
    "ml-100k": _write_ml_100k,
    "ml-1m": _write_ml_1m,
    "ml-latest": _write_ml_latest,
}


def write_movielens(tmp_path: Path, layout: str) -> Path:
    """The tiny MovieLens files of ``layout`` in a new folder under ``tmp_path``."""
    src = tmp_path / layout
    src.mkdir()
    WRITERS[layout](src)
    return src
