"""Briefly trained 2-layer runs on the shared tiny graph (tests/conftest.py)."""

import pytest

from pinsage.train import train
from tests.helpers import run_config


@pytest.fixture(scope="session")
def run_dir(graph_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    train(run_config(), graph_dir, out)
    return out


@pytest.fixture(scope="session")
def attention_run_dir(graph_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "attention"
    train(run_config("attention"), graph_dir, out)
    return out
