"""`pinsage pipeline`: stages in order, skipped when complete, safe to kill anywhere."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pinsage.config import load_config
from pinsage.errors import ConfigError
from pinsage.pipeline import STAGES, config_sha256, run_pipeline
from tests.helpers import TINY, run_cli

# Small enough for seconds a stage; checkpoints every 4 steps so a kill mid-training
# finds one to resume from.
ARTIFACTS = ("data", "graph", "embeddings", "index")


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory) -> Path:
    """An uninterrupted run root of the tiny config."""
    root = tmp_path_factory.mktemp("reference") / "root"
    run_pipeline(load_config(config), root)
    return root


def _index_of(root: Path) -> tuple[np.ndarray, bytes]:
    ids = (root / "index/ids.parquet").read_bytes()
    return np.load(root / "index/vectors.npy"), ids


def test_all_stages_then_only_skips(config, reference, monkeypatch, capsys):
    manifest = json.loads((reference / "manifest.json").read_text())
    assert list(manifest["stages"]) == list(STAGES)
    assert not any(s["skipped"] for s in manifest["stages"].values())
    assert manifest["config_sha256"] == config_sha256(load_config(config))
    assert manifest["checkpoint_sha256"] and manifest["code_version"]
    assert (reference / "run/eval.json").exists()
    index_mtime = (reference / "index/manifest.json").stat().st_mtime_ns
    args = ["-q", "pipeline", "--config", str(config), "--root", str(reference)]
    code, out, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0 and out.count("skipped (complete)") == len(STAGES)
    again = json.loads((reference / "manifest.json").read_text())
    assert all(s["skipped"] for s in again["stages"].values())
    # a skipped stage keeps the time of the run that did the work
    assert again["stages"]["train"]["seconds"] == manifest["stages"]["train"]["seconds"]
    assert (reference / "index/manifest.json").stat().st_mtime_ns == index_mtime


def test_another_config_on_the_same_root_is_refused(
    reference, tmp_path, monkeypatch, capsys
):
    other = tmp_path / "other.yaml"
    other.write_text(TINY.replace("num_walks: 30", "num_walks: 31"))
    args = ["pipeline", "--config", str(other), "--root", str(reference)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and "holds a run of another config" in err


def test_where_it_runs_is_not_what_it_computes(config, reference, monkeypatch, capsys):
    # Another device or producer count (CLI overrides of `execution`): the same run,
    # so every stage is complete.
    args = ["pipeline", "--config", str(config), "--root", str(reference)]
    code, out, _ = run_cli(
        [*args, "--device", "cpu", "--producers", "0", "--producer", "process"],
        monkeypatch,
        capsys,
    )
    assert code == 0 and out.count("skipped (complete)") == len(STAGES)
    code, _, err = run_cli([*args, "--device", "tpu"], monkeypatch, capsys)
    assert code == 2 and "execution.device must be auto, cpu, cuda or cuda:N" in err


def test_only_runs_the_named_stages_and_overwrite_redoes_them(config, reference):
    before = (reference / "index/manifest.json").stat().st_mtime_ns
    manifest = run_pipeline(
        load_config(config), reference, stages=["index"], overwrite=True
    )
    assert not manifest.stages["index"].skipped
    assert (reference / "index/manifest.json").stat().st_mtime_ns != before


def test_a_second_pipeline_on_a_root_in_use_is_refused(config, reference):
    with open(reference / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running pipeline does
        held.truncate(0)
        held.write("4242\n")
        held.flush()
        with pytest.raises(ConfigError, match=r"another pipeline \(pid 4242\)"):
            run_pipeline(load_config(config), reference)
    assert run_pipeline(load_config(config), reference).stages  # released: runs


# Runs `pinsage pipeline` with one function wrapped: after it returns, the wrapper
# touches MARKER and sleeps, so the test kills a process that is certainly mid-stage
# (a poll for files alone could find the pipeline already finished).
_PAUSED_PIPELINE = """
import importlib, pathlib, sys, time
from pinsage.cli import main
module_name, attr, marker = sys.argv[1:4]
module = importlib.import_module(module_name)
real = getattr(module, attr)
def paused(*args, **kwargs):
    out = real(*args, **kwargs)
    pathlib.Path(marker).touch()
    time.sleep(600)
    return out
setattr(module, attr, paused)
sys.argv = ["pinsage", *sys.argv[4:]]
main()
"""

KILL_POINTS = {
    # mid-training, once its first checkpoint is written
    "train": ("pinsage.train.loop", "save_checkpoint"),
    # mid-embedding: the vectors written to the temporary folder, not yet published
    "embed": ("pinsage.infer.job", "_write"),
    # mid-index build: the index file written to the temporary folder
    "index": ("faiss", "write_index"),
}


def _paused_pipeline(config: Path, root: Path, stage: str, marker: Path):
    module, attr = KILL_POINTS[stage]
    return subprocess.Popen(
        [sys.executable, "-c", _PAUSED_PIPELINE, module, attr, str(marker)]
        + ["-q", "pipeline", "--config", str(config), "--root", str(root)],
        start_new_session=True,  # its own process group: the kill takes every child
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(KILL_POINTS))
def test_killed_anywhere_then_rerun_gives_the_same_index(
    config, reference, tmp_path, stage
):
    root, marker = tmp_path / "root", tmp_path / "paused"
    proc = _paused_pipeline(config, root, stage, marker)
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, f"never reached the {stage} stage"
        time.sleep(0.02)
    assert proc.poll() is None  # paused mid-stage, so the kill below kills it
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    proc.stderr.close()
    for name in ARTIFACTS:  # each artifact is complete or absent, never half-written
        assert not (root / name).exists() or (root / name / "_SUCCESS").exists()
    assert stage not in _stages_done(root)  # killed inside it
    run_pipeline(load_config(config), root)
    assert not [*root.glob(".*.tmp-*"), *root.glob(".*.old-*")]  # leftovers removed
    vectors, ids = _index_of(root)
    want_vectors, want_ids = _index_of(reference)
    assert ids == want_ids
    np.testing.assert_array_equal(vectors, want_vectors)


def _stages_done(root: Path) -> list[str]:
    """The stages the root's manifest records as finished."""
    try:
        return list(json.loads((root / "manifest.json").read_text())["stages"])
    except (OSError, ValueError, KeyError):
        return []


def test_training_selects_on_validation_and_reads_the_test_file_once(
    config, tmp_path, monkeypatch
):
    import pinsage.eval.job as job

    read: list[str] = []
    real_read = job.read_test_csr

    def recording_read(path, graph):
        read.append(Path(path).name)
        return real_read(path, graph)

    monkeypatch.setattr(job, "read_test_csr", recording_read)
    root = tmp_path / "root"
    run_pipeline(load_config(config), root, stages=("data", "graph", "train"))
    assert read == ["validation.parquet"]  # training never looked at the test file
    fit = pq.read_table(root / "split/fit.parquet")
    held = pq.read_table(root / "split/validation.parquet")
    full = pq.read_table(root / "data/interactions.parquet")
    assert fit.num_rows + held.num_rows == full.num_rows
    assert 0.05 < held.num_rows / full.num_rows < 0.15  # data.validation_share 0.1
    run_graph = json.loads((root / "fit-graph/manifest.json").read_text())
    assert (
        run_graph["num_edges"]
        < json.loads((root / "graph/manifest.json").read_text())["num_edges"]
    )
    curve = [json.loads(line) for line in (root / "run/metrics.jsonl").open()]
    assert [r["epoch"] for r in curve if "recall@20" in r] == [1, 2]
    run_pipeline(load_config(config), root, stages=("eval",))
    assert read[1:] == ["test.parquet", "test.parquet"]  # the model, the baselines
    result = json.loads((root / "run/eval.json").read_text())
    assert list(result["baselines"]) == ["popularity", "itemknn", "gfcf"]
    for scores in result["baselines"].values():
        assert 0.0 < scores["recall@20"] <= 1.0


def test_data_without_a_test_split_says_so(tmp_path):
    from pinsage.data.synth import SynthConfig, synthesize

    data = synthesize(
        SynthConfig(num_items=100, num_users=60, num_edges=900), tmp_path / "d"
    )
    (data / "test.parquet").unlink()  # the user's own data: no test file
    source = tmp_path / "own"
    source.mkdir()
    for name in ("interactions", "items"):
        (source / f"{name}.parquet").write_bytes(
            (data / f"{name}.parquet").read_bytes()
        )
    config = tmp_path / "own.yaml"
    config.write_text(
        TINY.split("synth:")[0]
        + f"data: {{path: {source}, format: parquet, validation_share: 0}}\n"
        + "\n".join(TINY.splitlines()[3:])
    )
    root = tmp_path / "root"
    run_pipeline(load_config(config), root, stages=("data", "graph", "train", "eval"))
    stage = json.loads((root / "manifest.json").read_text())["stages"]["eval"]
    assert stage["skipped"] and "data.test_fraction" in stage["reason"]
    assert not (root / "run/eval.json").exists()
