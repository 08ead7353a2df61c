"""Read a local Zarr array's row chunks straight from their files, as a dask array.

EM re-reads every chunk on every pass. zarr's general read path (an event loop, a codec
pipeline, a copy of the decoded chunk into the output selection) costs 35-60 ms per
32 MB chunk here, as much as the diag kernel itself (44 ms). For the common layout (a
local store, rows chunked, one chunk across the columns, little-endian floats, no codec
but an optional compressor) the chunk file is the array's bytes: an uncompressed chunk is
memory-mapped (copy-on-write, pages taken from the OS cache, no copy: ~2 ms) when the
reader drops it before its next read (a pass), read into an array otherwise; a
compressed one is decoded once, from a mapping of its file, straight into its output
buffer. Any other layout, or a remote store, goes through ``dask.array.from_zarr``
unchanged. The workers must see the local path too (shared storage): a chunk file that
existed where the array was opened but is missing on a worker is an error, never zeros. DaskSource recognises an unmodified array made here (``direct_chunks``) and
lets each statistics task read its own chunk: one task per chunk instead of two.

zarr writes chunk files atomically (a new file renamed over the old), so a chunk that is
rewritten while mapped keeps its old contents in the mapping.
"""

from __future__ import annotations

import mmap
import os
import threading
from functools import lru_cache
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError


@dataclass(frozen=True)
class ChunkFile:
    """One row-chunk of a local Zarr array and how to decode it: small and picklable (it
    travels to the workers inside the task that reads it). ``stamp`` (mtime, size) makes
    the task's token change when the file does."""

    path: str
    rows: int                # rows of this chunk (an edge chunk is stored full size)
    chunk_rows: int          # rows of a full chunk
    n_features: int
    dtype: str               # numpy dtype string, little-endian
    fill_value: float        # the value of a chunk whose file does not exist
    compressor: str | None   # numcodecs id of the one compressor, or None
    stamp: tuple | None      # (st_mtime_ns, st_size), None when the file does not exist

    @property
    def nbytes(self) -> int:
        """Bytes of the full, uncompressed chunk."""
        return self.chunk_rows * self.n_features * np.dtype(self.dtype).itemsize

    def read(self, reuse: bool = False) -> np.ndarray:
        """The chunk's rows, for a caller that may keep them (read or decoded into
        an array of their own). ``reuse=True``, for a task that drops the chunk before
        its thread's next read: uncompressed, the file mapped (no copy); compressed,
        decoded into this thread's scratch buffer, which the next read overwrites."""
        return read_chunk(self, reuse)

    def read_into(self, out: np.ndarray) -> None:
        """The chunk's rows into ``out`` (rows x n_features, C order, this dtype): an
        uncompressed chunk is read straight into it (a work unit gathering small
        chunks: no mapping or buffer per chunk), a compressed one decoded and copied."""
        read_chunk_into(self, out)


def read_chunk_into(ref: ChunkFile, out: np.ndarray) -> None:
    """``ChunkFile.read_into``."""
    read_chunk(ref, into=out)


_SCRATCH = threading.local()


def _scratch(shape: tuple, dtype: str) -> np.ndarray:
    """This thread's decode buffer of ``shape``: one per thread, kept between reads.
    A fresh 32 MB np.empty costs ~6 ms of page faults and zeroing in a Dask worker
    (its nanny sets MALLOC_TRIM_THRESHOLD_, so glibc maps and unmaps every large
    block), a third of a Blosc-LZ4 decode."""
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.shape != shape or buf.dtype != np.dtype(dtype):
        buf = _SCRATCH.buf = np.empty(shape, dtype=dtype)
    return buf


def _read_exactly(fd: int, path: str, view: memoryview) -> None:
    """Fill ``view`` from the file's start (a read may return less than asked)."""
    done = 0
    while done < len(view):
        got = os.readv(fd, [view[done:]])
        if got == 0:
            raise InvalidInputError(f"Zarr chunk file {path!r}: read {done} of "
                                    f"{len(view)} bytes (changed while read?)")
        done += got


def read_chunk(ref: ChunkFile, reuse: bool = False, into: np.ndarray | None = None
               ) -> np.ndarray:
    """The rows of the chunk ``ref`` names (zarr's fill value if it was never written);
    ``reuse`` as in ChunkFile.read. ``into``: an array of the chunk's rows to fill
    instead (ChunkFile.read_into): an uncompressed file is read straight into it."""
    path, shape = ref.path, (ref.chunk_rows, ref.n_features)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if ref.stamp is not None:  # it was there where the array was opened
            raise InvalidInputError(
                f"Zarr chunk file {path!r} is not on {_this_host()}, but it was where the "
                "array was opened: every Dask worker must see the array at the same path "
                "(shared storage), or open it by a URL every worker can reach (s3://, "
                "http://...)") from None
        # never written: zarr's fill value
        if into is not None:
            into[...] = ref.fill_value
            return into
        return np.full((ref.rows, ref.n_features), ref.fill_value, dtype=ref.dtype)
    try:
        size = os.fstat(fd).st_size
        if ref.compressor is None:
            if size != ref.nbytes:
                raise InvalidInputError(
                    f"Zarr chunk file {path!r} holds {size} bytes; an uncompressed "
                    f"{shape[0]} x {shape[1]} {ref.dtype} chunk holds {ref.nbytes}: the "
                    "file is truncated or not this array's")
            if into is not None:
                _read_exactly(fd, path, memoryview(into).cast("B"))  # its rows only
                return into
            if reuse:
                # private and writable: pages come from the OS cache on first touch and
                # are copied only if written (MAP_POPULATE here would copy them all)
                buf = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE,
                                prot=mmap.PROT_READ | mmap.PROT_WRITE)
                out = np.frombuffer(buf, dtype=ref.dtype).reshape(shape)
            else:
                # a chunk that may be kept (persisted...) is read into its own array: a
                # mapping holds a file descriptor while it lives, and 20,000 persisted
                # mapped chunks would use up the process's descriptors
                out = np.empty(shape, dtype=ref.dtype)
                _read_exactly(fd, path, memoryview(out).cast("B"))
        else:
            out = _scratch(shape, ref.dtype) if reuse or into is not None \
                else np.empty(shape, dtype=ref.dtype)
            # decoded from a read-only mapping of the file (unmapped when the last
            # reference goes, at return): no copy of the frame
            frame = (mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
                     if size else b"")
            try:
                _decoder(ref.compressor).decode(frame, out=out)
            except Exception as exc:
                raise InvalidInputError(
                    f"Zarr chunk file {path!r} could not be decoded with "
                    f"{ref.compressor}: {type(exc).__name__}: {exc}") from exc
    finally:
        os.close(fd)
    out = out if ref.rows == shape[0] else out[: ref.rows]
    if into is not None:  # decoded: copied in
        into[...] = out
        return into
    return out


def _this_host() -> str:
    """This Dask worker's address (or this machine's name outside a worker), for errors."""
    try:
        from distributed import get_worker

        return f"the worker at {get_worker().address}"
    except (ImportError, ValueError):
        import socket

        return f"host {socket.gethostname()}"


@lru_cache(maxsize=None)
def _decoder(codec_id: str):
    """The numcodecs codec ``codec_id`` (blosc, zstd, gzip): decoding needs no other
    parameter (blosc's frame header carries cname and shuffle), so one serves all."""
    import numcodecs

    return numcodecs.get_codec({"id": codec_id})


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


def _compressor_v3(codecs) -> tuple[bool, str | None]:
    """(supported, numcodecs id of the compressor or None) for a v3 codec chain: bytes
    (little-endian), optionally followed by one of blosc, zstd or gzip."""
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

    if not codecs or not isinstance(codecs[0], BytesCodec):
        return False, None
    if getattr(codecs[0].endian, "value", codecs[0].endian) not in (None, "little"):
        return False, None
    if len(codecs) == 1:
        return True, None
    ids = {BloscCodec: "blosc", ZstdCodec: "zstd", GzipCodec: "gzip"}
    if len(codecs) > 2 or type(codecs[1]) not in ids:
        return False, None
    return True, ids[type(codecs[1])]


def chunk_files(z) -> list[ChunkFile] | None:
    """One ChunkFile per row-chunk when ``z``'s chunk files can be read directly, else
    None (read it through zarr)."""
    root = _local_root(z)
    meta = getattr(z, "metadata", None)
    if root is None or meta is None or getattr(meta, "zarr_format", None) != 3:
        return None
    if len(z.shape) != 2 or not hasattr(meta, "codecs") or int(z.shape[0]) == 0:
        return None
    chunk_shape = tuple(getattr(meta.chunk_grid, "chunk_shape", ()) or ())
    if len(chunk_shape) != 2 or chunk_shape[1] != z.shape[1]:
        return None
    dtype = np.dtype(z.dtype)
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        return None
    supported, compressor = _compressor_v3(meta.codecs)
    if not supported or getattr(meta, "storage_transformers", ()):
        return None
    fill = 0.0 if meta.fill_value is None else float(meta.fill_value)
    n, chunk_rows = int(z.shape[0]), int(chunk_shape[0])
    refs = []
    for i, start in enumerate(range(0, n, chunk_rows)):
        path = os.path.join(root, meta.encode_chunk_key((i, 0)))
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        refs.append(ChunkFile(path, min(chunk_rows, n - start), chunk_rows, int(z.shape[1]),
                              dtype.newbyteorder("<").str, fill, compressor, stamp))
    return refs


def zarr_to_dask(z):
    """``z`` (a zarr.Array) as a dask array with one task per row-chunk, reading chunk
    files directly where chunk_files allows, else through ``dask.array.from_zarr``."""
    import dask.array as da
    from dask.base import tokenize

    refs = chunk_files(z)
    if refs is None:
        return da.from_zarr(z)
    name = "zarr-chunks-" + tokenize(refs)
    graph = {(name, i, 0): (read_chunk, ref) for i, ref in enumerate(refs)}
    return da.Array(graph, name, chunks=(tuple(r.rows for r in refs), (refs[0].n_features,)),
                    dtype=np.dtype(refs[0].dtype))


def direct_chunks(X) -> list[ChunkFile] | None:
    """The ChunkFiles behind ``X`` when X is exactly an array zarr_to_dask made (not
    sliced, cast or persisted: its graph is nothing but one read task per chunk), so a
    task can read its chunk itself instead of depending on a separate read task; else
    None."""
    name = getattr(X, "name", "")
    if not name.startswith("zarr-chunks-"):
        return None
    graph, n = X.dask, len(X.chunks[0])
    if len(graph) != n:
        return None
    tasks = [graph.get((name, i, 0)) for i in range(n)]
    if not all(isinstance(t, tuple) and len(t) == 2 and t[0] is read_chunk for t in tasks):
        return None  # persisted: the graph holds the chunks (or futures), not reads
    return [t[1] for t in tasks]
