"""Covariance types, statistics algebra and parameter containers (no I/O, no Dask)."""
