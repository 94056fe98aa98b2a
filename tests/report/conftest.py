"""Run roots for the report: one made by the real pipeline, one written by hand."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pinsage.config import (
    EmbedConfig,
    ExecutionConfig,
    IndexConfig,
    ModelConfig,
    PipelineConfig,
    SamplerConfig,
    TrainConfig,
)
from pinsage.pipeline import run_pipeline
from tests.helpers import TINY_SYNTH
from tests.report.known import EVAL_STEPS, FINAL, TIMINGS


@pytest.fixture(scope="session")
def pipeline_root(tmp_path_factory) -> Path:
    """A complete run root of a tiny generated dataset (about 10 s on 2 cores)."""
    cfg = PipelineConfig(
        synth=replace(TINY_SYNTH, seed=1),
        sampler=SamplerConfig(num_walks=10, top_k=5, num_layers=1),
        model=ModelConfig(dim=16, hidden_dim=16, out_dim=16, text_buckets=512),
        train=TrainConfig(
            epochs=1,
            steps_per_epoch=6,
            batch_size=32,
            num_random_negatives=40,
            warmup_steps=2,
        ),
        execution=ExecutionConfig(producers=0),
        embed=EmbedConfig(engine="local", contexts=False),
        index=IndexConfig(kind="flat"),
    )
    root = tmp_path_factory.mktemp("report") / "root"
    run_pipeline(cfg, root)
    return root


def _metrics_rows() -> list[dict]:
    rows = []
    for step in range(1, 41):
        row = {
            "step": step,
            "epoch": 1 + (step - 1) // 20,
            "loss": round(1.0 / step, 6),
            "lr": 0.005,
            "pairs_per_s": 1000.0 + step,
            "producer_wait": 0.05,
        }
        if step in EVAL_STEPS:
            row |= {"recall@20": step / 400, "ndcg@20": step / 500, "mrr": 0.01}
        rows.append(row)
    return rows


@pytest.fixture
def handmade_root(tmp_path) -> Path:
    """A root with a Gowalla manifest, metrics with eval rows, eval.json; no graph."""
    root = tmp_path / "gowalla-root"
    (root / "run").mkdir(parents=True)
    stages = {
        name: {
            "seconds": s,
            "skipped": name == "data",
            "finished": "2025-01-02T03:04:05+00:00",
        }
        for name, s in TIMINGS.items()
    }
    manifest = {
        "format_version": 1,
        "config_sha256": "ab" * 32,
        "code_version": "0.1.0+gdeadbee",
        "dataset": "../shared/data/gowalla",
        "stages": stages,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    lines = [json.dumps(r) for r in _metrics_rows()]
    (root / "run" / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (root / "run" / "eval.json").write_text(json.dumps(FINAL))
    return root
