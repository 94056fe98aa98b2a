"""Checkpoints: sized to the data, reloaded exactly, and a run killed before its first
one reruns without a hand clean-up."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from pinsage.atomic import temp_sibling
from pinsage.config import ModelConfig, PipelineConfig, load_section
from pinsage.errors import ConfigError
from pinsage.features import MIN_TEXT_BUCKETS, FeatureStore, text_buckets_for
from pinsage.graph import load_graph
from pinsage.infer.local import embed_all
from pinsage.run import build_model, load_checkpoint, save_checkpoint
from pinsage.sampler.table import neighborhood_table
from pinsage.train import train
from tests.helpers import tiny_config

MOST = 2**18  # the configured maximum, as in configs/demo.yaml


def _config(**train_cfg) -> PipelineConfig:
    cfg = tiny_config(**train_cfg)
    return replace(cfg, model=replace(cfg.model, text_buckets=MOST))


@pytest.fixture(scope="module")
def run(graph_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    train(_config(), graph_dir, out)
    return out


def _embeddings(checkpoint: dict, graph_dir) -> torch.Tensor:
    """Every item's embedding, the way `embed` and `eval` rebuild a run's model."""
    cfg = load_section(PipelineConfig, checkpoint["config"], "checkpoint config")
    graph = load_graph(graph_dir)
    store = FeatureStore.from_graph(graph, text_buckets=cfg.model.text_buckets)
    model = build_model(cfg, graph, store)
    model.load_state_dict(checkpoint["model"])
    table = neighborhood_table(graph.csr, cfg.sampler.for_inference())
    return embed_all(model, store, table)[0]


def test_a_small_graph_gets_a_small_text_table(graph_dir, run):
    buckets = text_buckets_for(load_graph(graph_dir), MOST)
    assert MIN_TEXT_BUCKETS <= buckets <= 1024  # ~30 distinct title tokens
    assert buckets & (buckets - 1) == 0  # a power of two
    assert text_buckets_for(load_graph(graph_dir), 100) == 100  # never above the most
    checkpoint = load_checkpoint(run)
    assert checkpoint["config"]["model"]["text_buckets"] == buckets
    rows = [v.shape[0] for k, v in checkpoint["model"].items() if "emb_text" in k]
    assert rows and set(rows) == {buckets}
    # A 2**18-row table with its Adam moments was > 50 MB even at dim 16.
    size = next((run / "checkpoints").glob("step-*.pt")).stat().st_size
    assert size < 2_000_000, size


def test_a_saved_and_loaded_checkpoint_embeds_identically(graph_dir, run, tmp_path):
    checkpoint = load_checkpoint(run)
    save_checkpoint(tmp_path / "copy", checkpoint)
    again = load_checkpoint(tmp_path / "copy")
    want, got = _embeddings(checkpoint, graph_dir), _embeddings(again, graph_dir)
    assert torch.equal(want, got)


def test_resuming_keeps_the_text_table_it_started_with(graph_dir, tmp_path):
    out = tmp_path / "r"
    train(_config(), graph_dir, out, until_step=2)
    started = load_checkpoint(out)["config"]["model"]["text_buckets"]
    train(_config(), graph_dir, out, resume=True)
    assert load_checkpoint(out)["config"]["model"]["text_buckets"] == started


def _killed_in_first_save(graph_dir, out):
    """The run folder of a `train` killed while writing its first checkpoint."""
    train(_config(), graph_dir, out)
    folder = out / "checkpoints"
    for path in [*folder.glob("step-*.pt"), folder / "latest"]:
        path.unlink()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a writer that died: its pid exists no more
    leftover = temp_sibling(folder / "step-00000008.pt")
    name = leftover.name.replace(f"-{os.getpid()}-", f"-{proc.pid}-")
    leftover = leftover.with_name(name)
    leftover.write_bytes(b"half a checkpoint")
    return leftover


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_killed_in_its_first_save_reruns_as_it_is(
    graph_dir, run, tmp_path, resume
):
    out = tmp_path / "run"
    leftover = _killed_in_first_save(graph_dir, out)
    train(_config(), graph_dir, out, resume=resume)
    assert not leftover.exists()
    records = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in records] == list(range(1, 9))
    want, got = load_checkpoint(run)["model"], load_checkpoint(out)["model"]
    for key in want:
        assert torch.equal(want[key], got[key]), key


def test_a_run_killed_in_its_first_save_keeps_its_config(graph_dir, tmp_path):
    out = tmp_path / "run"
    _killed_in_first_save(graph_dir, out)
    other = replace(_config(), model=ModelConfig(dim=8, hidden_dim=8, out_dim=8))
    with pytest.raises(ConfigError, match="unfinished run of another config"):
        train(other, graph_dir, out)
