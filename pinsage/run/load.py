"""A trained run read back: its config, its model over a graph, its features.

`load_run` is the one way `pinsage eval`, `pinsage embed` (and ``embed --items``)
and the benchmarks load what `pinsage train` wrote into a run directory; the
checkpoint files themselves are `pinsage.run.checkpoint`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pinsage.config import PipelineConfig, load_section
from pinsage.features import FeatureStore
from pinsage.graph.store import Graph
from pinsage.nn.model import PinSageModel
from pinsage.run.checkpoint import load_checkpoint
from pinsage.run.factory import model_from_checkpoint

__all__ = ["TrainedRun", "load_run"]


@dataclass(frozen=True)
class TrainedRun:
    """The latest checkpoint of a run, ready to embed with.

    ``model`` is in eval mode over the graph it was loaded for; ``checkpoint`` is
    the raw record (step, graph key, optimizer state, ...).
    """

    config: PipelineConfig
    model: PinSageModel
    store: FeatureStore
    checkpoint: dict[str, Any]

    @property
    def step(self) -> int:
        """The training step the checkpoint was written after."""
        return int(self.checkpoint["step"])


def load_run(run_dir: Path, graph: Graph, *, where: Path | None = None) -> TrainedRun:
    """The run's latest checkpoint, its config and its model over ``graph``.

    ``where`` (default ``run_dir``) is the path named in errors: a
    `CheckpointError` when the run has no readable checkpoint or was trained on
    a graph of another shape, a `ConfigError` when its config does not load.
    """
    where = Path(run_dir) if where is None else Path(where)
    checkpoint = load_checkpoint(run_dir)
    cfg = load_section(PipelineConfig, checkpoint["config"], f"{where} config")
    model, store = model_from_checkpoint(checkpoint, cfg, graph, where)
    return TrainedRun(cfg, model, store, checkpoint)
