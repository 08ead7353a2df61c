"""Where the chunks come from and how per-chunk results are combined."""

from .base import ChunkSource
from .numpy_source import NumpySource

__all__ = ["ChunkSource", "NumpySource"]
