"""`data import --cold-items`: the latest items lose their training rows only."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pinsage.data.cold import choose_cold_items, with_cold_items
from pinsage.data.importers import import_folder
from pinsage.errors import ConfigError, DataError
from tests.helpers import run_cli
from tests.movielens_files import RATINGS, write_movielens


def test_choice_is_the_latest_first_seen_with_seeded_ties():
    first_seen = np.array([5.0, 1.0, 9.0, 9.0, 3.0, 7.0, 0.0, 2.0])
    picks = {tuple(choose_cold_items(first_seen, 8, 0.25, seed=s)) for s in range(20)}
    assert picks == {(2, 3)}
    three = {tuple(choose_cold_items(first_seen, 8, 0.375, seed=s)) for s in range(5)}
    assert three == {(2, 3, 5)}
    # Items 2 and 3 tie at 9: seeds pick either, each seed always the same one.
    one = {tuple(choose_cold_items(first_seen, 8, 0.125, seed=s)) for s in range(20)}
    assert one == {(2,), (3,)}
    for seed in range(5):
        again = choose_cold_items(first_seen, 8, 0.125, seed)
        assert again.tolist() == choose_cold_items(first_seen, 8, 0.125, seed).tolist()


def test_random_choice_without_timestamps_is_seeded():
    a = choose_cold_items(None, 100, 0.1, seed=3)
    assert len(a) == 10 and len(set(a.tolist())) == 10
    assert a.tolist() == choose_cold_items(None, 100, 0.1, seed=3).tolist()
    assert a.tolist() != choose_cold_items(None, 100, 0.1, seed=4).tolist()


def _tables():
    # item 3 first appears at t=50 (in test), item 2 at t=40: with 2 of 4 items
    # cold, items 2 and 3 lose their training rows.
    train = pa.table(
        {
            "user": [1, 1, 2, 2, 3, 3],
            "item": [0, 2, 1, 3, 0, 1],
            "timestamp": [10, 40, 20, 60, 11, 21],
        }
    )
    test = pa.table({"user": [1, 2, 3], "item": [3, 2, 3], "timestamp": [50, 70, 80]})
    items = pa.table({"item": [0, 1, 2, 3, 4], "title": ["a", "b", "c", "d", "e"]})
    return {"interactions": train, "test": test, "items": items}


def test_cold_items_lose_training_rows_only():
    tables = _tables()
    got, count = with_cold_items(tables, 0.5, 0, "src")
    assert count == 2  # of the four items with interactions (item 4 has none)
    assert got["interactions"]["item"].to_pylist() == [0, 1, 0, 1]
    assert got["test"] == tables["test"] and got["items"] == tables["items"]


def test_cold_items_need_items_and_test():
    tables = _tables()
    for missing in ("items", "test"):
        rest = {k: v for k, v in tables.items() if k != missing}
        with pytest.raises(DataError, match=missing):
            with_cold_items(rest, 0.5, 0, "src")


def test_parquet_import_with_cold_items(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name, table in _tables().items():
        pq.write_table(table, src / f"{name}.parquet")
    out = import_folder("parquet", src, tmp_path / "out", cold_items=0.5)
    assert pq.read_table(out / "interactions.parquet")["item"].to_pylist() == [
        0,
        1,
        0,
        1,
    ]
    assert pq.read_table(out / "test.parquet").num_rows == 3
    stamp = (out / "_SUCCESS").stat().st_mtime_ns
    import_folder("parquet", src, out, cold_items=0.5)  # up to date: no work
    assert (out / "_SUCCESS").stat().st_mtime_ns == stamp
    import_folder("parquet", src, out)  # another setting: rewritten
    assert pq.read_table(out / "interactions.parquet").num_rows == 6
    (src / "items.parquet").unlink()
    with pytest.raises(DataError, match="items"):
        import_folder("parquet", src, tmp_path / "other", cold_items=0.5)
    assert not (tmp_path / "other").exists()


def test_lightgcn_refuses_cold_items(tmp_path):
    with pytest.raises(ConfigError, match="features"):
        import_folder("lightgcn", tmp_path, tmp_path / "out", cold_items=0.1)


def test_movielens_cold_items_are_the_latest_movies(tmp_path, monkeypatch, capsys):
    src = write_movielens(tmp_path, "ml-latest")
    base = ["data", "import", "--format", "movielens", str(src), "--test-fraction"]
    for out, extra in (("plain", []), ("cold", ["--cold-items", "0.4"])):
        args = [*base, "0.4", "--out", str(tmp_path / out), *extra]
        code, _, err = run_cli(args, monkeypatch, capsys)
        assert code == 0, err
    read = lambda out, name: pq.read_table(tmp_path / out / f"{name}.parquet")  # noqa: E731
    assert read("cold", "test") == read("plain", "test")
    assert read("cold", "items") == read("plain", "items")
    plain, cold = read("plain", "interactions"), read("cold", "interactions")
    rows = pa.concat_tables([plain, read("plain", "test")]).to_pylist()
    first = {}
    for row in rows:
        first[row["item"]] = min(first.get(row["item"], np.inf), row["timestamp"])
    dropped = set(plain["item"].to_pylist()) - set(cold["item"].to_pylist())
    assert 0 < len(dropped) <= round(0.4 * len(first))
    kept_items = set(cold["item"].to_pylist())
    assert min(first[i] for i in dropped) >= max(first[i] for i in kept_items)
    # Exactly the dropped items' rows are gone.
    expected = [r for r in plain.to_pylist() if r["item"] not in dropped]
    assert cold.to_pylist() == expected


def test_movielens_rating_weights_or_not(tmp_path):

    src = write_movielens(tmp_path, "ml-1m")
    weighted = import_folder("movielens", src, tmp_path / "w", test_fraction=0.0)
    plain = import_folder(
        "movielens", src, tmp_path / "p", test_fraction=0.0, rating_weights=False
    )
    table = pq.read_table(weighted / "interactions.parquet")
    assert sorted(table["weight"].to_pylist()) == sorted(float(r[2]) for r in RATINGS)
    unweighted = pq.read_table(plain / "interactions.parquet")
    assert "weight" not in unweighted.column_names
    assert unweighted.num_rows == table.num_rows
    with pytest.raises(ConfigError, match="MovieLens ratings only"):
        import_folder("parquet", src, tmp_path / "x", rating_weights=False)


def test_import_of_a_file_asks_for_the_folder(tmp_path):
    pq.write_table(_tables()["interactions"], tmp_path / "interactions.parquet")
    for fmt in ("parquet", "movielens", "lightgcn"):
        with pytest.raises(DataError, match="is a file.*pass the folder"):
            import_folder(fmt, tmp_path / "interactions.parquet", tmp_path / "out")


def test_parquet_test_fraction_holds_each_users_latest(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rows = [(u, i, 10 * u + i) for u in range(1, 6) for i in range(10)]
    table = pa.table(
        {
            "user": [r[0] for r in rows],
            "item": [r[1] for r in rows],
            "timestamp": [r[2] for r in rows],
        }
    )
    pq.write_table(table, src / "interactions.parquet")
    out = import_folder("parquet", src, tmp_path / "out", test_fraction=0.3)
    test = pq.read_table(out / "test.parquet").to_pylist()
    train = pq.read_table(out / "interactions.parquet").to_pylist()
    assert len(test) + len(train) == len(rows)
    assert len(test) >= 3  # 3 of a user's 10, less where an item needs a row back
    for user in range(1, 6):  # a user's held rows are its latest
        held = [r["timestamp"] for r in test if r["user"] == user]
        kept = [r["timestamp"] for r in train if r["user"] == user]
        assert len(held) <= 3 and (not held or min(held) > max(kept))
    pq.write_table(table.slice(0, 2), src / "test.parquet")
    with pytest.raises(ConfigError, match="already holds test.parquet"):
        import_folder("parquet", src, tmp_path / "again", test_fraction=0.3)
    with pytest.raises(ConfigError, match="own test split"):
        import_folder("lightgcn", tmp_path, tmp_path / "x", test_fraction=0.3)
