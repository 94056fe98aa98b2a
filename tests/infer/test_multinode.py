"""The embedding job on a real multi-node Ray cluster (issue 16).

Ray's own test cluster (`ray.cluster_utils.Cluster`) runs a head and a worker node on
this machine, each a raylet with its own CPU and object store, as on a real cluster.
The job connects to it by address (as `pinsage embed --ray-address` does); its output
must equal the local engine's, and Ray's task records must show work on both nodes.
"""

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster
from ray.util.state import list_tasks

from pinsage.infer import RayOptions, embed, read_embeddings

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


def _nodes_that_ran(address: str) -> set[str]:
    """The ids of the nodes on which the cluster's finished tasks ran."""
    ray.init(address=address, log_to_driver=False)
    try:
        tasks = list_tasks(
            filters=[("state", "=", "FINISHED")], limit=10_000, timeout=60
        )
        return {t.node_id for t in tasks if t.node_id}
    finally:
        ray.shutdown()


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
    assert manifest["engine"] == "ray"
    embed(run_dir, graph_dir, local, engine="local", contexts=True)
    for contexts in (False, True):
        got_ids, got = read_embeddings(on_cluster, contexts=contexts)
        want_ids, want = read_embeddings(local, contexts=contexts)
        order, want_order = np.argsort(got_ids), np.argsort(want_ids)
        assert got_ids[order].tolist() == want_ids[want_order].tolist()
        np.testing.assert_allclose(got[order], want[want_order], rtol=0, atol=1e-5)
    assert len(_nodes_that_ran(cluster.address)) == NODES
    assert not ray.is_initialized()  # the job left the cluster as it found it
