"""MovieLens-format files (ml-latest layout) with genre tastes, for cold-start checks.

No MovieLens copy ships with the project, so `cold_start.py --dataset movielens-like`
generates the files the MovieLens importer reads: ``movies.csv`` (title with
genre-typed words and a year, ``|``-separated genres) and ``ratings.csv`` (1-5 stars,
timestamps). Each user likes a few genres (Dirichlet tastes) and rates movies of a
genre drawn from them, popular ones more often, any time after the movie's release;
movies of a liked genre get 4-5 stars, others 1-4. Late releases are first rated
late, so `data import --cold-items` holds out the newest movies, as a live catalogue
would have them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

GENRES = (
    "Action Adventure Animation Comedy Crime Documentary Drama Fantasy Horror "
    "Musical Mystery Romance Sci-Fi Thriller War Western"
).split()
WORDS_PER_GENRE = 6  # title words typical of a genre
FILLER = "the a of and night day return last story man".split()


def _movies(rng: np.random.Generator, count: int) -> tuple[list, np.ndarray, list]:
    """(genre index lists, release times in [0, 1), titles)."""
    genres = [
        sorted(rng.choice(len(GENRES), rng.integers(1, 4), replace=False).tolist())
        for _ in range(count)
    ]
    release = np.sort(rng.random(count)) ** 0.5  # more movies late, as catalogues grow
    titles = []
    for gs, t in zip(genres, release, strict=True):
        words = [f"{GENRES[g].lower()}{rng.integers(WORDS_PER_GENRE)}" for g in gs]
        words += rng.choice(FILLER, 2).tolist()
        titles.append(" ".join(rng.permutation(words)) + f" ({1990 + int(30 * t)})")
    return genres, release, titles


def write_movielens_like(
    out: Path,
    *,
    movies: int = 3000,
    users: int = 2000,
    ratings: int = 150_000,
    seed: int = 0,
) -> Path:
    """Write ``out/movies.csv`` and ``out/ratings.csv``; return ``out``."""
    rng = np.random.default_rng(seed)
    genres, release, titles = _movies(rng, movies)
    by_genre = [
        [m for m in range(movies) if g in genres[m]] for g in range(len(GENRES))
    ]
    popularity = rng.zipf(1.6, movies).clip(max=1000).astype(float)
    taste = rng.dirichlet(np.full(len(GENRES), 0.2), users)  # (U, G)
    liked = np.argsort(-taste, axis=1)[:, :2]  # each user's two favourite genres
    activity = rng.zipf(1.5, users).clip(max=500).astype(float)
    rows = []
    for user in rng.choice(users, ratings, p=activity / activity.sum()):
        pool = by_genre[rng.choice(len(GENRES), p=taste[user])]
        if not pool:
            continue
        weights = popularity[pool]
        movie = pool[rng.choice(len(pool), p=weights / weights.sum())]
        likes = bool(set(genres[movie]) & set(liked[user].tolist()))
        stars = int(rng.integers(4, 6)) if likes else int(rng.integers(1, 5))
        when = release[movie] + (1 - release[movie]) * rng.random()
        rows.append((user + 1, movie + 1, stars, 1_000_000_000 + int(when * 3e8)))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "movies.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["movieId", "title", "genres"])
        for m in range(movies):
            w.writerow([m + 1, titles[m], "|".join(GENRES[g] for g in genres[m])])
    with open(out / "ratings.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["userId", "movieId", "rating", "timestamp"])
        w.writerows(rows)
    return out
