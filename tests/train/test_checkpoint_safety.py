"""Loading a checkpoint never runs code: crafted files are refused with exit 2.

A pickle may name any callable to run while it loads. Checkpoints are read
weights-only, and ``checkpoints/latest`` may only name a file beside it; these tests
plant a checkpoint whose unpickling would create a file and run every command that
loads one.
"""

import pathlib

import pytest
import torch

from pinsage.errors import CheckpointError
from pinsage.run import load_checkpoint
from tests.helpers import TINY, run_cli


class _Touch:
    """Unpickling this calls ``Path.touch(marker)``: any code could run instead."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _crafted(path: pathlib.Path, marker: pathlib.Path) -> pathlib.Path:
    """A checkpoint-shaped file whose model, once unpickled, has touched ``marker``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {"model": _Touch(marker), "optimizer": [], "config": {}, "step": 1}
    torch.save(checkpoint, path)
    return path


def _plant(run: pathlib.Path, marker: pathlib.Path) -> pathlib.Path:
    """Make the crafted checkpoint ``run``'s latest one."""
    path = _crafted(run / "checkpoints" / "step-00000001.pt", marker)
    (run / "checkpoints" / "latest").write_text(path.name + "\n")
    return path


def test_the_crafted_checkpoint_would_run_code_if_unpickled(tmp_path):
    # Guards the tests below: without weights_only this file writes the marker.
    path = _crafted(tmp_path / "c.pt", tmp_path / "marker")
    torch.load(path, weights_only=False)
    assert (tmp_path / "marker").exists()


def test_load_refuses_it_without_running_it(tmp_path):
    path = _plant(tmp_path / "run", tmp_path / "marker")
    with pytest.raises(CheckpointError, match="refused") as info:
        load_checkpoint(tmp_path / "run")
    assert str(path) in str(info.value)
    assert not (tmp_path / "marker").exists()


def _commands(tmp_path, graph_dir):
    run, data = str(tmp_path / "run"), graph_dir.parent / "d"
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    graph = ["--graph", str(graph_dir)]
    return {
        "train --resume": [
            "train",
            "--config",
            str(config),
            *graph,
            "--out",
            run,
            "--resume",
        ],
        "eval": ["eval", "--run", run, *graph, "--test", str(data / "test.parquet")],
        "embed": [
            "embed",
            "--run",
            run,
            *graph,
            "--out",
            str(tmp_path / "emb"),
            "--engine",
            "local",
        ],
        "pipeline": [
            "pipeline",
            "--config",
            str(config),
            "--root",
            str(tmp_path),
            "--only",
            "train",
        ],
    }


@pytest.mark.parametrize("command", ["train --resume", "eval", "embed", "pipeline"])
def test_every_command_refuses_it_with_exit_2(
    graph_dir, tmp_path, monkeypatch, capsys, command
):
    args = _commands(tmp_path, graph_dir)[command]
    if command == "pipeline":  # its train stage needs the root's data and graph
        first = [*args[:-2], "--only", "data", "--only", "graph"]
        assert run_cli(first, monkeypatch, capsys)[0] == 0
    path = _plant(tmp_path / "run", tmp_path / "marker")
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 2, err
    assert "refused" in err and str(path) in err and "Traceback" not in err
    assert not (tmp_path / "marker").exists()
    assert not (tmp_path / "emb").exists()


@pytest.mark.parametrize(
    "pointer", ["../outside.pt", "../../outside.pt", "sub/step.pt", "..", "ABSOLUTE"]
)
def test_latest_may_only_name_a_file_beside_it(tmp_path, pointer):
    outside = _crafted(tmp_path / "outside.pt", tmp_path / "marker")
    if pointer == "ABSOLUTE":
        pointer = str(outside)
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "latest").write_text(pointer + "\n")
    with pytest.raises(CheckpointError, match="not a file in"):
        load_checkpoint(tmp_path / "run")
    assert not (tmp_path / "marker").exists()
