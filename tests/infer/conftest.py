"""A small generated graph and a briefly trained 2-layer run, shared by these tests."""

import pytest

from pinsage.config import ModelConfig, PipelineConfig, SamplerConfig, TrainConfig
from pinsage.data.synth import SynthConfig, synthesize
from pinsage.graph import build_graph
from pinsage.train import train


@pytest.fixture(scope="session")
def graph_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("infer")
    data = synthesize(
        SynthConfig(num_items=300, num_users=150, num_edges=4000, num_clusters=5),
        root / "data",
    )
    build_graph(
        data / "interactions.parquet", root / "graph", items=data / "items.parquet"
    )
    return root / "graph"


def run_config(aggregator: str = "importance") -> PipelineConfig:
    """2 layers; the hidden width differs from dim to catch mixed-up shapes.

    The importance model has the residual (the default), so its output is dim
    wide; the attention model has none, and an output width of its own.
    """
    residual = aggregator != "attention"
    return PipelineConfig(
        # Inference neighbourhoods differ from training's: every engine must use them.
        sampler=SamplerConfig(
            num_walks=10, top_k=5, num_layers=2, infer_num_walks=20, infer_top_k=8
        ),
        model=ModelConfig(
            dim=16,
            hidden_dim=12,
            out_dim=16 if residual else 8,
            aggregator=aggregator,
            residual=residual,
            text_buckets=512,
        ),
        train=TrainConfig(
            epochs=1,
            steps_per_epoch=2,
            batch_size=32,
            num_random_negatives=40,
            max_hard_negatives=2,
            num_workers=0,
            checkpoint_every=0,
            warmup_steps=1,
        ),
    )


@pytest.fixture(scope="session")
def run_dir(graph_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    train(run_config(), graph_dir, out)
    return out


@pytest.fixture(scope="session")
def attention_run_dir(graph_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "attention"
    train(run_config("attention"), graph_dir, out)
    return out
