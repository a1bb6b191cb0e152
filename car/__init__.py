"""car-bench: a reproducible re-implementation of CLIP as RNN (CaR) and its benchmarks."""

__version__ = "0.1.0"
