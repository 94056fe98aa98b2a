"""The tiny generated graph (with item features) the training tests train on."""

import pytest

from pinsage.data.synth import SynthConfig, synthesize
from pinsage.graph import build_graph


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = synthesize(
        SynthConfig(num_items=300, num_users=150, num_edges=4000, num_clusters=5),
        root / "d",
    )
    build_graph(data / "interactions.parquet", root / "g", items=data / "items.parquet")
    return root / "g"


@pytest.fixture(scope="module")
def id_graph_dir(tmp_path_factory):
    """A graph without item features: the ID embedding is the only input."""
    root = tmp_path_factory.mktemp("train-ids")
    data = synthesize(
        SynthConfig(num_items=120, num_users=90, num_edges=1500, num_clusters=4),
        root / "d",
    )
    build_graph(data / "interactions.parquet", root / "g")
    return root / "g"
