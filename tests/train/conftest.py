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
