"""PinSage layers: the convolution, the feature projector and the full model.

A leaf of the package graph: the network takes tensors and the records of
`blocks` and `projector`; it imports neither the graph store nor the sampler.
"""

from pinsage.nn.blocks import Block, ComputationGraph
from pinsage.nn.conv import PinSageConv, aggregate, segment_softmax
from pinsage.nn.model import PinSageModel
from pinsage.nn.projector import Bags, FeatureBatch, FeatureProjector

__all__ = [
    "Bags",
    "Block",
    "ComputationGraph",
    "FeatureBatch",
    "FeatureProjector",
    "PinSageConv",
    "PinSageModel",
    "aggregate",
    "segment_softmax",
]
