"""Graph store: the bipartite item/context graph as memory-mappable CSR in both directions."""

from pinsage.graph.build import build_graph
from pinsage.graph.features import FeatureSpec
from pinsage.graph.store import CSRGraph, Graph, load_graph

__all__ = ["CSRGraph", "FeatureSpec", "Graph", "build_graph", "load_graph"]
