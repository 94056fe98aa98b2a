import json
from dataclasses import replace

import pytest
import torch

from pinsage.config import ModelConfig
from pinsage.data.synth import SynthConfig, synthesize
from pinsage.errors import CheckpointError, ConfigError
from pinsage.features import FeatureStore
from pinsage.graph import build_graph, load_graph
from pinsage.run import load_checkpoint
from pinsage.train import train
from pinsage.train.batch import make_batch
from pinsage.train.loader import BatchLoader, BatchMaker
from tests.helpers import tiny_config


def _params(run):
    return load_checkpoint(run)["model"]


def test_stop_step_ends_the_run_mid_schedule(graph_dir, tmp_path):
    # stop_step 6 of a 2 x 4-step schedule: the steps (and learning rates) of the
    # first 6 of the full schedule, not a 6-step schedule of its own.
    cfg = tiny_config()
    train(cfg, graph_dir, tmp_path / "paused", until_step=6)
    stopped = replace(cfg, train=replace(cfg.train, stop_step=6))
    record = train(stopped, graph_dir, tmp_path / "stopped")
    assert record["step"] == 6 and load_checkpoint(tmp_path / "stopped")["step"] == 6
    a, b = _params(tmp_path / "paused"), _params(tmp_path / "stopped")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    short = replace(cfg, train=replace(cfg.train, epochs=2, steps_per_epoch=3))
    train(short, graph_dir, tmp_path / "short")  # its own, shorter, decay
    assert any(not torch.equal(a[k], _params(tmp_path / "short")[k]) for k in a)
    assert stopped.train.last_step == 6 and cfg.train.last_step == 8


@pytest.mark.parametrize("neighborhoods", ["batch", "epoch"])
def test_resume_ends_with_exactly_the_parameters_of_a_straight_run(
    graph_dir, tmp_path, neighborhoods
):
    cfg = tiny_config(neighborhoods=neighborhoods)
    train(cfg, graph_dir, tmp_path / "straight")
    train(cfg, graph_dir, tmp_path / "split", until_step=3)
    assert load_checkpoint(tmp_path / "split")["step"] == 3
    train(cfg, graph_dir, tmp_path / "split", resume=True)
    a, b = _params(tmp_path / "straight"), _params(tmp_path / "split")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "split/metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(1, 9))
    assert (tmp_path / "split/config.yaml").exists()


def test_loss_falls(graph_dir, tmp_path):
    # Measured: margin loss over steps 51-60 is about 0.83 of steps 1-10 (0.78
    # without the residual, which starts higher: 0.176 against 0.132).
    cfg = tiny_config(
        epochs=1, steps_per_epoch=60, max_hard_negatives=0, lr=0.01, loss="margin"
    )
    train(cfg, graph_dir, tmp_path / "run")
    losses = [
        json.loads(line)["loss"]
        for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    ]
    assert sum(losses[-10:]) / 10 < 0.9 * sum(losses[:10]) / 10


@pytest.mark.parametrize("loss", ["margin", "softmax"])
@pytest.mark.parametrize("objective", ["item", "context"])
def test_objectives_and_losses_train(graph_dir, tmp_path, loss, objective):
    record = train(
        tiny_config(loss=loss, objective=objective, epochs=1, steps_per_epoch=2),
        graph_dir,
        tmp_path / "r",
    )
    assert record["step"] == 2 and record["loss"] > 0


@pytest.mark.parametrize("neighborhoods", ["batch", "epoch"])
def test_same_batches_whatever_the_workers(graph_dir, neighborhoods):
    cfg = tiny_config(neighborhoods=neighborhoods)
    maker = BatchMaker(graph_dir, cfg, cfg.model.text_buckets)
    inline = list(BatchLoader(maker, 2, 6, producers=0))
    with BatchLoader(maker, 2, 6, producers=2, kind="thread") as loader:
        threaded = list(loader)
    for a, b in zip(inline, threaded, strict=True):
        assert a.step == b.step
        assert torch.equal(a.items.input_nodes, b.items.input_nodes)
        assert torch.equal(a.negative_pos, b.negative_pos) and torch.equal(
            a.item_hard_pos, b.item_hard_pos
        )


@pytest.mark.parametrize("neighborhoods", ["batch", "epoch"])
def test_process_workers_match_inline_and_shut_down(graph_dir, neighborhoods):
    cfg = tiny_config(neighborhoods=neighborhoods)
    maker = BatchMaker(graph_dir, cfg, cfg.model.text_buckets)
    with BatchLoader(maker, 0, 3, producers=2, kind="process") as loader:
        got = [b.items.input_nodes for b in loader]
        workers = list(loader._workers)
    assert all(not w.is_alive() for w in workers)
    want = [b.items.input_nodes for b in BatchLoader(maker, 0, 3, producers=0)]
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_consumer_error_stops_workers(graph_dir):
    cfg = tiny_config()
    maker = BatchMaker(graph_dir, cfg, cfg.model.text_buckets)
    with pytest.raises(KeyboardInterrupt):
        with BatchLoader(
            maker, 0, 50, producers=1, kind="process", prefetch=2
        ) as loader:
            for _ in loader:
                workers = list(loader._workers)
                raise KeyboardInterrupt
    assert all(not w.is_alive() for w in workers)


def test_checkpoint_errors(graph_dir, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(tiny_config(), graph_dir, tmp_path / "none", resume=True)
    train(tiny_config(epochs=1, steps_per_epoch=1), graph_dir, tmp_path / "r")
    ckpt = next((tmp_path / "r/checkpoints").glob("step-*.pt"))
    ckpt.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        train(
            tiny_config(epochs=1, steps_per_epoch=1),
            graph_dir,
            tmp_path / "r",
            resume=True,
        )
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny_config(epochs=1, steps_per_epoch=1), graph_dir, tmp_path / "r")


def test_resume_with_a_different_model_is_refused(graph_dir, tmp_path):
    train(tiny_config(epochs=1, steps_per_epoch=1), graph_dir, tmp_path / "r")
    other = replace(
        tiny_config(epochs=1, steps_per_epoch=2),
        model=ModelConfig(dim=8, hidden_dim=8, out_dim=8, text_buckets=512),
    )
    with pytest.raises(ConfigError, match="model section differs"):
        train(other, graph_dir, tmp_path / "r", resume=True)


def test_batch_positions_point_at_the_right_items(graph_dir):
    cfg = tiny_config()
    g = load_graph(graph_dir)
    store = FeatureStore.from_graph(g, text_buckets=512)
    b = make_batch(
        g.csr, store, cfg.sampler, cfg.train, step=5, epoch=3, negative_probs=None
    )
    seeds = b.items.seeds
    assert b.item_hard_pos.shape == (32, 2)
    hard = b.item_hard_pos[b.item_hard_pos >= 0]
    assert (hard < seeds.numel()).all()
    # Queries and positives are co-engaged by the batch's context.
    ctx_items = {
        c: set(
            g.csr.context_indices[
                g.csr.context_indptr[c] : g.csr.context_indptr[c + 1]
            ].tolist()
        )
        for c in b.contexts.seeds.tolist()
    }
    for c, q, p in zip(
        b.contexts.seeds[b.context_pos].tolist(),
        seeds[b.query_pos].tolist(),
        seeds[b.positive_pos].tolist(),
        strict=True,
    ):
        assert q in ctx_items[c] and p in ctx_items[c]


def test_resume_on_another_graph_is_refused(graph_dir, tmp_path):
    data = synthesize(
        SynthConfig(num_items=200, num_users=100, num_edges=2000), tmp_path / "d2"
    )
    build_graph(
        data / "interactions.parquet", tmp_path / "g2", items=data / "items.parquet"
    )
    train(tiny_config(epochs=1, steps_per_epoch=1), graph_dir, tmp_path / "r")
    with pytest.raises(CheckpointError, match="trained on a graph with"):
        train(
            tiny_config(epochs=1, steps_per_epoch=2),
            tmp_path / "g2",
            tmp_path / "r",
            resume=True,
        )


def test_epoch_neighborhoods_are_one_table_per_epoch(graph_dir):
    # Positives hidden per batch would make context rows differ within an epoch.
    cfg = tiny_config(neighborhoods="epoch", objective="context", hide_positives=False)
    maker = BatchMaker(graph_dir, cfg, cfg.model.text_buckets)
    first, same_epoch, next_epoch = maker(0), maker(3), maker(4)  # 4 steps an epoch

    def edges(batch):
        edges = set()
        for cg in (batch.items, batch.contexts):
            for block in cg.blocks:
                src, dst = block.edge_index
                dsts, srcs = (
                    block.dst_nodes[dst].tolist(),
                    block.src_nodes[src].tolist(),
                )
                pairs = zip(dsts, srcs, strict=True)
                edges |= {(block.dst_is_context, *p) for p in pairs}
        return edges

    def rows(batch):  # each destination's neighbour list
        out = {}
        for ctx, d, s in edges(batch):
            out.setdefault((ctx, d), set()).add(s)
        return out

    a, b, c = rows(first), rows(same_epoch), rows(next_epoch)
    shared = a.keys() & b.keys()
    assert shared and all(a[k] == b[k] for k in shared)  # one table in an epoch
    redrawn = a.keys() & c.keys()
    assert any(a[k] != c[k] for k in redrawn)  # a fresh table the next epoch


@pytest.mark.parametrize("hide", [True, False])
def test_contexts_never_pool_their_own_positive_item(graph_dir, hide):
    cfg = tiny_config(objective="context", hide_positives=hide, batch_size=64)
    sampler = replace(cfg.sampler, num_walks=200, top_k=50, num_layers=1)
    g = load_graph(graph_dir)
    store = FeatureStore.from_graph(g, text_buckets=512)
    b = make_batch(
        g.csr, store, sampler, cfg.train, step=0, epoch=1, negative_probs=None
    )
    block = b.contexts.blocks[-1]
    pooled = set(
        zip(
            block.dst_nodes[block.edge_index[1]].tolist(),
            block.src_nodes[block.edge_index[0]].tolist(),
            strict=True,
        )
    )
    engaged = set(
        zip(
            b.contexts.seeds[b.context_pos].tolist(),
            b.items.seeds[b.query_pos].tolist(),
            strict=True,
        )
    )
    # Wide walks pool a context's whole history: without hiding, positives leak in.
    assert not (pooled & engaged) if hide else len(pooled & engaged) > 10
    assert len(pooled) > 5 * len(engaged)  # the rest of the history stays
