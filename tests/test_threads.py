"""Torch threads fitted to the usable CPUs: affinity, cgroup quota, producers."""

import torch

from pinsage import threads


def _cgroup(tmp_path, monkeypatch, text):
    v2 = tmp_path / "cpu.max"
    if text is not None:
        v2.write_text(text)
    monkeypatch.setattr(threads, "_CGROUP_V2", v2)
    monkeypatch.setattr(threads, "_CGROUP_V1", tmp_path / "none")


def test_usable_cpus_is_affinity_capped_by_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    _cgroup(tmp_path, monkeypatch, "150000 100000\n")  # 1.5 CPUs: two threads
    assert threads.usable_cpus() == 2
    _cgroup(tmp_path, monkeypatch, "max 100000\n")  # no quota
    assert threads.usable_cpus() == 4
    _cgroup(tmp_path, monkeypatch, None)  # no cgroup file at all
    assert threads.usable_cpus() == 4
    _cgroup(tmp_path, monkeypatch, "50000 100000\n")  # half a CPU: still one
    assert threads.usable_cpus() == 1


def test_producers_are_counted_and_an_override_wins(tmp_path, monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    _cgroup(tmp_path, monkeypatch, None)
    try:
        assert threads.fit_torch_threads(None, producers=1) == 2
        assert torch.get_num_threads() == 2
        assert threads.fit_torch_threads(None, producers=5) == 1  # at least one
        assert threads.fit_torch_threads(3, producers=1) == 3
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
