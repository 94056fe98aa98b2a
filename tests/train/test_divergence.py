"""Training refuses what it cannot learn from and stops before a NaN reaches a weight.

A non-finite loss or gradient stops the run with `TrainingError`, before the step is
applied, so the latest checkpoint is the last good one; graphs with fewer than two
items, or no pairs for the objective, are refused before training starts.
"""

import logging
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pinsage.errors import DataError, TrainingError
from pinsage.graph import build_graph
from pinsage.run import load_checkpoint
from pinsage.train import train
from pinsage.train.objective import BatchLoss
from tests.helpers import run_cli, tiny_config

BAD_STEP = 5  # 0-based: the 6th step of 8; checkpoints every 2 steps


def _inject_at(monkeypatch, where: str) -> None:
    """Make step `BAD_STEP` produce a NaN loss, or a NaN dense or sparse gradient."""
    forward = BatchLoss.forward

    def poisoned(self, batch):
        loss = forward(self, batch)
        if batch.step != BAD_STEP:
            return loss
        if where == "loss":
            return loss * math.nan
        params = dict(self.model.named_parameters())
        sparse = {
            n for n, m in self.model.named_modules() if getattr(m, "sparse", False)
        }
        name = next(
            n
            for n in params
            if (n.rsplit(".", 1)[0] in sparse) == (where == "sparse gradient")
            and params[n].requires_grad
        )
        params[name].register_hook(lambda g: g * math.nan)
        return loss

    monkeypatch.setattr(BatchLoss, "forward", poisoned)


@pytest.mark.parametrize("where", ["loss", "dense gradient", "sparse gradient"])
def test_non_finite_step_stops_and_keeps_the_last_good_checkpoint(
    graph_dir, tmp_path, monkeypatch, where
):
    cfg = tiny_config(checkpoint_every=2)
    _inject_at(monkeypatch, where)
    with pytest.raises(TrainingError, match=f"diverged at step {BAD_STEP + 1}"):
        train(cfg, graph_dir, tmp_path / "run")
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint["step"] == 4  # the last one written before step 6
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values())
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").glob("*.pt")) == [
        "step-00000002.pt",
        "step-00000004.pt",
    ]
    monkeypatch.undo()  # the cause fixed, the run continues from its checkpoint
    record = train(cfg, graph_dir, tmp_path / "run", resume=True)
    assert record["step"] == 8 and math.isfinite(record["loss"])


def test_divergence_is_exit_2_at_the_command_line(
    graph_dir, tmp_path, monkeypatch, capsys
):
    config = tmp_path / "c.yaml"
    config.write_text(
        "model: {dim: 8, hidden_dim: 8, out_dim: 8, text_buckets: 256}\n"
        "train: {epochs: 1, steps_per_epoch: 8, batch_size: 16, checkpoint_every: 2}\n"
        "execution: {producers: 0}\n"
    )
    _inject_at(monkeypatch, "loss")
    args = ["-q", "train", "--config", str(config), "--graph", str(graph_dir)]
    code, _, err = run_cli(
        [*args, "--out", str(tmp_path / "r"), "--device", "cpu"], monkeypatch, capsys
    )
    message = err.strip()
    assert code == 2 and "Traceback" not in err and message.count("\n") == 0
    assert message.startswith("error: training diverged at step 6: the loss is nan")
    assert "--resume" in message and "train.lr" in message


def _graph(tmp_path, users, items):
    pq.write_table(pa.table({"user": users, "item": items}), tmp_path / "i.parquet")
    return build_graph(tmp_path / "i.parquet", tmp_path / "g")


def test_graph_with_one_item_is_refused_at_train_and_warned_at_build(
    tmp_path, monkeypatch, capsys, caplog
):
    with caplog.at_level(logging.WARNING, logger="pinsage.graph.build"):
        _graph(tmp_path, [1, 2, 3], [10, 10, 10])
    assert "needs at least two" in caplog.text
    with pytest.raises(DataError, match="holds 1 item; training needs at least two"):
        train(tiny_config(), tmp_path / "g", tmp_path / "run")
    config = tmp_path / "c.yaml"
    config.write_text(
        "train: {epochs: 1, steps_per_epoch: 2}\nexecution: {producers: 0}\n"
    )
    args = ["-q", "train", "--config", str(config), "--graph", str(tmp_path / "g")]
    code, _, err = run_cli(
        [*args, "--out", str(tmp_path / "r"), "--device", "cpu"], monkeypatch, capsys
    )
    assert code == 2 and err.startswith("error: ") and str(tmp_path / "g") in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "run").exists()


def test_no_item_pairs_refuses_the_item_objective_only(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pinsage.graph.build"):
        _graph(tmp_path, [1, 2, 3], [10, 20, 30])  # every user engaged one item
    assert "no item pairs" in caplog.text
    with pytest.raises(DataError, match="'item' has no .query, positive. item pairs"):
        train(tiny_config(objective="item"), tmp_path / "g", tmp_path / "r1")
    assert not (tmp_path / "r1").exists()
    record = train(tiny_config(objective="both"), tmp_path / "g", tmp_path / "r2")
    assert record["loss"] > 0
