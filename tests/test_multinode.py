"""The Ray jobs on a real multi-node Ray cluster (issue 16).

Ray's own test cluster (`ray.cluster_utils.Cluster`) runs a head and a worker node on
this machine, each a raylet with its own CPU and object store, as on a real cluster;
the jobs connect to it by address (`--ray-address`, `execution.ray_address`), and the
run and graph folders are on storage both nodes see, as a real cluster needs. The
embedding job's output must equal the local engine's, data-parallel training must
end where the same run on a local Ray ends, and Ray's task and actor records must
show work on both nodes. A node lost mid-job fails the embedding job with
`ClusterError` and nothing written, and the rerun completes.
"""

import threading
import time

import pytest
import ray
import torch
from ray.cluster_utils import Cluster
from ray.util.state import list_actors, list_tasks

import pinsage.infer.ray_engine as engine
from pinsage.errors import ClusterError
from pinsage.infer import RayOptions, embed
from pinsage.run import latest_checkpoint, load_checkpoint
from pinsage.train import train
from tests.helpers import assert_same_embeddings, tiny_config

NODES = 2


@pytest.fixture(scope="module")
def cluster():
    """A head and a worker node, one CPU each: every stage has to use both."""
    two_nodes = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": True}
    )
    for _ in range(NODES - 1):
        two_nodes.add_node(num_cpus=1)
    two_nodes.wait_for_nodes()
    yield two_nodes
    if ray.is_initialized():
        ray.shutdown()
    two_nodes.shutdown()


def _state(address: str, query):
    """``query()`` of Ray's state API, from a client connected to the cluster."""
    ray.init(address=address, log_to_driver=False)
    try:
        return query()
    finally:
        ray.shutdown()


def _actors(address: str) -> list:
    """Every actor the cluster has started (alive or not)."""
    return _state(address, lambda: list_actors(limit=10_000, timeout=60))


def _nodes_that_ran(address: str, actor_class: str | None = None) -> set[str]:
    """The nodes of the cluster's finished tasks (or of its actors of a class)."""
    if actor_class is not None:
        actors = _actors(address)
        return {a.node_id for a in actors if actor_class in a.class_name}
    tasks = _state(
        address,
        lambda: list_tasks(
            filters=[("state", "=", "FINISHED")], limit=10_000, timeout=60
        ),
    )
    return {t.node_id for t in tasks if t.node_id}


def _actor_ids(address: str, actor_class: str) -> set[str]:
    """Every actor of the class the cluster has started (alive or not)."""
    return {a.actor_id for a in _actors(address) if a.class_name == actor_class}


# One CPU a node and one a worker: on the cluster Ray Train has to place one on each.
# Checkpoints every 4 steps, so that a run cut short has one to resume from.
DDP = tiny_config(
    epochs=1, steps_per_epoch=24, max_hard_negatives=0, checkpoint_every=4
).executed(workers=NODES, producers=1, torch_threads=1)


@pytest.fixture(scope="module")
def local_ddp_run(graph_dir, tmp_path_factory):
    """`DDP` trained on a local Ray, before `cluster` starts.

    While a test cluster runs, it is the Ray a plain ``ray.init()`` here would join.
    """
    out = tmp_path_factory.mktemp("ddp") / "local"
    train(DDP, graph_dir, out)
    return out


@pytest.mark.slow
def test_data_parallel_training_puts_a_worker_on_each_node(
    local_ddp_run, cluster, graph_dir, tmp_path
):
    on_cluster = DDP.executed(ray_address=cluster.address)
    record = train(on_cluster, graph_dir, tmp_path / "cluster")
    assert record["step"] == DDP.train.last_step
    assert len(_nodes_that_ran(cluster.address, "RayTrainWorker")) == NODES
    # The same run on a local Ray ends with the same weights: where the replicas
    # run does not change what they compute.
    _assert_same_weights(tmp_path / "cluster", local_ddp_run)


def _assert_same_weights(run, reference) -> None:
    got, want = load_checkpoint(run)["model"], load_checkpoint(reference)["model"]
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6)


def _remove_when(cluster, node, ready) -> threading.Thread:
    """A thread that removes ``node`` (a crash: no graceful drain) once ``ready()``."""

    def watch() -> None:
        while not ready():
            time.sleep(0.02)
        cluster.remove_node(node, allow_graceful=False)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
@pytest.mark.parametrize("join", ["broadcast", "shuffle"])
def test_embedding_on_two_nodes_equals_the_local_engine(
    cluster, run_dir, graph_dir, tmp_path, join
):
    options = RayOptions(
        address=cluster.address, batch_size=64, num_partitions=2, join=join
    )
    on_cluster, local = tmp_path / "cluster", tmp_path / "local"
    before = _actor_ids(cluster.address, "ModelActor")
    manifest = embed(
        run_dir, graph_dir, on_cluster, engine="ray", contexts=True, options=options
    )
    assert manifest.engine == "ray"
    if join == "broadcast":  # one pool serves every layer: the model fetched twice
        started = _actor_ids(cluster.address, "ModelActor") - before
        assert len(started) == options.concurrency == 2
    embed(run_dir, graph_dir, local, engine="local", contexts=True)
    assert_same_embeddings(on_cluster, local, atol=1e-5)
    assert len(_nodes_that_ran(cluster.address)) == NODES
    assert not ray.is_initialized()  # the job left the cluster as it found it


@pytest.mark.slow
def test_a_node_lost_mid_embed_fails_clean_and_a_rerun_completes(
    cluster, run_dir, graph_dir, tmp_path, monkeypatch
):
    # A third node, removed (as a crash: no graceful drain) once the first stage
    # is done, while its actors may hold that stage's blocks.
    doomed = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    finished = engine._LayerClock.done
    stages: list[str] = []

    def done(clock, what: str) -> None:
        finished(clock, what)
        stages.append(what)
        if len(stages) == 1:
            cluster.remove_node(doomed, allow_graceful=False)

    monkeypatch.setattr(engine._LayerClock, "done", done)
    options = RayOptions(address=cluster.address, batch_size=64, num_partitions=3)
    out, local = tmp_path / "cluster", tmp_path / "local"
    try:  # Ray's retries mostly carry the job through (every run here so far)
        embed(run_dir, graph_dir, out, engine="ray", contexts=True, options=options)
    except ClusterError as exc:  # Ray could not rebuild what the node held
        assert "rerun" in str(exc).lower() and exc.exit_code == 75
        assert not out.exists()  # nothing half-written
        embed(run_dir, graph_dir, out, engine="ray", contexts=True, options=options)
    assert stages[0] == "input projection" and len(cluster.list_all_nodes()) == NODES
    embed(run_dir, graph_dir, local, engine="local", contexts=True)
    assert_same_embeddings(out, local, atol=1e-5)


@pytest.mark.slow
def test_a_node_lost_mid_training_and_the_resumed_run_ends_as_an_unbroken_one(
    local_ddp_run, cluster, graph_dir, tmp_path
):
    # A third node, removed once the run has a checkpoint: the two workers sit on
    # two of the three nodes, so it takes one of them down two times in three.
    doomed = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    out = tmp_path / "run"
    remover = _remove_when(cluster, doomed, lambda: latest_checkpoint(out) is not None)
    on_cluster = DDP.executed(ray_address=cluster.address)
    try:
        train(on_cluster, graph_dir, out)
    except ClusterError as exc:
        assert "resumes from its last checkpoint" in str(exc) and exc.exit_code == 75
        assert load_checkpoint(out)["step"] < DDP.train.last_step
        train(on_cluster, graph_dir, out, resume=True)
    remover.join(timeout=60)
    assert len(cluster.list_all_nodes()) == NODES
    assert load_checkpoint(out)["step"] == DDP.train.last_step
    _assert_same_weights(out, local_ddp_run)
