"""The embed job with the local engine: output folder, re-runs, failures, bad input."""

import json

import numpy as np
import pytest
import torch

from pinsage.atomic import file_sha256
from pinsage.config import PipelineConfig, load_section
from pinsage.data.synth import SynthConfig, synthesize
from pinsage.errors import CheckpointError, ConfigError, DataError
from pinsage.graph import build_graph, load_graph
from pinsage.infer import embed, read_embeddings
from pinsage.infer import job as job_module
from pinsage.run import latest_checkpoint, load_checkpoint


def test_writes_a_complete_folder(run_dir, graph_dir, tmp_path):
    out = tmp_path / "emb"
    manifest = embed(run_dir, graph_dir, out, engine="local", contexts=True)
    graph = load_graph(graph_dir)
    assert sorted(p.name for p in out.iterdir()) == [
        "_SUCCESS",
        "contexts",
        "manifest.json",
        "part-00000.parquet",
    ]
    assert json.loads((out / "manifest.json").read_text()) == manifest.to_json()
    assert manifest.count == graph.num_items and manifest.dim == 16
    assert manifest.contexts == graph.num_contexts
    assert manifest.engine == "local" and manifest.seed == 0
    assert manifest.checkpoint_sha256 == file_sha256(latest_checkpoint(run_dir))
    ids, z = read_embeddings(out)
    assert ids.tolist() == graph.item_ids.to_pylist()
    assert z.dtype == np.float32 and z.shape == (graph.num_items, 16)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    ctx_ids, ctx = read_embeddings(out, contexts=True)
    assert ctx_ids.tolist() == graph.context_ids.to_pylist()
    assert ctx.shape == (graph.num_contexts, 16)


def test_rerun_does_nothing_unless_overwrite(run_dir, graph_dir, tmp_path):
    out = tmp_path / "emb"
    first = embed(run_dir, graph_dir, out, engine="local")
    files = sorted(out.rglob("*"))
    mtimes = [p.stat().st_mtime_ns for p in files]
    assert embed(run_dir, graph_dir, out, engine="local") == first
    assert [p.stat().st_mtime_ns for p in sorted(out.rglob("*"))] == mtimes
    # Asking for contexts the folder lacks: not the same output, and not replaced
    # without overwrite.
    with pytest.raises(ConfigError, match="overwrite"):
        embed(run_dir, graph_dir, out, engine="local", contexts=True)
    again = embed(run_dir, graph_dir, out, engine="local", overwrite=True)
    assert (out / "manifest.json").stat().st_mtime_ns > mtimes[
        files.index(out / "manifest.json")
    ]
    assert again.checkpoint_sha256 == first.checkpoint_sha256
    assert not list(tmp_path.glob(".emb*"))  # the old folder and the temporary are gone


def test_an_exception_leaves_no_folder(run_dir, graph_dir, tmp_path, monkeypatch):
    real = job_module.write_parts

    def write_then_fail(folder, key, ids, batches):
        real(folder, key, ids, batches)  # parts are on disk when the job fails
        raise RuntimeError("injected")

    monkeypatch.setattr(job_module, "write_parts", write_then_fail)
    with pytest.raises(RuntimeError, match="injected"):
        embed(run_dir, graph_dir, tmp_path / "emb", engine="local")
    assert list(tmp_path.iterdir()) == []  # no out, no temporary sibling


def test_bad_input_names_the_path(run_dir, graph_dir, tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path}.*pinsage train"):
        embed(tmp_path, graph_dir, tmp_path / "emb", engine="local")
    with pytest.raises(ConfigError, match="unknown engine 'spark'"):
        embed(run_dir, graph_dir, tmp_path / "emb", engine="spark")
    with pytest.raises(DataError, match="not a complete graph"):
        embed(run_dir, tmp_path / "nograph", tmp_path / "emb", engine="local")
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="taken exists but"):
        embed(run_dir, graph_dir, tmp_path / "taken", engine="local")
    with pytest.raises(DataError, match="not a complete embeddings folder"):
        read_embeddings(tmp_path / "taken")
    assert not (tmp_path / "emb").exists()


def test_another_graph_is_refused(run_dir, tmp_path):
    data = synthesize(
        SynthConfig(num_items=200, num_users=100, num_edges=2000), tmp_path / "d"
    )
    build_graph(
        data / "interactions.parquet", tmp_path / "g", items=data / "items.parquet"
    )
    with pytest.raises(CheckpointError, match="trained on a graph with"):
        embed(run_dir, tmp_path / "g", tmp_path / "emb", engine="local")


def test_ray_engine_refuses_attention_before_starting_ray(
    attention_run_dir, graph_dir, tmp_path
):
    import ray

    with pytest.raises(ConfigError, match="engine='local'"):
        embed(attention_run_dir, graph_dir, tmp_path / "emb", engine="ray")
    assert not ray.is_initialized()
    embed(attention_run_dir, graph_dir, tmp_path / "emb", engine="local")


def test_auto_engine_is_local_while_the_graph_fits(run_dir, graph_dir, monkeypatch):
    from pinsage.infer.job import choose_engine, local_engine_bytes

    graph = load_graph(graph_dir)
    cfg = load_section(PipelineConfig, load_checkpoint(run_dir)["config"], "config")
    need = local_engine_bytes(graph, cfg)
    nodes = graph.num_items + graph.num_contexts
    # 8 neighbours (infer_top_k), width 16, 2 layers: 20 * 8 + 4 * 16 * 4 bytes a node
    assert need == nodes * (20 * 8 + 4 * 16 * 4)
    monkeypatch.setattr(job_module, "available_memory", lambda: 4 * need)
    assert choose_engine("auto", graph, cfg, None)[0] == "local"
    monkeypatch.setattr(job_module, "available_memory", lambda: 4 * need - 1)
    engine, why = choose_engine("auto", graph, cfg, None)
    assert engine == "ray" and "over 25%" in why
    assert choose_engine("auto", graph, cfg, "ray://head:10001")[0] == "ray"
    assert choose_engine("local", graph, cfg, "ray://head:10001") == (
        "local",
        "asked for",
    )


def test_auto_engine_writes_its_choice(run_dir, graph_dir, tmp_path):
    manifest = embed(run_dir, graph_dir, tmp_path / "emb")  # auto, a tiny graph
    assert manifest.engine == "local"
    assert manifest.engine_reason.startswith("auto: about")


def test_load_run_is_the_checkpoint_over_the_graph(run_dir, graph_dir):
    from pinsage.run import build_model, load_run

    graph = load_graph(graph_dir)
    run = load_run(run_dir, graph)
    checkpoint = load_checkpoint(run_dir)
    assert run.step == checkpoint["step"] == 2
    assert run.config == load_section(PipelineConfig, checkpoint["config"], "c")
    assert not run.model.training
    # The same weights as a model built from the config and loaded by hand.
    plain = build_model(run.config, graph, run.store)
    plain.load_state_dict(checkpoint["model"])
    for (name, got), want in zip(
        run.model.state_dict().items(), plain.state_dict().values(), strict=True
    ):
        assert torch.equal(got, want), name
