"""benchmarks/graph_build.py: its measuring child builds a graph and reports it."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from pinsage.data.synth import SynthConfig, synthesize
from pinsage.graph import load_graph

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _child_script() -> str:
    spec = importlib.util.spec_from_file_location(
        "graph_build_benchmark", BENCHMARKS / "graph_build.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._CHILD


def test_the_child_reports_the_build_it_ran(tmp_path):
    data = synthesize(
        SynthConfig(num_items=300, num_users=100, num_edges=3000, test_fraction=0.0),
        tmp_path / "data",
    )
    out = tmp_path / "graph"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _child_script(),
            str(data / "interactions.parquet"),
            str(out),
            str(BENCHMARKS),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    graph = load_graph(out)
    assert figures["num_edges"] == graph.manifest.num_edges > 0
    assert figures["peak_kib"] >= figures["baseline_kib"] > 0
    assert figures["seconds"] > 0 and figures["sort_seconds"] >= 0
