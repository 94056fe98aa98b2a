"""Progress lines in a log: one per interval, with rate and time left."""

import logging

from pinsage.progress import ProgressLog


def test_lines_every_interval_with_rate_and_eta(caplog, monkeypatch):
    clock = iter([0.0, 10.0, 20.0, 40.0, 41.0, 70.0])
    monkeypatch.setattr("pinsage.progress.time.perf_counter", lambda: next(clock))
    log = logging.getLogger("test-progress")
    progress = ProgressLog(log, "job", 100, every_s=30, always=True)  # t = 0
    with caplog.at_level(logging.INFO, logger="test-progress"):
        progress.update(10)  # t = 10: too soon
        progress.update(20)  # t = 20: too soon
        progress.update(40, "loss 1.0")  # t = 40: a line
        progress.update(41)  # t = 41: too soon after the last
        progress.update(70)  # t = 70: a line
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "job: 40/100 steps (40.0%), 1.0 steps/s, ETA 00:01:00; loss 1.0",
        "job: 70/100 steps (70.0%), 1.0 steps/s, ETA 00:00:30",
    ]


def test_silent_on_a_terminal(caplog, monkeypatch):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    progress = ProgressLog(logging.getLogger("t"), "job", 10, every_s=0)
    with caplog.at_level(logging.INFO):
        progress.update(5)
    assert not caplog.records


def test_the_neighborhood_table_reports_in_a_log(monkeypatch, caplog):
    import functools

    import pinsage.sampler.table as table
    from pinsage.config import SamplerConfig
    from pinsage.graph.store import CSRGraph
    from pinsage.sampler.walks import Neighbors

    every = functools.partial(ProgressLog, every_s=0, always=True)
    monkeypatch.setattr(table, "ProgressLog", every)
    monkeypatch.setattr(table, "CHUNK", 2)
    import torch

    # 3 items, 2 contexts: context 0 has items 0, 1; context 1 has items 1, 2.
    graph = CSRGraph.from_arrays(
        item_indptr=torch.tensor([0, 1, 3, 4]),
        item_indices=torch.tensor([0, 0, 1, 1], dtype=torch.int32),
        item_weights=torch.ones(4),
        context_indptr=torch.tensor([0, 2, 4]),
        context_indices=torch.tensor([0, 1, 1, 2], dtype=torch.int32),
        context_weights=torch.ones(4),
    )
    with caplog.at_level(logging.INFO):
        nbrs = table.neighborhood_table(graph, SamplerConfig(num_walks=5, top_k=2))
    lines = [r.getMessage() for r in caplog.records]
    assert any(ln.startswith("item neighbourhoods: 2/3 nodes") for ln in lines)
    assert any(ln.startswith("item neighbourhoods: 3/3 nodes") for ln in lines)
    assert isinstance(nbrs, Neighbors) and nbrs.ids.shape == (3, 2)
