"""Training: examples, negatives, losses, the producer-consumer loader and the loop.

What training writes (checkpoints) and the model it builds are `pinsage.run`'s.
"""

from pinsage.train.job import train
from pinsage.train.loop import lr_at

__all__ = ["lr_at", "train"]
