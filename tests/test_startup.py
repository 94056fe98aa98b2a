"""Fast start: help and lookups import no heavy library they do not use (issue 18).

Each case runs the CLI in a fresh interpreter and lists which heavy modules got
imported: `--help` of any command needs none, `query` needs FAISS but never torch or
Ray (seconds of start-up each).
"""

import json
import subprocess
import sys

import click
import pytest

from pinsage.cli import COMMANDS, cli

HEAVY = ("torch", "ray", "faiss", "pyarrow", "numpy", "fastapi", "scipy")

_PROBE = """
import json, sys
sys.argv = ["pinsage", *json.loads(sys.argv[1])]
from pinsage.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def _imported(args: list[str]) -> list[str]:
    probe = _PROBE.format(heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(args)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["query", "--help"],
        ["train", "--help"],
        ["data", "synth", "--help"],
        ["index", "build", "--help"],
        ["embed", "--help"],
        ["pipeline", "--help"],
    ],
)
def test_help_imports_nothing_heavy(args):
    assert _imported(args) == []


def test_query_loads_faiss_but_not_torch_or_ray(tmp_path):
    # A tiny index: ids, vectors and a flat FAISS file, as `index build` writes them.
    import numpy as np

    from pinsage.atomic import publish
    from pinsage.index.build import build_index
    from pinsage.infer.output import matrix_batches, write_parts

    emb = tmp_path / "emb"
    emb.mkdir()
    ids = __import__("pyarrow").array(np.arange(20, dtype=np.int64))
    vectors = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    write_parts(emb, "item", ids, matrix_batches(vectors))
    publish(emb, {"count": 20, "dim": 4, "contexts": None, "checkpoint_sha256": "x"})
    build_index(emb, tmp_path / "index", kind="flat")
    loaded = _imported(["query", "--index", str(tmp_path / "index"), "--item", "3"])
    assert "faiss" in loaded
    assert "torch" not in loaded and "ray" not in loaded


def test_lazy_help_lines_are_the_commands_own():
    for name, (_, _, line) in COMMANDS.items():
        command = cli.get_command(click.Context(cli), name)
        assert command.name == name
        assert (command.help or "").strip().splitlines()[0] == line
