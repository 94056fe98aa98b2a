"""The environment's errors are messages: one `error: PATH: cause` line, exit 2.

An output path that cannot be a folder, a full disk (simulated: as root, chmod does not
stop writes) or a checkpoint that does not fit the graph: no traceback unless
--debug, and nothing half-written.
"""

import errno
import pathlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pinsage.atomic import publish
from pinsage.cli import _environment_error
from pinsage.data.synth import SynthConfig, synthesize
from pinsage.graph import build_graph
from pinsage.infer.output import matrix_batches, write_parts
from pinsage.train import train
from tests.helpers import assert_one_error_line, run_cli, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data folder, graph, run): a few training steps on a small generated graph."""
    root = tmp_path_factory.mktemp("env")
    data = synthesize(
        SynthConfig(num_items=60, num_users=40, num_edges=600, num_clusters=3),
        root / "data",
    )
    build_graph(
        data / "interactions.parquet", root / "graph", items=data / "items.parquet"
    )
    cfg = tiny_config(epochs=1, steps_per_epoch=2, num_random_negatives=20)
    train(cfg, root / "graph", root / "run")
    return data, root / "graph", root / "run"


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("env_emb") / "emb"
    vectors = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    write_parts(folder, "item", pa.array(range(40)), matrix_batches(vectors))
    publish(folder, {"count": 40, "dim": 8, "checkpoint_sha256": "x"})
    return folder


def _command(name, trained, embeddings, out):
    data, graph, run = trained
    return {
        "graph build": ["graph", "build", "--interactions"]
        + [str(data / "interactions.parquet"), "--out", str(out)],
        "train": ["train", "--config", str(run / "config.yaml"), "--graph", str(graph)]
        + ["--out", str(out), "--device", "cpu"],
        "embed": ["embed", "--run", str(run), "--graph", str(graph), "--out", str(out)]
        + ["--engine", "local"],
        "index build": ["index", "build", "--embeddings", str(embeddings), "--out"]
        + [str(out), "--kind", "flat"],
    }[name]


def _no_leftovers(folder) -> None:
    assert not [p for p in folder.rglob("*") if ".tmp-" in p.name]


COMMANDS = ["graph build", "train", "embed", "index build"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("below", ["sub", "sub/out"])
def test_output_under_a_file_is_one_error_line(
    trained, embeddings, tmp_path, command, below, monkeypatch, capsys
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    out = blocker / below
    args = _command(command, trained, embeddings, out)
    code, stdout, err = run_cli(["-q", *args], monkeypatch, capsys)
    assert code == 2 and not stdout
    assert_one_error_line(err, str(blocker))
    assert "Not a directory" in err or "File exists" in err
    assert blocker.read_text() == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    with pytest.raises(OSError):  # --debug: the traceback, for a bug report
        run_cli(["--debug", "-q", *args], monkeypatch, capsys)


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("command", "writer"),
    [
        ("graph build", "numpy.save"),
        ("embed", "pyarrow.parquet.write_table"),
        ("index build", "pyarrow.parquet.write_table"),
    ],
)
def test_disk_full_is_one_error_line_and_leaves_nothing(
    trained, embeddings, tmp_path, command, writer, monkeypatch, capsys
):
    out = tmp_path / "out"
    args = _command(command, trained, embeddings, out)
    monkeypatch.setattr(writer, _disk_full)
    code, _, err = run_cli(["-q", *args], monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, f"{out}: No space left on device", "free space")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_while_checkpointing_keeps_the_last_checkpoint(
    trained, tmp_path, monkeypatch, capsys
):
    _, graph, run = trained
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["train"]["checkpoint_every"] = 1  # a checkpoint a step: the 2nd fails
    (tmp_path / "every-step.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    real_write = pathlib.Path.write_bytes

    def full_after_one(self, data):
        if list((out / "checkpoints").glob("step-*.pt")):
            raise OSError(errno.ENOSPC, "No space left on device")  # as write() does
        return real_write(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", full_after_one)
    args = ["-q", "train", "--config", str(tmp_path / "every-step.yaml")]
    args += ["--graph", str(graph), "--out", str(out), "--device", "cpu"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, "No space left on device", str(out / "checkpoints"))
    saved = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert saved == ["latest", "step-00000001.pt"], saved
    _no_leftovers(out)


def test_only_the_environment_s_oserrors_are_messages(
    trained, tmp_path, monkeypatch, capsys
):
    assert _environment_error(OSError(errno.EBADF, "Bad file descriptor", "x")) is None
    assert _environment_error(FileNotFoundError(errno.ENOENT, "gone")) is None
    assert _environment_error(OSError("no errno")) is None
    assert "x: Permission denied" in _environment_error(
        PermissionError(errno.EACCES, "Permission denied", "x")
    )

    def bug(*args, **kwargs):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr("pinsage.graph.build_graph", bug)
    data = trained[0]
    args = ["graph", "build", "--interactions", str(data / "interactions.parquet")]
    with pytest.raises(OSError, match="Bad file descriptor"):  # exit 1, traceback
        run_cli([*args, "--out", str(tmp_path / "g")], monkeypatch, capsys)


def _other_graph(trained, tmp_path, kind: str):
    data = trained[0]
    if kind == "another shape":
        other = synthesize(
            SynthConfig(num_items=50, num_users=30, num_edges=400, num_clusters=3),
            tmp_path / "data",
        )
        build_graph(other / "interactions.parquet", tmp_path / "g")
        return tmp_path / "g"
    items = pq.read_table(data / "items.parquet").drop_columns(["price"])
    pq.write_table(items, tmp_path / "items.parquet")
    build_graph(
        data / "interactions.parquet", tmp_path / "g", items=tmp_path / "items.parquet"
    )
    return tmp_path / "g"


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("another shape", "was trained on a graph with"),
        ("other features", "does not fit the graph"),
    ],
)
def test_eval_on_a_graph_the_run_was_not_trained_on_exits_2(
    trained, tmp_path, kind, fragment, monkeypatch, capsys
):
    data, _, run = trained
    graph = _other_graph(trained, tmp_path, kind)
    args = ["-q", "eval", "--run", str(run), "--graph", str(graph)]
    code, _, err = run_cli(
        [*args, "--test", str(data / "test.parquet")], monkeypatch, capsys
    )
    assert code == 2
    assert_one_error_line(err, str(run), fragment, "pass the graph the run")
    assert not (run / "eval.json").exists()
