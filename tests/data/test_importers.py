"""Importers: LightGCN text and the MovieLens layouts, on small generated files."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pinsage.data.importers import import_lightgcn, import_movielens
from pinsage.errors import ConfigError, DataError
from pinsage.graph import build_graph
from tests.movielens_files import MOVIES, RATINGS, WRITERS, write_movielens

# ---------------------------------------------------------------- LightGCN

# User 1 has no train items and user 2 no test items: both lines exist in real files.
TRAIN_TXT = "0 10 11 12\n1\n2 11 13\n3 10\n"
TEST_TXT = "0 13\n1 10 12\n2\n3 11"  # no final newline


def _write_lightgcn(src: Path, train: str = TRAIN_TXT, test: str = TEST_TXT) -> Path:
    src.mkdir(exist_ok=True)
    (src / "train.txt").write_text(train)
    (src / "test.txt").write_text(test)
    return src


def _pairs(path: Path) -> list[tuple]:
    table = pq.read_table(path)
    return list(zip(*table.to_pydict().values(), strict=True))


def test_lightgcn_pairs(tmp_path):
    out = import_lightgcn(_write_lightgcn(tmp_path / "src"), tmp_path / "out")
    train = pq.read_table(out / "interactions.parquet")
    assert train.schema == pa.schema([("user", pa.int64()), ("item", pa.int64())])
    assert _pairs(out / "interactions.parquet") == [
        (0, 10), (0, 11), (0, 12), (2, 11), (2, 13), (3, 10)
    ]  # fmt: skip
    assert _pairs(out / "test.parquet") == [(0, 13), (1, 10), (1, 12), (3, 11)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["source"] == "lightgcn"
    assert (out / "_SUCCESS").exists() and not (out / "items.parquet").exists()


def test_lightgcn_tolerates_crlf_and_extra_spaces(tmp_path):
    src = _write_lightgcn(tmp_path / "src", train="0  10 11\r\n\r\n 1\t12 \r\n")
    out = import_lightgcn(src, tmp_path / "out")
    assert _pairs(out / "interactions.parquet") == [(0, 10), (0, 11), (1, 12)]


def test_lightgcn_skips_complete_import_and_redoes_changed(tmp_path):
    src = _write_lightgcn(tmp_path / "src")
    out = import_lightgcn(src, tmp_path / "out")
    stamp = (out / "_SUCCESS").stat().st_mtime_ns
    import_lightgcn(src, out)
    assert (out / "_SUCCESS").stat().st_mtime_ns == stamp
    import_lightgcn(src, out, overwrite=True)
    assert (out / "_SUCCESS").stat().st_mtime_ns != stamp
    (src / "train.txt").write_text("5 6\n")
    import_lightgcn(src, out)
    assert _pairs(out / "interactions.parquet") == [(5, 6)]


@pytest.mark.parametrize(
    ("train", "test", "match"),
    [
        ("0 1\n1 2 x3\n", TEST_TXT, r"train\.txt, line 2: token 'x3'"),
        ("0 1\n", "0 1\n\n2 -4\n", r"test\.txt, line 3: token '-4'"),
        ("0 1.5\n", TEST_TXT, r"train\.txt, line 1: token '1\.5'"),
        ("0 1234567890123456789\n", TEST_TXT, r"train\.txt, line 1: id .* overflow"),
        ("0\n1\n", TEST_TXT, r"train\.txt: holds no \(user, item\) pair"),
        ("", TEST_TXT, r"train\.txt: holds no \(user, item\) pair"),
    ],
)
def test_lightgcn_bad_input(tmp_path, train, test, match):
    src = _write_lightgcn(tmp_path / "src", train, test)
    with pytest.raises(DataError, match=match):
        import_lightgcn(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_lightgcn_missing_file(tmp_path):
    src = _write_lightgcn(tmp_path / "src")
    (src / "test.txt").unlink()
    with pytest.raises(DataError, match=r"test\.txt does not exist"):
        import_lightgcn(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_import_refuses_to_destroy_other_directories(tmp_path):
    src = _write_lightgcn(tmp_path / "src")
    with pytest.raises(DataError, match="replace the source"):
        import_lightgcn(src, src)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a data folder"):
        import_lightgcn(src, other)
    assert (other / "notes.txt").exists()
    import_lightgcn(src, other, overwrite=True)
    assert (other / "_SUCCESS").exists() and not (other / "notes.txt").exists()


# ---------------------------------------------------------------- MovieLens


def _expected_split(
    fraction: float, ratings: list = RATINGS, seed: int = 0
) -> tuple[list, list]:
    """Per user, by (timestamp, a seeded random rank of the row in the file): the
    last floor(n * fraction) rows are test."""
    tie = np.random.default_rng(seed).permutation(len(ratings))
    by_user = defaultdict(list)
    for row, (u, i, r, t) in enumerate(ratings):
        by_user[u].append((u, i, r, t, tie[row]))
    train, test = [], []
    for u in sorted(by_user):
        rows = [row[:4] for row in sorted(by_user[u], key=lambda row: row[3:])]
        num_test = math.floor(len(rows) * fraction)
        train += rows[: len(rows) - num_test]
        test += rows[len(rows) - num_test :]
    return train, test


@pytest.mark.parametrize("layout", sorted(WRITERS))
@pytest.mark.parametrize("fraction", [0.0, 0.4, 0.6])  # 0.6 splits a time tie
def test_movielens_ratings_and_temporal_split(tmp_path, layout, fraction):
    src = write_movielens(tmp_path, layout)
    out = import_movielens(src, tmp_path / "out", test_fraction=fraction)
    train, test = _expected_split(fraction)
    assert _pairs(out / "interactions.parquet") == train
    assert _pairs(out / "test.parquet") == test
    schema = pq.read_schema(out / "test.parquet")
    assert [(f.name, f.type) for f in schema] == [
        ("user", pa.int64()), ("item", pa.int64()), ("weight", pa.float32()),
        ("timestamp", pa.int64()),
    ]  # fmt: skip
    params = json.loads((out / "manifest.json").read_text())["params"]
    assert params["layout"] == layout and params["test_fraction"] == fraction


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_movielens_item_features(tmp_path, layout):
    out = import_movielens(write_movielens(tmp_path, layout), tmp_path / "out")
    items = pq.read_table(out / "items.parquet")
    assert items.schema == pa.schema(
        [("item", pa.int64()), ("title", pa.string()),
         ("genres", pa.list_(pa.string())), ("year", pa.float32())]
    )  # fmt: skip
    expected = [(i, title, gs, year) for i, title, gs, _, year in MOVIES]
    if layout == "ml-100k":  # only ml-100k has a release date to fall back on
        expected[3] = (40, "Untitled", [], 1996)
    assert list(zip(*items.to_pydict().values(), strict=True)) == expected


def test_movielens_output_builds_a_graph_with_features(tmp_path):
    out = import_movielens(write_movielens(tmp_path, "ml-latest"), tmp_path / "out")
    manifest = build_graph(
        out / "interactions.parquet", tmp_path / "graph", items=out / "items.parquet"
    )
    kinds = {f["name"]: f["kind"] for f in manifest.features}
    assert kinds == {"title": "text", "genres": "categorical", "year": "dense"}
    genres = next(f for f in manifest.features if f["name"] == "genres")
    assert genres["dim"] == 8 and genres["missing"] == 1  # 8 genres; item 40 has none
    assert manifest.num_items == len(MOVIES) and manifest.isolated_items == 1
    assert manifest.weighted


def test_movielens_ties_in_time_split_at_random_by_seed(tmp_path):
    # One user, 20 ratings in the same second: which are held out follows the seed.
    ratings = [(7, 10 * k, 4.0, 500) for k in range(1, 21)]
    src = tmp_path / "ml-1m"
    src.mkdir()
    (src / "ratings.dat").write_text(
        "".join(f"{u}::{i}::4::{t}\n" for u, i, _, t in ratings)
    )
    (src / "movies.dat").write_text(
        "".join(f"{i}::M{i}::Drama\n" for _, i, _, _ in ratings)
    )
    held_out = []
    for seed in (0, 1):
        out = import_movielens(
            src, tmp_path / f"out{seed}", test_fraction=0.25, seed=seed
        )
        train, test = _expected_split(0.25, ratings, seed)
        assert _pairs(out / "interactions.parquet") == train
        assert _pairs(out / "test.parquet") == test
        held_out.append({i for _, i, _, _ in test})
    assert held_out[0] != held_out[1]
    assert held_out[0] != {i for _, i, _, _ in ratings[-5:]}  # not the highest ids


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_movielens_min_rating_keeps_positives(tmp_path, layout):
    out = import_movielens(
        write_movielens(tmp_path, layout),
        tmp_path / "out",
        test_fraction=0.4,
        min_rating=4,
    )
    liked = [row for row in RATINGS if row[2] >= 4]
    train, test = _expected_split(0.4, liked)
    assert _pairs(out / "interactions.parquet") == train
    assert _pairs(out / "test.parquet") == test
    params = json.loads((out / "manifest.json").read_text())["params"]
    assert params["min_rating"] == 4
    # Every movie stays in the catalogue, liked or not.
    assert pq.read_table(out / "items.parquet").num_rows == len(MOVIES)


def test_movielens_min_rating_refused(tmp_path):
    src = write_movielens(tmp_path, "ml-1m")
    with pytest.raises(
        DataError, match=r"ratings\.dat: no rating is >= --min-rating 6"
    ):
        import_movielens(src, tmp_path / "out", min_rating=6)
    with pytest.raises(ConfigError, match="--min-rating must be a positive"):
        import_movielens(src, tmp_path / "out", min_rating=0)
    assert not (tmp_path / "out").exists()


def test_min_rating_is_for_movielens_only(tmp_path):
    from pinsage.data.importers import import_folder

    with pytest.raises(ConfigError, match="MovieLens ratings only"):
        import_folder("lightgcn", tmp_path, tmp_path / "out", min_rating=4)


def test_cli_min_rating(tmp_path, monkeypatch, capsys):
    from tests.helpers import run_cli

    src = write_movielens(tmp_path, "ml-latest")
    args = ["data", "import", "--format", "movielens", str(src), "--out"]
    code, _, err = run_cli(
        [*args, str(tmp_path / "out"), "--min-rating", "4"], monkeypatch, capsys
    )
    assert code == 0, err
    train, _ = _expected_split(0.2, [row for row in RATINGS if row[2] >= 4])
    assert _pairs(tmp_path / "out" / "interactions.parquet") == train


def test_movielens_skips_complete_import_and_redoes_other_fraction(tmp_path):
    src = write_movielens(tmp_path, "ml-1m")
    out = import_movielens(src, tmp_path / "out", test_fraction=0.4)
    stamp = (out / "_SUCCESS").stat().st_mtime_ns
    import_movielens(src, out, test_fraction=0.4)
    assert (out / "_SUCCESS").stat().st_mtime_ns == stamp
    import_movielens(src, out, test_fraction=0.0)
    assert pq.read_metadata(out / "test.parquet").num_rows == 0


# (layout, file, text appended to it, expected message)
BAD_LINES = [
    ("ml-100k", "u.data", "5\t10\tx\t1\n", r"u\.data, line 15: '5\\t10\\tx\\t1'"),
    ("ml-100k", "u.data", "5\t10\t0\t1\n", r"u\.data: rating 0\.0 in data row 15"),
    ("ml-100k", "u.item", "70|Short|\n", r"u\.item, line 7: '70\|Short\|'"),
    ("ml-1m", "ratings.dat", "5::10::4\n", r"ratings\.dat, line 15: '5::10::4'"),
    ("ml-1m", "movies.dat", "70::No genres\n", r"movies\.dat, line 7: '70::No genres'"),
    ("ml-latest", "ratings.csv", "5,,4,1\n", r"ratings\.csv, line 16: '5,,4,1'"),
    ("ml-latest", "movies.csv", "10,Again (2000),Drama\n", r"movie id 10 appears more"),
]


@pytest.mark.parametrize(("layout", "name", "text", "match"), BAD_LINES)
def test_movielens_bad_line(tmp_path, layout, name, text, match):
    src = write_movielens(tmp_path, layout)
    with open(src / name, "a") as f:
        f.write(text)
    with pytest.raises(DataError, match=match):
        import_movielens(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("layout", "name", "match"),
    [
        ("ml-100k", "u.item", r"u\.item does not exist"),
        ("ml-latest", "ratings.csv", r"no MovieLens ratings file"),
    ],
)
def test_movielens_missing_file(tmp_path, layout, name, match):
    src = write_movielens(tmp_path, layout)
    (src / name).unlink()
    with pytest.raises(DataError, match=match):
        import_movielens(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_movielens_wrong_header(tmp_path):
    src = write_movielens(tmp_path, "ml-latest")
    (src / "ratings.csv").write_text("user,item\n1,2\n")
    with pytest.raises(DataError, match=r"ratings\.csv, line 1: header is 'user,item'"):
        import_movielens(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fraction", [-0.1, 1.0, float("nan")])
def test_movielens_rejects_test_fraction_out_of_range(tmp_path, fraction):
    src = write_movielens(tmp_path, "ml-1m")
    with pytest.raises(ConfigError, match="--test-fraction"):
        import_movielens(src, tmp_path / "out", test_fraction=fraction)
    assert not (tmp_path / "out").exists()


def test_parquet_import_renames_validates_and_builds(tmp_path):
    from pinsage.data.importers import import_folder

    src = tmp_path / "src"
    src.mkdir()
    pq.write_table(
        pa.table(
            {
                "uid": ["a", "b", "a"],
                "pin": [3, 4, 4],
                "w": [1.0, 2.0, 0.5],
                "ts": [1, 2, 3],
            }
        ),
        src / "interactions.parquet",
    )
    pq.write_table(
        pa.table({"uid": ["b"], "pin": [3], "w": [1.0], "ts": [9]}),
        src / "test.parquet",
    )
    pq.write_table(
        pa.table({"pin": [3, 4, 5], "color": ["red", "red", "blue"]}),
        src / "items.parquet",
    )
    cols = dict(user="uid", item="pin", weight="w", timestamp="ts")
    from pinsage.data.contract import InteractionColumns

    out = import_folder(
        "parquet", src, tmp_path / "out", columns=InteractionColumns(**cols)
    )
    inter = pq.read_table(out / "interactions.parquet")
    assert inter.column_names == ["user", "item", "weight", "timestamp"]
    assert inter.to_pydict() == {
        "user": ["a", "b", "a"],
        "item": [3, 4, 4],
        "weight": [1.0, 2.0, 0.5],
        "timestamp": [1, 2, 3],
    }
    assert pq.read_table(out / "test.parquet").to_pydict()["timestamp"] == [9]
    assert pq.read_table(out / "items.parquet").column_names == ["item", "color"]
    m = build_graph(
        out / "interactions.parquet", tmp_path / "g", items=out / "items.parquet"
    )
    assert m.num_items == 3 and m.isolated_items == 1 and m.weighted


def test_items_file_id_column_may_differ_from_the_interactions(tmp_path):
    from pinsage.data.contract import InteractionColumns
    from pinsage.data.importers import import_folder

    src = tmp_path / "src"
    src.mkdir()
    pq.write_table(
        pa.table({"user": [1, 2, 2], "movie": [7, 8, 7]}), src / "interactions.parquet"
    )
    pq.write_table(
        pa.table({"id": [8, 7, 9], "genre": ["a", "b", "a"]}), src / "items.parquet"
    )
    with pytest.raises(DataError, match="'movie'"):  # named as the interactions' id
        import_folder(
            "parquet", src, tmp_path / "bad", columns=InteractionColumns(item="movie")
        )
    columns = InteractionColumns(item="movie", items_item="id")
    out = import_folder("parquet", src, tmp_path / "out", columns=columns)
    items = pq.read_table(out / "items.parquet")
    assert items.to_pydict() == {"item": [8, 7, 9], "genre": ["a", "b", "a"]}
    graph = tmp_path / "g"
    inter, items = src / "interactions.parquet", src / "items.parquet"
    m = build_graph(inter, graph, items=items, columns=columns)
    assert m.num_items == 3 and m.isolated_items == 1


def test_parquet_import_bad_input_leaves_nothing(tmp_path):
    from pinsage.data.importers import import_folder

    src = tmp_path / "src"
    src.mkdir()
    pq.write_table(
        pa.table({"user": [1, None], "item": [1, 2]}), src / "interactions.parquet"
    )
    with pytest.raises(DataError, match="null ids"):
        import_folder("parquet", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (src / "interactions.parquet").unlink()
    with pytest.raises(DataError, match="does not exist"):
        import_folder("parquet", src, tmp_path / "out")
