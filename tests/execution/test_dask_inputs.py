"""Bad input on the Dask/Zarr paths gets a clear error, before any long work where it can
be known up front, and naming the chunk and row where it cannot."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

from streammix import GaussianMixture, InvalidDtypeError, InvalidInputError


def test_missing_zarr_path(tmp_path):
    with pytest.raises(InvalidInputError, match="no Zarr array at .*nope.zarr"):
        GaussianMixture(2).fit(str(tmp_path / "nope.zarr"))


def test_path_to_a_group_not_an_array(tmp_path):
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    with pytest.raises(InvalidInputError, match="could not open a Zarr array"):
        GaussianMixture(2).fit(str(tmp_path / "g.zarr"))


@pytest.mark.parametrize("shape,chunks", [((100,), (10,)), ((10, 10, 3), (5, 5, 3))])
def test_non_2d(tmp_path, shape, chunks):
    z = zarr.create_array(store=str(tmp_path / "x.zarr"), shape=shape, chunks=chunks,
                          dtype="float64")
    with pytest.raises(InvalidInputError, match="must be a 2-D array"):
        GaussianMixture(2).fit(z)
    with pytest.raises(InvalidInputError, match="must be a 2-D array"):
        GaussianMixture(2).fit(da.zeros(shape, chunks=chunks))


def test_unknown_chunk_sizes():
    x = da.random.default_rng(0).normal(size=(1000, 3), chunks=(100, 3))
    x = x[x[:, 0] > 0]
    with pytest.raises(InvalidInputError, match="unknown chunk sizes.*compute_chunk_sizes"):
        GaussianMixture(2).fit(x)


@pytest.mark.parametrize("dtype,word", [("int64", "integer"), ("int32", "integer"),
                                        ("bool", "boolean"), ("complex128", "complex")])
def test_non_float_dtypes(tmp_path, dtype, word):
    with pytest.raises(InvalidDtypeError, match=f"{word}.*astype"):
        GaussianMixture(2).fit(da.zeros((100, 3), chunks=(10, 3), dtype=dtype))


def test_object_dtype():
    x = da.from_array(np.array([["a", "b"]] * 10, dtype=object), chunks=(5, 2))
    with pytest.raises(InvalidDtypeError, match="object"):
        GaussianMixture(2).fit(x)


def test_nan_in_one_chunk_names_chunk_and_row(tmp_path):
    X = np.random.default_rng(0).normal(size=(10_000, 4))
    X[7_321, 2] = np.nan
    X[9_000, 1] = np.inf
    z = zarr.create_array(store=str(tmp_path / "x.zarr"), shape=X.shape, chunks=(1000, 4),
                          dtype="float64")
    z[:] = X
    with pytest.raises(InvalidInputError) as err:
        GaussianMixture(2, random_state=0).fit(str(tmp_path / "x.zarr"))
    msg = str(err.value)
    assert "chunk 7" in msg and "row 7321" in msg and "column 2" in msg and "NaN" in msg


def test_nan_at_predict_time_names_the_row():
    X = np.random.default_rng(0).normal(size=(2000, 3))
    g = GaussianMixture(2, random_state=0).fit(X)
    Y = X.copy()
    Y[1500, 0] = np.nan
    with pytest.raises(InvalidInputError, match="row 1500"):
        g.predict(da.from_array(Y, chunks=(400, 3))).compute()


def test_too_few_rows_and_wrong_feature_count():
    with pytest.raises(InvalidInputError, match="n_components = 5"):
        GaussianMixture(5).fit(da.zeros((3, 2), chunks=(2, 2)))
    g = GaussianMixture(2, random_state=0).fit(np.random.default_rng(0).normal(size=(500, 3)))
    with pytest.raises(InvalidInputError, match="4 features.*3 features"):
        g.predict(da.zeros((10, 4), chunks=(5, 4)))


def test_empty_dask_array():
    with pytest.raises(InvalidInputError, match="empty"):
        GaussianMixture(1).fit(da.zeros((0, 3), chunks=(1, 3)))
