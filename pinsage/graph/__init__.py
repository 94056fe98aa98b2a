"""Graph store: the bipartite item/context graph as memory-mappable CSR.

The CSR is stored in both directions (item -> contexts and context -> items).
"""

from pinsage.graph.build import build_graph
from pinsage.graph.feature_columns import FeatureSpec
from pinsage.graph.store import CSRGraph, Graph, load_graph

__all__ = ["CSRGraph", "FeatureSpec", "Graph", "build_graph", "load_graph"]
