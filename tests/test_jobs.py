"""jobs/*.py: run directly and through `ray job submit` against a two-node Ray cluster.

The cluster is started as a real one is (issue 16): `ray start --head`, then a worker
node joins it with `ray start --address HEAD`; both raylets run on this machine, each
with its own CPU and object store. Ray's own records (`ray list`) must show the
training and the embedding job's work on both nodes.
"""

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from pinsage.pipeline import STAGES
from tests.helpers import TINY, free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")
AGENT_RETRIES, AGENT_WAIT_S = 40, 3  # up to 2 minutes for the job agent to come up
NODES = 2  # a head and a worker node, one CPU each: every job has to use both
# Ray's default object store is 30% of the memory per node; the tiny runs need little.
OBJECT_STORE_BYTES = 300 * 1024**2


class RayCluster(NamedTuple):
    """How the tests reach the cluster of `ray_cluster`."""

    jobs: str  # the job API address (the head's dashboard), for `ray job submit`
    gcs: str  # the head's address, for `ray start --address` and `ray list`
    env: dict[str, str]  # every Ray process and client here runs with the token
    nodes: frozenset[str]  # the ids of its alive nodes


def _ray_start(env: dict[str, str], *args: str) -> None:
    """`ray start ARGS`: a node of one CPU, with ports of its own on this machine."""
    start = [
        RAY,
        "start",
        *args,
        "--num-cpus",
        "1",
        "--object-store-memory",
        str(OBJECT_STORE_BYTES),
        # Two nodes on one machine would both take Ray's fixed default (52365).
        "--dashboard-agent-listen-port",
        str(free_port()),
        "--disable-usage-stats",
    ]
    done = subprocess.run(start, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _run_ray_list(
    gcs: str, env: dict[str, str], kind: str, *filters: str
) -> subprocess.CompletedProcess:
    cmd = [RAY, "list", kind, "--address", gcs, "--limit", "10000", "--format", "json"]
    for condition in filters:
        cmd += ["--filter", condition]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _ray_list(gcs: str, env: dict[str, str], kind: str, *filters: str) -> list[dict]:
    """Ray's state records of one kind (`ray list KIND`), as the cluster keeps them.

    Read through Ray's CLI, a process of its own: Ray reads its auth mode and token
    once per process, and this test process's Ray state stays as other tests left it.
    """
    done = _run_ray_list(gcs, env, kind, *filters)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout)


def _alive_nodes(gcs: str, env: dict[str, str]) -> frozenset[str]:
    """The ids of the cluster's alive nodes, once all `NODES` have joined."""
    for _ in range(AGENT_RETRIES):
        # Right after `ray start` the head's state API may not answer yet, and the
        # worker node registers with the head after its `ray start` returns.
        done = _run_ray_list(gcs, env, "nodes", "state=ALIVE")
        alive = json.loads(done.stdout) if done.returncode == 0 else []
        if len(alive) == NODES:
            return frozenset(node["node_id"] for node in alive)
        time.sleep(AGENT_WAIT_S)
    pytest.fail(f"the cluster at {gcs} never had {NODES} alive nodes")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """A head and a worker node (one CPU each; job API on a free port).

    Token authentication with a token of the fixture's own, given to every
    `ray start` and every client as RAY_AUTH_TOKEN, as every node and client of a real
    cluster needs it (not `~/.ray/auth_token`, which `ray start` does not write).
    """
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    port, dashboard = free_port(), free_port()
    gcs = f"127.0.0.1:{port}"
    try:
        _ray_start(
            env,
            "--head",
            "--port",
            str(port),
            "--dashboard-port",
            str(dashboard),
            "--include-dashboard",
            "true",
        )
        _ray_start(env, "--address", gcs)
        yield RayCluster(
            f"http://127.0.0.1:{dashboard}", gcs, env, _alive_nodes(gcs, env)
        )
    finally:  # stops both nodes: every Ray process on this machine
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)


def _submit(cluster: RayCluster, job: str, *args: str) -> str:
    """`ray job submit` of ``jobs/JOB``; its submission id, once it succeeded."""
    for _ in range(AGENT_RETRIES):
        submission = f"{Path(job).stem}-{uuid.uuid4().hex[:8]}"
        cmd = [
            RAY,
            "job",
            "submit",
            "--address",
            cluster.jobs,
            "--submission-id",
            submission,
            "--",
            sys.executable,
            str(REPO / "jobs" / job),
            *args,
        ]
        # Right after `ray start` (on a busy machine, for a minute) the head's job
        # agent may not be up yet: Ray refuses the submission with "No available
        # agent to submit job, please try again later", before anything runs, so it
        # is retried.
        done = subprocess.run(
            cmd, env=cluster.env, capture_output=True, text=True, timeout=600
        )
        if "No available agent" not in done.stdout + done.stderr:
            break
        time.sleep(AGENT_WAIT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"Job '{submission}' succeeded" in done.stdout
    return submission


def _nodes_that_ran(
    cluster: RayCluster, submission: str, actor_class: str | None = None
) -> set[str]:
    """The nodes of a submitted job's finished tasks (or of its actors of a class).

    As `tests/test_multinode.py` reads them, from Ray's task and actor records.
    """
    [job] = _ray_list(cluster.gcs, cluster.env, "jobs", f"submission_id={submission}")
    own = f"job_id={job['job_id']}"
    if actor_class is not None:
        actors = _ray_list(cluster.gcs, cluster.env, "actors", own)
        return {a["node_id"] for a in actors if actor_class in a["class_name"]}
    tasks = _ray_list(cluster.gcs, cluster.env, "tasks", own, "state=FINISHED")
    return {t["node_id"] for t in tasks if t["node_id"]}


@pytest.mark.slow
def test_jobs_under_ray_job_submit_then_directly(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.replace("engine: local", "engine: ray"))
    # The run root has to be at the same path on every node: here both nodes are on
    # this machine, so tmp_path is; a real cluster needs shared storage for it.
    root = tmp_path / "root"
    args = ("--config", str(config), "--root", str(root))
    # DDP on the cluster: one CPU a node, so one Ray Train worker on each
    train = _submit(ray_cluster, "train.py", *args, "--workers", "2")
    embed = _submit(ray_cluster, "embed.py", *args)
    _submit(ray_cluster, "index.py", *args)
    assert _nodes_that_ran(ray_cluster, train, "RayTrainWorker") == ray_cluster.nodes
    # embed: its first round is split over its two model actors, one a node
    assert _nodes_that_ran(ray_cluster, embed) == ray_cluster.nodes
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
