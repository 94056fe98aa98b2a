import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pinsage.data.split import held_out_rows, split_validation
from pinsage.errors import DataError
from pinsage.graph import build_graph, load_graph


def interactions(tmp_path, *, timestamps: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(60), rng.integers(1, 30, 60))
    items = rng.integers(0, 80, users.size)
    columns = {"user": users, "item": items}
    if timestamps:
        columns["timestamp"] = rng.permutation(users.size).astype(np.int64)
    path = tmp_path / "interactions.parquet"
    pq.write_table(pa.table(columns), path)
    return path, pa.table(columns)


def test_each_user_holds_its_share_and_keeps_one(tmp_path):
    users = np.repeat(np.arange(500), 20)
    items = np.arange(users.size) % 97
    held = held_out_rows(users, items, np.zeros(users.size), 0.2, seed=1)
    per_user = np.bincount(users[held], minlength=500)
    assert per_user.max() <= 19 and abs(per_user.mean() - 4.0) < 0.05
    # Stochastic rounding: a user of 3 interactions holds 0.3 of one on average.
    light = np.repeat(np.arange(3000), 3)
    held = held_out_rows(light, light % 50, np.zeros(light.size), 0.1, seed=2)
    assert abs(held.sum() / 3000 - 0.3) < 0.03
    assert np.bincount(light[~held]).min() >= 1


def test_items_keep_an_interaction_and_the_split_is_seeded():
    users = np.arange(1000) % 100
    items = np.arange(1000)  # every item is seen once: none may be held out
    assert not held_out_rows(users, items, np.zeros(1000), 0.5, seed=0).any()
    items = np.arange(1000) % 300
    a = held_out_rows(users, items, np.zeros(1000), 0.3, seed=0)
    b = held_out_rows(users, items, np.zeros(1000), 0.3, seed=0)
    c = held_out_rows(users, items, np.zeros(1000), 0.3, seed=1)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert set(items[~a]) == set(items)


def test_timestamps_hold_each_users_latest(tmp_path):
    path, table = interactions(tmp_path, timestamps=True)
    split_validation(path, tmp_path / "split", 0.25, seed=3)
    held = pq.read_table(tmp_path / "split" / "validation.parquet").to_pandas()
    fit = pq.read_table(tmp_path / "split" / "fit.parquet").to_pandas()
    assert len(held) + len(fit) == table.num_rows and len(held) > 0
    first_held = held.groupby("user")["timestamp"].min()
    last_fit = fit.groupby("user")["timestamp"].max()
    assert (first_held > last_fit[first_held.index]).all()


def test_fit_graph_has_the_full_graphs_nodes(tmp_path):
    path, _ = interactions(tmp_path, timestamps=False)
    split = split_validation(path, tmp_path / "split", 0.3, seed=0)
    full = load_graph(build_graph(path, tmp_path / "g") and tmp_path / "g")
    fit = load_graph(
        build_graph(split / "fit.parquet", tmp_path / "f") and tmp_path / "f"
    )
    assert fit.item_ids.equals(full.item_ids)
    assert fit.context_ids.equals(full.context_ids)
    assert fit.csr.context_indices.numel() < full.csr.context_indices.numel()


def test_rerun_is_a_no_op_and_single_interaction_users_are_refused(tmp_path):
    path, _ = interactions(tmp_path, timestamps=False)
    out = split_validation(path, tmp_path / "split", 0.3, seed=0)
    stamp = (out / "fit.parquet").stat().st_mtime_ns
    split_validation(path, out, 0.3, seed=0)
    assert (out / "fit.parquet").stat().st_mtime_ns == stamp
    single = tmp_path / "single.parquet"
    pq.write_table(pa.table({"user": [1, 2, 3], "item": [1, 2, 3]}), single)
    with pytest.raises(DataError, match="validation_share"):
        split_validation(single, tmp_path / "split2", 0.5, seed=0)
