"""`data synth --cold-items`: items held out of training entirely."""

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pinsage.data.synth import SynthConfig, synthesize_tables
from pinsage.errors import ConfigError
from tests.helpers import run_cli

SMALL = dict(num_items=200, num_users=150, num_edges=3000, num_clusters=4, seed=5)


def _untrained_items(tables) -> set:
    catalogue = set(tables["items"]["item"].to_pylist())
    return catalogue - set(tables["interactions"]["item"].to_pylist())


def test_cold_items_lose_training_rows_only():
    warm = synthesize_tables(SynthConfig(**SMALL))
    cold = synthesize_tables(SynthConfig(**SMALL, cold_items=0.1))
    # Same draws up to the split: the test rows are the same, features for all items.
    assert cold["test"].equals(warm["test"])
    assert cold["items"].num_rows == warm["items"].num_rows == 200
    held_out = _untrained_items(cold) - _untrained_items(warm)
    # 20 cold items, some of which may have had no training rows anyway.
    assert 20 <= len(_untrained_items(cold)) <= 20 + len(_untrained_items(warm))
    # The training rows are the warm folder's less exactly those of the cold items.
    kept = pc.invert(pc.is_in(warm["interactions"]["item"], pa.array(sorted(held_out))))
    assert cold["interactions"].equals(warm["interactions"].filter(kept))
    assert (
        pc.sum(pc.is_in(cold["test"]["item"], pa.array(sorted(held_out)))).as_py() > 0
    )


def test_no_cold_items_by_default():
    assert SynthConfig().cold_items == 0.0


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_cold_items_out_of_range_refused(bad):
    with pytest.raises(ConfigError, match="cold_items"):
        SynthConfig(cold_items=bad)


def test_cli_cold_items(tmp_path, monkeypatch, capsys):
    out = tmp_path / "d"
    args = ["data", "synth", "--out", str(out), "--items", "200", "--users", "150"]
    args += ["--edges", "3000", "--clusters", "4", "--seed", "5", "--cold-items", "0.1"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    want = synthesize_tables(SynthConfig(**SMALL, cold_items=0.1))
    assert pq.read_table(out / "interactions.parquet").equals(want["interactions"])
