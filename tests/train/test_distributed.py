"""Data-parallel training under Ray Train: 2 CPU workers (gloo) on a tiny graph."""

import json
import shutil

import pytest
import ray
import torch

import pinsage.train.distributed
from pinsage.errors import CheckpointError, ConfigError
from pinsage.features import FeatureStore
from pinsage.graph import load_graph
from pinsage.run import build_model, load_checkpoint
from pinsage.train import train
from pinsage.train.distributed import train_distributed
from pinsage.train.loader import BatchMaker
from pinsage.train.optimizers import make_optimizers, sparse_parameters
from tests.helpers import run_cli, tiny_config


@pytest.fixture(scope="module")
def local_ray():
    # One small Ray for the module (train_distributed reuses a running one), so
    # each run pays for its workers, not for a Ray start.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _cfg(workers: int = 2, **train):
    # 2 x 3 steps on 2 workers; a producer thread per worker
    cfg = tiny_config(**({"steps_per_epoch": 3} | train))
    return cfg.executed(producers=1, workers=workers)


def _records(run):
    return [
        json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
    ]


def test_replicas_draw_their_own_deterministic_batches(graph_dir):
    cfg = _cfg(steps_per_epoch=10)  # one epoch: the same hard-negative count
    single = BatchMaker(graph_dir, cfg, cfg.model.text_buckets)
    ranks = [
        BatchMaker(graph_dir, cfg, cfg.model.text_buckets, rank=r, world_size=2)
        for r in (0, 1)
    ]
    a, b = ranks[0](1), ranks[1](1)
    assert a.step == b.step == 1
    assert not torch.equal(a.items.input_nodes, b.items.input_nodes)
    again = BatchMaker(graph_dir, cfg, cfg.model.text_buckets, rank=1, world_size=2)
    assert torch.equal(again(1).items.input_nodes, b.items.input_nodes)
    # Rank r's step s is draw 2s + r of the single-process stream.
    assert torch.equal(a.items.input_nodes, single(2).items.input_nodes)
    assert torch.equal(b.items.input_nodes, single(3).items.input_nodes)


def test_two_workers_stay_identical_and_loss_falls(graph_dir, tmp_path, local_ray):
    cfg = _cfg(
        epochs=1, steps_per_epoch=40, max_hard_negatives=0, lr=0.01, loss="margin"
    )
    graph = load_graph(graph_dir)
    model = build_model(cfg, graph, FeatureStore.from_graph(graph, text_buckets=512))
    assert sparse_parameters(model), "the test must cover the sparse tables' sync"
    record = train_distributed(cfg, graph_dir, tmp_path / "run", verify_every=1)
    records = _records(tmp_path / "run")
    assert record["step"] == 40 and [r["step"] for r in records] == list(range(1, 41))
    prints = [r["replica_fingerprints"] for r in records]
    assert all(len(p) == 2 and p[0] == p[1] for p in prints)  # after every step
    assert len({p[0] for p in prints}) == 40  # ... and the weights moved each step
    losses = [r["loss"] for r in records]
    assert sum(losses[-8:]) / 8 < 0.8 * sum(losses[:8]) / 8


def test_resume_continues_exactly_and_checkpoints_load_anywhere(
    graph_dir, tmp_path, local_ray, monkeypatch, capsys
):
    cfg = _cfg()  # 6 steps, hard negatives from epoch 2
    train(cfg, graph_dir, tmp_path / "straight")
    config = tmp_path / "cfg.yaml"
    config.write_text(
        "sampler: {num_walks: 10, top_k: 5, num_layers: 2}\n"
        "model: {dim: 16, hidden_dim: 16, out_dim: 16, text_buckets: 512}\n"
        "train: {epochs: 2, steps_per_epoch: 3, batch_size: 32,"
        " num_random_negatives: 40, max_hard_negatives: 2, checkpoint_every: 0,"
        " warmup_steps: 2}\n"
    )
    split = tmp_path / "split"
    args = ["-q", "train", "--config", str(config), "--graph", str(graph_dir)]
    args += ["--out", str(split), "--until-step", "3", "--workers", "2"]
    assert run_cli([*args, "--producer", "thread"], monkeypatch, capsys)[0] == 0
    assert load_checkpoint(split)["step"] == 3
    shutil.copytree(split, tmp_path / "single")
    train(cfg, graph_dir, split, resume=True)

    done = load_checkpoint(split)
    assert done["step"] == 6
    want = load_checkpoint(tmp_path / "straight")["model"]
    assert done["model"].keys() == want.keys()
    for key in want:  # the same weights as the uninterrupted run
        assert torch.equal(done["model"][key], want[key]), key
    assert [r["step"] for r in _records(split)] == list(range(1, 7))

    # The single-process code loads it; continuing it needs the same worker count
    # (worker r trains batch s * N + r), so one process is refused.
    graph = load_graph(graph_dir)
    buckets = done["config"]["model"]["text_buckets"]  # sized to the graph by train
    store = FeatureStore.from_graph(graph, text_buckets=buckets)
    model = build_model(cfg, graph, store)
    model.load_state_dict(done["model"])
    for optimizer, state in zip(
        make_optimizers(model, cfg.train), done["optimizer"], strict=True
    ):
        optimizer.load_state_dict(state)
    with pytest.raises(ConfigError, match="trained by 2 worker.*--workers 2"):
        train(cfg.executed(workers=1), graph_dir, tmp_path / "single", resume=True)


def test_user_errors_are_pinsage_errors(graph_dir, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(_cfg(), graph_dir, tmp_path / "none", resume=True)
    with pytest.raises(ConfigError, match="execution.workers must be >= 1"):
        _cfg(workers=0)


def test_one_worker_is_the_single_process_path(graph_dir, tmp_path, monkeypatch):
    def no_ray(*args, **kwargs):
        raise AssertionError("workers=1 must not start Ray")

    monkeypatch.setattr(pinsage.train.distributed, "train_distributed", no_ray)
    cfg = _cfg(workers=1, epochs=1, steps_per_epoch=1)
    record = train(cfg, graph_dir, tmp_path / "r")
    assert record["step"] == 1 and "replica_fingerprints" not in record
