"""Leftovers of killed writers: removed by the next writer, never while theirs lives."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pinsage.atomic import (
    UNCHECKABLE_AGE_S,
    atomic_dir,
    read_json,
    remove_dead_leftovers,
    remove_dead_leftovers_in,
    temp_sibling,
)
from pinsage.config import load_config
from pinsage.errors import DataError
from pinsage.graph import load_graph
from pinsage.pipeline import run_pipeline
from tests.helpers import TINY, run_cli


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def live_pid():
    """The pid of a process that sleeps until the module's tests are done."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _leftover(out: Path, pid: int | None, kind: str = "tmp", host: str = "") -> Path:
    """A directory named as ``pid``'s temporary sibling of ``out``, with a file."""
    ours = temp_sibling(out, kind).name  # .NAME.KIND-HOST-PID-XXXXXXXX
    prefix, _, rest = ours.rpartition(f".{kind}-")
    our_host, _, suffix = rest.split("-")
    writer = "" if pid is None else f"{host or our_host}-{pid}-"
    path = out.parent / f"{prefix}.{kind}-{writer}{suffix}"
    path.mkdir(parents=True)
    (path / "part.bin").write_bytes(b"x" * 1000)
    return path


def test_temp_siblings_name_their_writer(tmp_path):
    name = temp_sibling(tmp_path / "index").name
    assert name.startswith(".index.tmp-") and f"-{os.getpid()}-" in name


@pytest.mark.parametrize("kind", ["tmp", "old"])
def test_a_dead_writers_leftover_is_removed_a_live_ones_kept(
    tmp_path, dead_pid, live_pid, kind
):
    out = tmp_path / "index"
    dead = _leftover(out, dead_pid, kind)
    live = _leftover(out, live_pid, kind)
    other = _leftover(tmp_path / "graph", dead_pid, kind)  # another artifact's
    assert remove_dead_leftovers(out) == [dead]
    assert not dead.exists() and live.exists() and other.exists()
    assert remove_dead_leftovers_in(tmp_path) == [other]
    assert live.exists()


def test_an_uncheckable_leftover_is_removed_only_when_old(tmp_path, dead_pid):
    out = tmp_path / "embeddings"
    legacy = _leftover(out, None)  # named before names carried a pid
    remote = _leftover(out, dead_pid, host="abcdef")  # another host's pid
    assert remove_dead_leftovers(out) == []
    old = time.time() - UNCHECKABLE_AGE_S - 60
    for path in (legacy, remote):
        os.utime(path, (old, old))
    assert sorted(remove_dead_leftovers(out)) == sorted([legacy, remote])


def test_atomic_dir_clears_dead_leftovers_first(tmp_path, dead_pid, live_pid):
    out = tmp_path / "graph"
    dead, live = _leftover(out, dead_pid), _leftover(out, live_pid, "old")
    with atomic_dir(out) as tmp:
        (tmp / "_SUCCESS").touch()
    assert not dead.exists() and live.exists() and (out / "_SUCCESS").exists()
    assert {p.name for p in tmp_path.iterdir()} == {"graph", live.name}


@pytest.mark.parametrize("command", ["data synth", "graph build"])
def test_each_command_clears_its_own_dead_leftovers(
    tmp_path, monkeypatch, capsys, dead_pid, live_pid, command
):
    data, graph = tmp_path / "d", tmp_path / "g"
    synth = ["data", "synth", "--out", str(data), "--items", "50", "--users", "30"]
    assert run_cli([*synth, "--edges", "300"], monkeypatch, capsys)[0] == 0
    out = data if command == "data synth" else graph
    dead, live = _leftover(out, dead_pid), _leftover(out, live_pid)
    if command == "data synth":
        args = [*synth, "--edges", "300", "--overwrite"]
    else:
        interactions = str(data / "interactions.parquet")
        args = ["graph", "build", "--interactions", interactions, "--out", str(out)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 0, err
    assert not dead.exists() and live.exists()


def test_the_pipeline_keeps_a_live_writers_leftover(tmp_path, dead_pid, live_pid):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    root = tmp_path / "root"
    dead = _leftover(root / "index", dead_pid)
    live = _leftover(root / "embeddings", live_pid)  # a standalone `embed` into it
    run_pipeline(load_config(config), root, stages=["data"])
    assert not dead.exists() and live.exists()


@pytest.mark.parametrize(
    ("text", "match"),
    [("[1, 2]", "holds a JSON list"), ('"x"', "holds a JSON str"), ("{", "not valid")],
)
def test_a_manifest_must_be_a_json_object(tmp_path, text, match):
    (tmp_path / "g").mkdir()
    (tmp_path / "g/_SUCCESS").touch()
    (tmp_path / "g/manifest.json").write_text(text)
    with pytest.raises(DataError, match=match) as info:
        read_json(tmp_path / "g/manifest.json")
    assert str(tmp_path / "g/manifest.json") in str(info.value)
    with pytest.raises(DataError, match=match):
        load_graph(tmp_path / "g")
