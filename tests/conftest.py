"""The tiny generated data and graphs every package's tests share (session-wide).

`tiny_data`: `TINY_SYNTH` written by `pinsage.data.synth`; `graph_dir`: its graph,
with item features; `id_graph_dir`: a smaller graph without features (the ID
embedding is the only input); `run_dir` and `attention_run_dir`: briefly trained
2-layer runs on `graph_dir`. Tests read them and never write into them.
"""

from pathlib import Path

import pytest

from pinsage.data.synth import SynthConfig, synthesize
from pinsage.graph import build_graph
from pinsage.train import train
from tests.helpers import TINY_SYNTH, run_config


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The data folder of `TINY_SYNTH` (interactions, items, test split)."""
    return synthesize(TINY_SYNTH, tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="session")
def graph_dir(tiny_data, tmp_path_factory) -> Path:
    """`tiny_data`'s graph, with its item features."""
    out = tmp_path_factory.mktemp("tiny-graph") / "graph"
    build_graph(
        tiny_data / "interactions.parquet", out, items=tiny_data / "items.parquet"
    )
    return out


@pytest.fixture(scope="session")
def id_graph_dir(tmp_path_factory) -> Path:
    """A graph without item features: the ID embedding is the only input."""
    root = tmp_path_factory.mktemp("tiny-ids")
    data = synthesize(
        SynthConfig(num_items=120, num_users=90, num_edges=1500, num_clusters=4),
        root / "data",
    )
    build_graph(data / "interactions.parquet", root / "graph")
    return root / "graph"


@pytest.fixture(scope="session")
def run_dir(graph_dir, tmp_path_factory) -> Path:
    """A briefly trained 2-layer run on `graph_dir` (`run_config`)."""
    out = tmp_path_factory.mktemp("run") / "run"
    train(run_config(), graph_dir, out)
    return out


@pytest.fixture(scope="session")
def attention_run_dir(graph_dir, tmp_path_factory) -> Path:
    """`run_dir` with the attention aggregator."""
    out = tmp_path_factory.mktemp("run") / "attention"
    train(run_config("attention"), graph_dir, out)
    return out
