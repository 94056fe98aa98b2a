"""Item features as model input: stored columns loaded as tensors, text hashed.

Between the graph store and the network: `FeatureStore` reads a graph's feature
columns once (`text` tokenises and hashes free text) and gathers a batch's rows into
the `pinsage.nn.FeatureBatch` the model's projector embeds, so that neither the
graph store nor the network imports the other.
"""

from pinsage.features.store import MIN_TEXT_BUCKETS, FeatureStore, text_buckets_for
from pinsage.features.text import count_distinct_tokens, fnv1a_64, tokenize

__all__ = [
    "MIN_TEXT_BUCKETS",
    "FeatureStore",
    "count_distinct_tokens",
    "fnv1a_64",
    "text_buckets_for",
    "tokenize",
]
