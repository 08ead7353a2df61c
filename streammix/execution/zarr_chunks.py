"""Read a local Zarr array's row chunks straight from their files, as a dask array.

EM re-reads every chunk on every pass. zarr's general read path (an event loop, a codec
pipeline, a copy of the decoded chunk into the output selection) costs 35-60 ms per
32 MB chunk here, as much as the diag kernel itself (44 ms). For the common layout (a
local store, rows chunked, one chunk across the columns, little-endian floats, no codec
but an optional compressor) the chunk file is the array's bytes: an uncompressed chunk is
memory-mapped (copy-on-write, pages taken from the OS cache, no copy: ~2 ms), a
compressed one is decoded once, straight into its output buffer. Any other layout, or a
remote store, goes through ``dask.array.from_zarr`` unchanged.

zarr writes chunk files atomically (a new file renamed over the old), so a chunk that is
rewritten while mapped keeps its old contents in the mapping.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError



@dataclass(frozen=True)
class ChunkLayout:
    """How to turn the chunk file of row-chunk i into an array: everything a task needs,
    small and picklable (it travels to the workers with the graph)."""

    root: str            # the array's directory
    keys: tuple          # chunk key (relative file path) of each row-chunk
    chunk_rows: int      # rows of a full chunk (edge chunks are stored full size)
    n_features: int
    dtype: str           # numpy dtype string, little-endian
    fill_value: float    # the value of a chunk whose file does not exist
    compressor: dict | None  # numcodecs config of the one compressor, or None

    @property
    def chunk_nbytes(self) -> int:
        return self.chunk_rows * self.n_features * np.dtype(self.dtype).itemsize


def read_chunk(layout: ChunkLayout, index: int, rows: int) -> np.ndarray:
    """Row-chunk ``index`` (its first ``rows`` rows) of the array ``layout`` describes."""
    path = os.path.join(layout.root, layout.keys[index])
    shape = (layout.chunk_rows, layout.n_features)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # never written: zarr's fill value
        return np.full((rows, layout.n_features), layout.fill_value, dtype=layout.dtype)
    try:
        size = os.fstat(fd).st_size
        if layout.compressor is None:
            if size != layout.chunk_nbytes:
                raise InvalidInputError(
                    f"Zarr chunk file {path!r} holds {size} bytes; an uncompressed "
                    f"{shape[0]} x {shape[1]} {layout.dtype} chunk holds "
                    f"{layout.chunk_nbytes}: the file is truncated or not this array's")
            # private and writable: pages come from the OS cache on first touch and
            # are copied only if written (MAP_POPULATE here would copy them all)
            buf = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE,
                            prot=mmap.PROT_READ | mmap.PROT_WRITE)
            out = np.frombuffer(buf, dtype=layout.dtype).reshape(shape)
        else:
            out = np.empty(shape, dtype=layout.dtype)
            # decoded from a read-only mapping of the file (unmapped when the last
            # reference goes, at return): no copy of the frame
            frame = (mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
                     if size else b"")
            try:
                _decoder(layout.compressor).decode(frame, out=out)
            except Exception as exc:
                raise InvalidInputError(
                    f"Zarr chunk file {path!r} could not be decoded with "
                    f"{layout.compressor['id']}: {type(exc).__name__}: {exc}") from exc
    finally:
        os.close(fd)
    return out if rows == shape[0] else out[:rows]


_DECODERS: dict = {}


def _decoder(config: dict):
    """The numcodecs codec for ``config`` (cached: codecs are stateless for decoding)."""
    key = tuple(sorted(config.items()))
    codec = _DECODERS.get(key)
    if codec is None:
        import numcodecs

        codec = _DECODERS[key] = numcodecs.get_codec(dict(config))
    return codec


def _local_root(z) -> str | None:
    """The directory of ``z`` when it lives in a local store, else None."""
    try:
        from zarr.storage import LocalStore
    except ImportError:  # pragma: no cover - zarr v3 is a dependency
        return None
    store = getattr(z, "store", None)
    if not isinstance(store, LocalStore):
        return None
    return os.path.join(str(store.root), z.path) if z.path else str(store.root)


def _compressor_v3(codecs) -> tuple[bool, dict | None]:
    """(supported, numcodecs config) for a v3 codec chain: bytes (little-endian),
    optionally followed by one of blosc, zstd or gzip."""
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

    if not codecs or not isinstance(codecs[0], BytesCodec):
        return False, None
    endian = getattr(codecs[0].endian, "value", codecs[0].endian)
    if endian not in (None, "little"):
        return False, None
    rest = codecs[1:]
    if not rest:
        return True, None
    if len(rest) > 1:
        return False, None
    c = rest[0]
    if isinstance(c, BloscCodec):  # blosc's frame header carries cname and shuffle
        return True, {"id": "blosc"}
    if isinstance(c, ZstdCodec):
        return True, {"id": "zstd"}
    if isinstance(c, GzipCodec):
        return True, {"id": "gzip"}
    return False, None


def chunk_layout(z) -> ChunkLayout | None:
    """A ChunkLayout when ``z``'s chunk files can be read directly, else None (read it
    through zarr)."""
    root = _local_root(z)
    meta = getattr(z, "metadata", None)
    if root is None or meta is None or getattr(meta, "zarr_format", None) != 3:
        return None
    if len(z.shape) != 2 or not hasattr(meta, "codecs"):
        return None
    grid = meta.chunk_grid
    chunk_shape = tuple(getattr(grid, "chunk_shape", ()) or ())
    if len(chunk_shape) != 2 or chunk_shape[1] != z.shape[1]:
        return None
    dtype = np.dtype(z.dtype)
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        return None
    supported, compressor = _compressor_v3(meta.codecs)
    if not supported:
        return None
    if getattr(meta, "storage_transformers", ()):
        return None
    n_chunks = -(-int(z.shape[0]) // chunk_shape[0])
    keys = tuple(meta.encode_chunk_key((i, 0)) for i in range(n_chunks))
    fill = meta.fill_value
    fill = 0.0 if fill is None else float(fill)
    return ChunkLayout(root=root, keys=keys, chunk_rows=int(chunk_shape[0]),
                       n_features=int(z.shape[1]), dtype=dtype.newbyteorder("<").str,
                       fill_value=fill, compressor=compressor)


def _token(layout: ChunkLayout, shape) -> str:
    """A name for the graph that changes when any chunk file changes (size or mtime)."""
    from dask.base import tokenize

    stamps = []
    for key in layout.keys:
        try:
            st = os.stat(os.path.join(layout.root, key))
            stamps.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            stamps.append(None)
    return tokenize(layout, tuple(shape), stamps)


def zarr_to_dask(z):
    """``z`` (a zarr.Array) as a dask array with one task per row-chunk, reading chunk
    files directly where chunk_layout allows, else through ``dask.array.from_zarr``."""
    import dask.array as da

    layout = chunk_layout(z)
    n = int(z.shape[0])
    if layout is None or n == 0:
        return da.from_zarr(z)
    starts = range(0, n, layout.chunk_rows)
    rows = tuple(min(layout.chunk_rows, n - s) for s in starts)
    name = "zarr-chunks-" + _token(layout, z.shape)
    graph = {(name, i, 0): (read_chunk, layout, i, r) for i, r in enumerate(rows)}
    return da.Array(graph, name, chunks=(rows, (layout.n_features,)),
                    dtype=np.dtype(layout.dtype))
