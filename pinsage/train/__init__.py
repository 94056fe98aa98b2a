"""Training: examples, negatives, losses, the producer-consumer loader and the loop."""

from pinsage.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from pinsage.train.loop import lr_at, train

__all__ = ["latest_checkpoint", "load_checkpoint", "lr_at", "save_checkpoint", "train"]
