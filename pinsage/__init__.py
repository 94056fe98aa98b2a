"""pinsage: PinSage item embeddings, bulk inference and nearest-neighbour lookup."""

__version__ = "0.1.0"
