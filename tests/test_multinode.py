"""The Ray jobs on a real multi-node Ray cluster (issue 16).

Ray's own test cluster (`ray.cluster_utils.Cluster`) runs a head and a worker node on
this machine, each a raylet with its own CPU and object store, as on a real cluster;
the jobs connect to it by address (`--ray-address`, `execution.ray_address`), and the
run and graph folders are on storage both nodes see, as a real cluster needs. The
embedding job's output must equal the local engine's, data-parallel training must
end where the same run on a local Ray ends, and Ray's task and actor records must
show work on both nodes.
"""

import pytest
import ray
import torch
from ray.cluster_utils import Cluster
from ray.util.state import list_actors, list_tasks

from pinsage.infer import RayOptions, embed
from pinsage.run import load_checkpoint
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


def _nodes_that_ran(address: str, actor_class: str | None = None) -> set[str]:
    """The nodes of the cluster's finished tasks (or of its actors of a class)."""
    ray.init(address=address, log_to_driver=False)
    try:
        if actor_class is not None:
            actors = list_actors(limit=10_000, timeout=60)
            return {a.node_id for a in actors if actor_class in a.class_name}
        tasks = list_tasks(
            filters=[("state", "=", "FINISHED")], limit=10_000, timeout=60
        )
        return {t.node_id for t in tasks if t.node_id}
    finally:
        ray.shutdown()


# One CPU a node and one a worker: on the cluster Ray Train has to place one on each.
DDP = tiny_config(epochs=1, steps_per_epoch=3, max_hard_negatives=0).executed(
    workers=NODES, producers=1, torch_threads=1
)


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
    assert record["step"] == 3
    assert len(_nodes_that_ran(cluster.address, "RayTrainWorker")) == NODES
    # The same run on a local Ray ends with the same weights: where the replicas
    # run does not change what they compute.
    got = load_checkpoint(tmp_path / "cluster")["model"]
    want = load_checkpoint(local_ddp_run)["model"]
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("join", ["broadcast", "shuffle"])
def test_embedding_on_two_nodes_equals_the_local_engine(
    cluster, run_dir, graph_dir, tmp_path, join
):
    options = RayOptions(
        address=cluster.address, batch_size=64, num_partitions=2, join=join
    )
    on_cluster, local = tmp_path / "cluster", tmp_path / "local"
    manifest = embed(
        run_dir, graph_dir, on_cluster, engine="ray", contexts=True, options=options
    )
    assert manifest.engine == "ray"
    embed(run_dir, graph_dir, local, engine="local", contexts=True)
    assert_same_embeddings(on_cluster, local, atol=1e-5)
    assert len(_nodes_that_ran(cluster.address)) == NODES
    assert not ray.is_initialized()  # the job left the cluster as it found it
