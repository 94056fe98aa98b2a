"""The Ray engine on one local Ray: neighbourhood parts, equality, fault tolerance."""

import dataclasses
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import ray
import torch

from pinsage.config import PipelineConfig, SamplerConfig, load_section
from pinsage.data.synth import SynthConfig, synthesize
from pinsage.features import FeatureStore
from pinsage.graph import build_graph, load_graph
from pinsage.infer import RayOptions, embed, read_embeddings
from pinsage.infer import job as job_module
from pinsage.infer.local import embed_all
from pinsage.infer.neighborhoods import (
    read_neighborhoods,
    table_rows,
    write_neighborhoods,
)
from pinsage.infer.ray_pool import _range_batches
from pinsage.ray_session import ray_session
from pinsage.run import build_model, load_checkpoint
from pinsage.sampler import CHUNK, build_blocks, table_lookup
from pinsage.sampler.table import neighborhood_table
from tests.helpers import assert_same_embeddings

# Batches of 64 (several per stage on 300 items) and 2 partitions: cheap shuffles.
OPTIONS = RayOptions(num_cpus=2, batch_size=64, num_partitions=2)


@pytest.fixture(scope="module")
def local_ray():
    with ray_session(OPTIONS.address, OPTIONS.num_cpus):
        yield


@pytest.fixture(scope="module")
def reference(run_dir, graph_dir):
    """The run's model, features and neighbourhood tables, loaded as the job does."""
    checkpoint = load_checkpoint(run_dir)
    cfg = load_section(PipelineConfig, checkpoint["config"], "test")
    graph = load_graph(graph_dir)
    store = FeatureStore.from_graph(graph, text_buckets=cfg.model.text_buckets)
    model = build_model(cfg, graph, store)
    model.load_state_dict(checkpoint["model"])
    sampler = cfg.sampler.for_inference()
    items = neighborhood_table(graph.csr, sampler)
    contexts = neighborhood_table(graph.csr, sampler, contexts=True)
    assert (items.ids[:, 0] < 0).any(), "the graph should have an isolated item"
    return graph, model.eval(), store, items, contexts


@pytest.fixture(scope="module", params=["broadcast", "shuffle"])
def join_options(request):
    """Both ways of joining the table with the messages."""
    return dataclasses.replace(OPTIONS, join=request.param)


@pytest.fixture(scope="module")
def ray_out(local_ray, run_dir, graph_dir, join_options, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray") / "emb"
    embed(run_dir, graph_dir, out, engine="ray", contexts=True, options=join_options)
    return out


def _by_index(out: Path, graph, contexts: bool = False) -> np.ndarray:
    ids, z = read_embeddings(out, contexts=contexts)
    index = graph.context_index(ids) if contexts else graph.item_index(ids)
    assert sorted(index.tolist()) == list(range(len(z))), "every node exactly once"
    ordered = np.empty_like(z)
    ordered[index] = z
    return ordered


@torch.no_grad()
def _minibatch(model, store, items, contexts, seeds, batch=64):
    """Per-seed inference: the training-time forward over each batch's blocks."""
    out = []
    for lo in range(0, len(seeds), batch):
        cg = build_blocks(
            seeds[lo : lo + batch],
            model.num_layers,
            table_lookup(items),
            context_fn=None if contexts is None else table_lookup(contexts),
        )
        out.append(model(cg, store.gather(cg.input_nodes)))
    return torch.cat(out).numpy()


@pytest.fixture(scope="module")
def wide_graph_dir(tmp_path_factory):
    """A graph of more than two CHUNKs of items, so that ranges can differ."""
    root = tmp_path_factory.mktemp("wide")
    data = synthesize(
        SynthConfig(num_items=9000, num_users=2000, num_edges=30000), root / "data"
    )
    build_graph(
        data / "interactions.parquet", root / "graph", items=data / "items.parquet"
    )
    assert load_graph(root / "graph").num_items > 2 * CHUNK
    return root / "graph"


@pytest.mark.parametrize("chunks_per_part,max_in_flight", [(1, 1), (2, 3)])
def test_neighborhood_parts_equal_the_table(
    local_ray, wide_graph_dir, tmp_path, chunks_per_part, max_in_flight
):
    graph = load_graph(wide_graph_dir)
    cfg = SamplerConfig(num_walks=10, top_k=5, seed=3)
    for contexts, num in ((False, graph.num_items), (True, graph.num_contexts)):
        folder = tmp_path / ("contexts" if contexts else "items")
        rows = write_neighborhoods(
            wide_graph_dir,
            cfg,
            folder,
            num_nodes=num,
            contexts=contexts,
            chunks_per_part=chunks_per_part,
            max_in_flight=max_in_flight,
        )
        parts = len(list(folder.glob("part-*.parquet")))
        assert parts == -(-num // (CHUNK * chunks_per_part))
        got = read_neighborhoods(folder)
        want = table_rows(neighborhood_table(graph.csr, cfg, contexts=contexts))
        assert rows == got.num_rows == want.num_rows > 0
        assert got.equals(want)


@pytest.mark.parametrize(
    ("count", "rows", "actors", "sizes"),
    [
        (300, 4096, 2, [150, 150]),  # small: split so that both actors work
        (301, 4096, 2, [151, 150]),
        (10, 4, 2, [4, 4, 2]),  # large: batches of ``rows``
        (1, 4096, 2, [1]),
        (0, 4096, 2, []),
    ],
)
def test_range_batches_cover_every_node_and_feed_every_actor(
    count, rows, actors, sizes
):
    nodes = [t["node"].to_numpy() for t in _range_batches(count, rows, actors)]
    assert [len(n) for n in nodes] == sizes
    assert np.array_equal(np.concatenate([[], *nodes]), np.arange(count))


@pytest.mark.slow  # 70-75 s on 2 busy cores: nearly all of it the Ray job (ray_out)
def test_ray_equals_local_and_minibatch_inference(reference, ray_out):
    graph, model, store, items, contexts = reference
    z_local, c_local = embed_all(model, store, items, contexts)
    every_item = torch.arange(graph.num_items)
    every_context = torch.arange(graph.num_contexts)
    z_mini = _minibatch(model, store, items, None, every_item)
    c_mini = _minibatch(model, store, items, contexts, every_context)
    z_ray = _by_index(ray_out, graph)
    c_ray = _by_index(ray_out, graph, contexts=True)
    for ray_z, local_z, mini_z in ((z_ray, z_local, z_mini), (c_ray, c_local, c_mini)):
        np.testing.assert_allclose(ray_z, local_z.numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(ray_z, mini_z, rtol=0, atol=1e-5)


def _descends_from_us(pid: int) -> bool:
    """Whether ``pid`` is a child or grandchild of this process (our Ray's raylet's)."""
    for _ in range(3):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: parent pid
        if pid == os.getpid():
            return True
    return False


def _model_actors() -> list[int]:
    """Pids of this session's Ray actors running our model stages."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        ours = b"MapBatches(Chain)" in title or b"ray::ModelActor" in title
        if ours and _descends_from_us(int(proc.name)):
            found.append(int(proc.name))
    return found


@pytest.mark.slow  # a second Ray job: 40-55 s on 2 busy cores
def test_a_killed_worker_does_not_change_the_output(
    local_ray, run_dir, graph_dir, tmp_path, join_options, ray_out
):
    killed: list[int] = []
    stop = threading.Event()

    def kill_model_actors():  # two of them, in different stages of the job
        while not stop.is_set() and len(killed) < 2:
            for pid in _model_actors():
                if pid not in killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    stop.wait(2.0)
                    break
            stop.wait(0.05)

    killer = threading.Thread(target=kill_model_actors, daemon=True)
    killer.start()
    try:
        out = tmp_path / "emb"
        embed(
            run_dir, graph_dir, out, engine="ray", contexts=True, options=join_options
        )
    finally:
        stop.set()
        killer.join()
    assert killed, "no model actor was found to kill"
    assert (out / "_SUCCESS").exists()
    assert_same_embeddings(out, ray_out, atol=1e-6)


def test_an_exception_leaves_no_folder(
    local_ray, run_dir, graph_dir, tmp_path, monkeypatch
):
    def fail(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(job_module, "embed_ray", fail)  # after the Ray-written tables
    with pytest.raises(RuntimeError, match="injected"):
        embed(run_dir, graph_dir, tmp_path / "emb", engine="ray", options=OPTIONS)
    assert list(tmp_path.iterdir()) == []
    assert ray.is_initialized()  # the shared Ray is left running


def test_rays_own_log_lines_follow_the_cli_setting(tmp_path, monkeypatch, capsys):
    import logging

    from pinsage.ray_session import RAY_LOG_SETTING, quiet_ray_loggers
    from tests.helpers import run_cli

    setting = logging.getLogger(RAY_LOG_SETTING)
    synth = ["data", "synth", "--out", str(tmp_path / "d"), "--items", "60"]
    synth += ["--users", "30", "--edges", "300", "--clusters", "3"]
    synth += ["--subclusters", "2"]
    try:
        for flags, level in (([], logging.ERROR), (["-v"], logging.INFO)):
            assert run_cli([*flags, *synth], monkeypatch, capsys)[0] == 0
            quiet_ray_loggers()  # what a Ray session does when it starts
            for name in ("ray", "ray.data", "ray.train"):
                assert logging.getLogger(name).getEffectiveLevel() == level, name
    finally:
        setting.setLevel(logging.NOTSET)
        quiet_ray_loggers()
