"""The trained-run artifact: what `pinsage train` writes and every later stage reads.

A run directory holds ``checkpoints/`` (atomic files and a ``latest`` pointer,
`checkpoint`), the metrics log and its manifest. `factory` builds the model its config
describes; `load_run` gives eval, embed, the index, the report and the benchmarks the
latest checkpoint as a model over a graph. Training writes runs; nothing here imports
training, inference or evaluation.
"""

from pinsage.run.checkpoint import (
    check_graph,
    graph_key,
    latest_checkpoint,
    load_checkpoint,
    read_tensors,
    save_checkpoint,
)
from pinsage.run.factory import build_model, model_from_checkpoint, spectral_id_init
from pinsage.run.load import TrainedRun, load_run

__all__ = [
    "TrainedRun",
    "build_model",
    "check_graph",
    "graph_key",
    "latest_checkpoint",
    "load_checkpoint",
    "load_run",
    "model_from_checkpoint",
    "read_tensors",
    "save_checkpoint",
    "spectral_id_init",
]
