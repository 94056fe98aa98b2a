"""jobs/*.py: run directly and through `ray job submit` against a local Ray head."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pinsage.pipeline import STAGES
from tests.helpers import TINY, free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AGENT_RETRIES, AGENT_WAIT_S = 40, 3  # up to 2 minutes for the job agent to come up


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A local Ray head (2 CPUs, job server on a free port); its job API address."""
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    port, dashboard = free_port(), free_port()
    start = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--num-cpus",
        "2",
        "--port",
        str(port),
        "--dashboard-port",
        str(dashboard),
        "--include-dashboard",
        "true",
        "--disable-usage-stats",
    ]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=180)
    try:
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        subprocess.run(
            [str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=120
        )


def _submit(address: str, env: dict, job: str, *args: str) -> str:
    cmd = [
        str(BIN / "ray"),
        "job",
        "submit",
        "--address",
        address,
        "--",
        sys.executable,
        str(REPO / "jobs" / job),
        *args,
    ]
    # Right after `ray start` (on a busy machine, for a minute) the head's job agent
    # may not be up yet: Ray refuses the submission with "No available agent to
    # submit job, please try again later", before anything runs, so it is retried.
    for _ in range(AGENT_RETRIES):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if "No available agent" not in done.stdout + done.stderr:
            break
        time.sleep(AGENT_WAIT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_jobs_under_ray_job_submit_then_directly(ray_head, tmp_path):
    address, env = ray_head
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.replace("engine: local", "engine: ray"))
    root = tmp_path / "root"
    args = ("--config", str(config), "--root", str(root))
    for job in ("train.py", "embed.py", "index.py"):
        extra = ("--workers", "2") if job == "train.py" else ()  # DDP on the cluster
        out = _submit(address, env, job, *args, *extra)
        assert "succeeded" in out
    manifest = json.loads((root / "manifest.json").read_text())
    assert list(manifest["stages"]) == list(STAGES)
    assert manifest["stages"]["train"]["workers"] == 2
    assert not any(s["skipped"] for s in manifest["stages"].values())
    assert (root / "index/_SUCCESS").exists()
    # run directly, a complete stage is skipped; --overwrite redoes it
    direct = [sys.executable, str(REPO / "jobs/index.py"), *args]
    subprocess.run(direct, check=True, capture_output=True, timeout=300)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["stages"]["index"]["skipped"]
    subprocess.run(
        [*direct, "--overwrite"], check=True, capture_output=True, timeout=300
    )
    manifest = json.loads((root / "manifest.json").read_text())
    assert not manifest["stages"]["index"]["skipped"]
