"""The package graph: no import cycles, leaves that are leaves, docs drawn from code.

The graph comes from the source (`tests.package_graph`, independent of Python's
import machinery); the leaves are checked by what a fresh interpreter has loaded.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.package_graph import cycles, mermaid, module_graph, package_graph

DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_packages_or_modules():
    assert cycles(package_graph()) == []
    assert cycles(module_graph()) == []


def test_the_docs_draw_the_package_graph_the_code_has():
    assert mermaid() in DOCS.read_text(), (
        "docs/architecture.md's package graph is stale: paste the output of "
        "`python -m tests.package_graph` into it"
    )


def _loaded(statement: str, block_faiss: bool = False) -> list[str]:
    """The modules a fresh interpreter holds after ``statement``."""
    probe = "import json, sys\n"
    probe += "sys.modules['faiss'] = None\n" if block_faiss else ""
    probe += f"{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("pinsage.config", {"pinsage", "pinsage.config", "pinsage.errors"}),
        ("pinsage.errors", {"pinsage", "pinsage.errors"}),
        ("pinsage.nn", {"pinsage", "pinsage.config", "pinsage.errors"}),
    ],
)
def test_leaves_load_neither_data_writers_nor_the_graph_store(module, allowed):
    loaded = _loaded(f"import {module}")
    ours = {m for m in loaded if m.startswith("pinsage")}
    own = {m for m in ours if m == module or m.startswith(module + ".")}
    assert ours - allowed - own == set()
    assert "pyarrow" not in loaded


def test_commands_without_faiss_work_without_it(tmp_path):
    """`data synth` and `graph build` on a machine where FAISS is not installed."""
    run = (
        "from pinsage.cli import main\n"
        "for args in {commands}:\n"
        "    sys.argv = ['pinsage', '-q', *args]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, (args, exc.code)"
    )
    commands = [
        ["data", "synth", "--out", str(tmp_path / "d"), "--items", "60"]
        + ["--users", "40", "--edges", "400", "--clusters", "3"],
        ["graph", "build", "--interactions", str(tmp_path / "d/interactions.parquet")]
        + ["--out", str(tmp_path / "g")],
    ]
    loaded = _loaded(run.format(commands=json.dumps(commands)), block_faiss=True)
    assert (tmp_path / "g" / "_SUCCESS").exists()
    assert "faiss" in loaded  # as None: every import of it would have failed
