"""PinSage layers: the convolution, the feature projector and the full model."""

from pinsage.nn.conv import PinSageConv, aggregate, segment_softmax
from pinsage.nn.features import (
    Bags,
    FeatureBatch,
    FeatureProjector,
    FeatureStore,
)
from pinsage.nn.model import PinSageModel
from pinsage.nn.text import fnv1a_64, tokenize

__all__ = [
    "Bags",
    "FeatureBatch",
    "FeatureProjector",
    "FeatureStore",
    "PinSageConv",
    "PinSageModel",
    "aggregate",
    "fnv1a_64",
    "segment_softmax",
    "tokenize",
]
