"""Direct chunk-file reads of local Zarr arrays give exactly what zarr gives, fall back to
zarr for every layout they do not handle, and name the file of a damaged chunk."""

from __future__ import annotations

import os

import dask.array as da
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, TransposeCodec, ZstdCodec

from streammix import GaussianMixture, InvalidInputError
from streammix.execution.inputs import as_dask_array
from streammix.execution.dask_source import DaskSource
from streammix.execution.zarr_chunks import chunk_files, direct_chunks, zarr_to_dask

CODECS = {"none": None, "blosc-lz4": BloscCodec(cname="lz4", shuffle="shuffle"),
          "zstd": ZstdCodec(), "gzip": GzipCodec()}


def make(tmp_path, name, X, chunks=(100, 5), **kw):
    path = str(tmp_path / f"{name}.zarr")
    z = zarr.create_array(store=path, shape=X.shape, chunks=chunks, dtype=X.dtype, **kw)
    z[:] = X
    return path


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(1003, 5))


@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_direct_read_equals_zarr(tmp_path, X, codec, dtype):
    path = make(tmp_path, "x", X.astype(dtype), compressors=CODECS[codec])
    z = zarr.open_array(path, mode="r")
    refs = chunk_files(z)
    assert refs is not None and (refs[0].compressor is None) == (codec == "none")
    a = zarr_to_dask(z)
    assert a.name.startswith("zarr-chunks-") and a.chunks == ((100,) * 10 + (3,), (5,))
    got = a.compute(scheduler="sync")
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, z[:])


def test_missing_chunk_reads_as_fill_value(tmp_path, X):
    path = str(tmp_path / "x.zarr")
    z = zarr.create_array(store=path, shape=X.shape, chunks=(100, 5), dtype="float64",
                          fill_value=np.nan, compressors=None)
    z[:500] = X[:500]
    z[600:] = X[600:]
    assert not os.path.exists(os.path.join(path, "c", "5", "0"))
    got = zarr_to_dask(zarr.open_array(path, mode="r")).compute(scheduler="sync")
    np.testing.assert_array_equal(got, zarr.open_array(path, mode="r")[:])
    assert np.isnan(got[500:600]).all()
    # and the fit names the chunk that holds the fill value
    with pytest.raises(InvalidInputError, match="chunk 5 .*row 500"):
        GaussianMixture(2, random_state=0).fit(path)


def test_chunks_are_writable_and_writes_stay_private(tmp_path, X):
    """Kernels get ordinary writable arrays; writing one never reaches the file."""
    path = make(tmp_path, "x", X, compressors=None)
    chunk = chunk_files(zarr.open_array(path, mode="r"))[0].read()
    assert chunk.flags.writeable and chunk.flags.c_contiguous
    chunk[:] = -1.0
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[:100], X[:100])


def test_rewritten_chunk_keeps_mapped_contents_and_changes_the_graph_name(tmp_path, X):
    path = make(tmp_path, "x", X, compressors=None)
    z = zarr.open_array(path, mode="r")
    before = zarr_to_dask(z)
    chunk = chunk_files(z)[1].read(reuse=True)  # mapped
    zarr.open_array(path, mode="r+")[100:200] = 7.0  # zarr writes a new file, renamed
    np.testing.assert_array_equal(chunk, X[100:200])
    after = zarr_to_dask(zarr.open_array(path, mode="r"))
    assert after.name != before.name
    assert (after.compute(scheduler="sync")[100:200] == 7.0).all()


def test_truncated_uncompressed_chunk_names_the_file(tmp_path, X):
    path = make(tmp_path, "x", X, compressors=None)
    chunk_file = os.path.join(path, "c", "3", "0")
    with open(chunk_file, "r+b") as f:
        f.truncate(100)
    with pytest.raises(InvalidInputError, match=r"c/3/0.*100 bytes.*truncated"):
        as_dask_array(path).compute(scheduler="sync")


def test_corrupt_compressed_chunk_names_the_file(tmp_path, X):
    path = make(tmp_path, "x", X, compressors=ZstdCodec())
    with open(os.path.join(path, "c", "2", "0"), "wb") as f:
        f.write(b"not a zstd frame at all")
    with pytest.raises(InvalidInputError, match=r"c/2/0.*could not be decoded with zstd"):
        as_dask_array(path).compute(scheduler="sync")


def fallback_cases(tmp_path, X):
    yield "columns split", make(tmp_path, "split", X, chunks=(100, 2))
    yield "big-endian", make(tmp_path, "be", X, serializer=BytesCodec(endian="big"),
                             compressors=None)
    yield "transposed", make(tmp_path, "t", X, filters=[TransposeCodec(order=(1, 0))],
                             compressors=None)
    yield "sharded", make(tmp_path, "sh", X, chunks=(100, 5), shards=(200, 5))
    yield "zarr v2", make(tmp_path, "v2", X, zarr_format=2)
    z = zarr.create_array(store=zarr.storage.MemoryStore(), shape=X.shape,
                          chunks=(100, 5), dtype="float64")
    z[:] = X
    yield "memory store", z


def test_other_layouts_fall_back_to_zarr_with_the_same_values(tmp_path, X):
    for what, source in fallback_cases(tmp_path, X):
        z = zarr.open_array(source, mode="r") if isinstance(source, str) else source
        assert chunk_files(z) is None, what
        a = zarr_to_dask(z)
        assert not a.name.startswith("zarr-chunks-"), what
        np.testing.assert_array_equal(a.compute(scheduler="sync"), X, err_msg=what)


def test_fit_from_direct_reads_equals_fit_through_zarr(tmp_path):
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(loc=c, size=(3000, 4)) for c in (-4, 0, 4)])
    kw = dict(n_components=3, covariance_type="full", tol=0, max_iter=5,
              means_init=np.array([[-3.0] * 4, [0.5] * 4, [3.0] * 4]))
    for codec in ("none", "blosc-lz4"):
        path = make(tmp_path, codec, X, chunks=(1000, 4), compressors=CODECS[codec])
        direct = GaussianMixture(**kw).fit(path)
        through_zarr = GaussianMixture(**kw).fit(da.from_zarr(path))
        # equal to rounding (the data are O(1): a middle component's mean is ~1e-3)
        for attr in ("means_", "covariances_", "weights_"):
            np.testing.assert_allclose(getattr(direct, attr), getattr(through_zarr, attr),
                                       rtol=1e-10, atol=1e-9, err_msg=attr)


def test_read_zarr_is_public_and_persistable(tmp_path, X):
    import streammix

    path = make(tmp_path, "x", X, compressors=None)
    a = streammix.read_zarr(path)
    assert a.name.startswith("zarr-chunks-")
    np.testing.assert_array_equal(a.persist(scheduler="threads").compute(), X)
    np.testing.assert_array_equal(streammix.read_zarr(zarr.open_array(path)).compute(), X)
    with pytest.raises(InvalidInputError, match="no Zarr array"):
        streammix.read_zarr(str(tmp_path / "nope.zarr"))
    with pytest.raises(InvalidInputError, match="expected a path, URL or zarr.Array"):
        streammix.read_zarr(X)


def test_unmodified_arrays_are_read_inside_the_kernel_tasks(tmp_path, X):
    """An array straight from zarr_to_dask is read by the statistics tasks themselves;
    a sliced, cast or persisted one keeps its own graph (and its persisted chunks)."""
    path = make(tmp_path, "x", X, compressors=None)
    a = zarr_to_dask(zarr.open_array(path, mode="r"))
    refs = direct_chunks(a)
    assert refs is not None and [r.rows for r in refs] == [100] * 10 + [3]
    src = DaskSource(a)
    assert src.blocks == refs
    np.testing.assert_array_equal(np.concatenate([c for c, _ in src.iter_chunks()]), X)
    for other in (a[:500], a.astype("float32"), a.persist(scheduler="threads"), a + 0):
        assert direct_chunks(other) is None
        assert not isinstance(DaskSource(other).blocks[0], type(refs[0]))
    # the statistics are the same either way
    g = dict(n_components=2, max_iter=3, tol=0, means_init=X[:2], random_state=0)
    fitted = GaussianMixture(**g).fit(a)
    persisted = GaussianMixture(**g).fit(a.persist(scheduler="threads"))
    np.testing.assert_array_equal(fitted.means_, persisted.means_)


def test_reuse_decodes_into_one_buffer_per_thread(tmp_path, X):
    path = make(tmp_path, "x", X, compressors=CODECS["blosc-lz4"])
    refs = chunk_files(zarr.open_array(path, mode="r"))
    first = refs[0].read(reuse=True)
    np.testing.assert_array_equal(first, X[:100])
    second = refs[1].read(reuse=True)
    assert np.shares_memory(first, second)  # the scratch buffer, overwritten
    np.testing.assert_array_equal(second, X[100:200])
    own = refs[2].read()
    assert not np.shares_memory(own, second)
    np.testing.assert_array_equal(refs[10].read(reuse=True), X[1000:])  # edge chunk


def test_persisted_uncompressed_chunks_hold_no_file_descriptors(tmp_path):
    """A mapping keeps a descriptor open while it lives: chunks that may be kept (a
    persisted array) are read into arrays of their own, so 3,000 of them do not use up
    the process's descriptors; a pass still maps each chunk for the time it is used."""
    from streammix import read_zarr

    data = np.random.default_rng(3).normal(size=(30_000, 2))
    path = make(tmp_path, "many", data, chunks=(10, 2), compressors=None)
    before = len(os.listdir("/proc/self/fd"))
    held = read_zarr(path).persist(scheduler="threads")
    assert len(os.listdir("/proc/self/fd")) - before < 100
    np.testing.assert_array_equal(held.compute(), data)
