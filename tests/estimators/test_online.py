"""OnlineGaussianMixture: stepwise EM quality, its equality with batch EM for one full
step, drifting streams with a component appearing, identities, and bad batches."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from streammix import GaussianMixture, InvalidInputError, InvalidParameterError, OnlineGaussianMixture
from tests.conftest import make_blobs

TYPES = ["full", "tied", "diag", "spherical"]


def shared_init(X, K, cov_type):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = GaussianMixture(K, covariance_type=cov_type, max_iter=1, init_params="k-means++",
                            random_state=0).fit(X)
    return dict(weights_init=g.weights_, means_init=g.means_, precisions_init=g.precisions_)


@pytest.mark.slow
@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_one_pass_reaches_batch_em_within_one_percent(cov_type):
    """1,000,000 rows in batches of 10,000: held-out mean log-likelihood within 1% of
    converged batch EM from the same start."""
    X, _ = make_blobs(1_010_000, 16, 16, seed=3, spread=3.0)
    Xtr, Xte = X[:1_000_000], X[1_000_000:]
    init = shared_init(Xtr[:20_000], 16, cov_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = GaussianMixture(16, covariance_type=cov_type, tol=1e-6, max_iter=300,
                                **init).fit(Xtr)
    # stepwise EM alone against batch EM from the same start
    online = OnlineGaussianMixture(16, covariance_type=cov_type, split_merge=False, **init)
    for i in range(0, len(Xtr), 10_000):
        online.partial_fit(Xtr[i : i + 10_000])
    assert online.n_updates_ == 100
    ref, got = batch.score(Xte), online.score(Xte)
    assert abs(got - ref) / abs(ref) < 0.01, (got, ref)


@pytest.mark.parametrize("cov_type", TYPES)
def test_stationary_stream_small(cov_type):
    X, _ = make_blobs(101_000, 4, 4, seed=4)
    Xtr, Xte = X[:100_000], X[100_000:]
    init = shared_init(Xtr[:5000], 4, cov_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = GaussianMixture(4, covariance_type=cov_type, tol=1e-6, max_iter=300,
                                **init).fit(Xtr)
    online = OnlineGaussianMixture(4, covariance_type=cov_type, split_merge=False, **init)
    for i in range(0, len(Xtr), 2000):
        online.partial_fit(Xtr[i : i + 2000])
    assert abs(online.score(Xte) - batch.score(Xte)) / abs(batch.score(Xte)) < 0.01


@pytest.mark.parametrize("cov_type", TYPES)
def test_full_step_with_alpha_one_equals_a_batch_em_iteration(cov_type):
    X, _ = make_blobs(20_000, 5, 3, seed=5)
    init = shared_init(X[:3000], 3, cov_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = GaussianMixture(3, covariance_type=cov_type, max_iter=1, tol=0, **init).fit(X)
    online = OnlineGaussianMixture(3, covariance_type=cov_type, alpha=1.0, t0=0.0, **init)
    online.partial_fit(X)
    assert online.eta_ == 1.0
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(online, name), getattr(batch, name), rtol=1e-10)
    assert online.lower_bound_ == pytest.approx(batch.lower_bound_, rel=1e-12)


def test_buffering_then_initialisation():
    X, _ = make_blobs(5000, 3, 3, seed=6)
    online = OnlineGaussianMixture(3, init_size=1500, random_state=0)
    online.partial_fit(X[:500])
    online.partial_fit(X[500:1000])
    assert not hasattr(online, "means_")          # still buffering, not an error
    online.partial_fit(X[1000:1600])
    assert hasattr(online, "means_") and online.n_updates_ == 0
    assert online.n_samples_seen_ == 1600
    online.partial_fit(X[1600:2600])
    assert online.n_updates_ == 1 and online.n_samples_seen_ == 2600
    assert np.array_equal(online.component_ids_, [0, 1, 2])


def test_step_size_schedule_and_floor():
    X, _ = make_blobs(6000, 2, 2, seed=7)
    init = shared_init(X[:1000], 2, "diag")
    o = OnlineGaussianMixture(2, covariance_type="diag", alpha=0.7, t0=1.0, eta_min=0.3, **init)
    etas = []
    for i in range(0, 6000, 500):
        o.partial_fit(X[i : i + 500])
        etas.append(o.eta_)
    expected = [max(0.3, (t + 1.0) ** -0.7) for t in range(1, 13)]
    np.testing.assert_allclose(etas, expected)


def _drifting_stream(n_batches=200, batch=1500, seed=0):
    """Three clusters whose means drift slowly; a fourth appears half-way."""
    rng = np.random.default_rng(seed)
    start = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0]])
    drift = np.array([[1.5, 1.0], [-1.0, 1.5], [1.5, -1.0], [0.0, 0.0]])
    for b in range(n_batches):
        frac = b / n_batches
        means = start + drift * frac
        k = 4 if b >= n_batches // 2 else 3
        labels = rng.integers(0, k, size=batch)
        X = means[labels] + rng.normal(scale=0.6, size=(batch, 2))
        yield b, X, labels


def test_drifting_stream_keeps_labels_and_picks_up_a_new_component():
    model = OnlineGaussianMixture(3, max_components=4, eta_min=0.05, init_size=1500,
                                  random_state=0)
    mapping = {}          # true component -> model label, must never change
    first_seen = None
    for b, X, truth in _drifting_stream():
        if b > 0 and hasattr(model, "means_"):
            pred = model.predict(X)
            if b >= 3:
                for k in np.unique(truth):
                    major = int(np.bincount(pred[truth == k]).argmax())
                    if k == 3 and first_seen is None:
                        continue
                    assert mapping.setdefault(int(k), major) == major, (b, k, mapping)
                if b >= 3 and first_seen is None and b < 100:
                    assert adjusted_rand_score(truth, pred) > 0.9, b
                if first_seen is not None and b >= first_seen:
                    assert adjusted_rand_score(truth, pred) > 0.9, b
        model.partial_fit(X)
        if b >= 100 and first_seen is None and len(model.weights_) == 4:
            first_seen = b + 1
    assert first_seen is not None and first_seen - 100 <= 5, first_seen
    births = [e for e in model.events_ if e["event"] == "birth" and e["reason"] == "novel points"]
    assert len(births) == 1 and births[0]["component_id"] == 3
    assert list(model.component_ids_) == [0, 1, 2, 3]
    assert len(set(mapping.values())) == 4


def test_dead_component_is_reseeded_by_a_split_and_recorded():
    X, _ = make_blobs(20_000, 2, 2, seed=8, spread=10.0)
    means = np.vstack([X[:2], [[1e3, 1e3]]])  # the third mean is far from every point
    o = OnlineGaussianMixture(3, covariance_type="full", weights_init=[0.4, 0.4, 0.2],
                              means_init=means, precisions_init=np.stack([np.eye(2)] * 3),
                              split_merge=False)  # (moves would merge the halves back)
    for i in range(0, 20_000, 500):   # its share decays by (1 - eta_t) per batch
        o.partial_fit(X[i : i + 500])
    kinds = [e["event"] for e in o.events_ if e["update"] > 0]
    assert "death" in kinds and "split" in kinds
    assert 2 not in o.component_ids_ and o.component_ids_.max() >= 3   # ids never reused
    assert np.all(o.weights_ > o._min_weight())
    assert np.all(np.isfinite(o.covariances_))


def test_fit_over_iterables_dask_and_zarr(tmp_path):
    import dask.array as da
    import zarr

    X, _ = make_blobs(30_000, 3, 3, seed=9)
    a = OnlineGaussianMixture(3, random_state=0, init_size=3000).fit(
        [X[i : i + 3000] for i in range(0, 30_000, 3000)])
    b = OnlineGaussianMixture(3, random_state=0, init_size=3000).fit(
        da.from_array(X, chunks=(3000, 3)))
    z = zarr.create_array(store=str(tmp_path / "x.zarr"), shape=X.shape, chunks=(3000, 3),
                          dtype="float64")
    z[:] = X
    c = OnlineGaussianMixture(3, random_state=0, init_size=3000).fit(str(tmp_path / "x.zarr"))
    assert a.n_updates_ == b.n_updates_ == c.n_updates_ == 9
    np.testing.assert_allclose(b.means_, a.means_, rtol=1e-12)
    np.testing.assert_allclose(c.means_, a.means_, rtol=1e-12)
    s = OnlineGaussianMixture(3, random_state=0, init_size=3000).fit(
        da.from_array(X, chunks=(3000, 3)), shuffle=True, n_passes=2)
    assert s.n_updates_ == 19 and np.all(np.isfinite(s.means_))


def test_bad_batches_leave_the_model_unchanged():
    X, _ = make_blobs(6000, 3, 2, seed=10)
    o = OnlineGaussianMixture(2, init_size=2000, random_state=0).fit(X[:4000])
    snapshot = {k: np.copy(v) for k, v in vars(o).items() if isinstance(v, np.ndarray)}
    updates = o.n_updates_
    bad = X[4000:4500].copy()
    bad[17, 1] = np.nan
    with pytest.raises(InvalidInputError, match="row 17, column 1"):
        o.partial_fit(bad)
    with pytest.raises(InvalidInputError, match="4 features"):
        o.partial_fit(np.zeros((10, 4)))
    bad[17, 1] = np.inf
    with pytest.raises(InvalidInputError):
        o.partial_fit(bad)
    with pytest.raises(InvalidInputError):
        o.partial_fit(X[4000:4500], sample_weight=-np.ones(500))
    o.partial_fit(np.empty((0, 3)))           # empty batch: a no-op
    assert o.n_updates_ == updates
    for k, v in snapshot.items():
        assert np.array_equal(getattr(o, k), v), k


@pytest.mark.parametrize("kw,match", [
    (dict(alpha=0.5), "alpha"), (dict(alpha=1.2), "alpha"), (dict(eta_min=1.0), "eta_min"),
    (dict(t0=-1), "t0"), (dict(init_params="bogus"), "init_params"),
    (dict(min_weight=0.9), "min_weight"), (dict(max_components=1, n_components=2), "max_components"),
])
def test_bad_parameters(kw, match):
    with pytest.raises(InvalidParameterError, match=match):
        OnlineGaussianMixture(**{"n_components": 2, **kw}).partial_fit(np.zeros((5, 2)))


@pytest.mark.parametrize("chunk_size", [None, 64])
def test_bad_values_are_found_in_any_chunk_of_a_batch(chunk_size):
    """The NaN/inf scan runs in the chunk tasks of an update: the error still names the
    batch's global row and column, counts every bad value, and changes nothing."""
    X, _ = make_blobs(6000, 3, 2, seed=10)
    o = OnlineGaussianMixture(2, init_size=2000, random_state=0, chunk_size=chunk_size)
    o.fit(X[:4000])
    snapshot = {k: np.copy(v) for k, v in vars(o).items() if isinstance(v, np.ndarray)}
    updates, seen = o.n_updates_, o.n_samples_seen_
    bad = X[4000:4500].copy()
    bad[300, 2] = -np.inf
    bad[401, 0] = np.nan
    with pytest.raises(InvalidInputError, match=r"2 NaN or infinite values; the first is "
                                                r"-inf at row 300, column 2"):
        o.partial_fit(bad)
    huge = X[4000:4500].copy()
    huge[450, 1] = 1e200
    with pytest.raises(InvalidInputError, match="overflow"):
        o.partial_fit(huge)
    # bad values are reported before bad weights, as when the model is not yet fitted
    with pytest.raises(InvalidInputError, match="row 300, column 2"):
        o.partial_fit(bad, sample_weight=-np.ones(500))
    with pytest.raises(InvalidInputError, match="row 300, column 2"):
        o.partial_fit(bad, sample_weight=np.array(["w"] * 500))
    assert o.n_updates_ == updates and o.n_samples_seen_ == seen
    for k, v in snapshot.items():
        assert np.array_equal(getattr(o, k), v), k
    o.partial_fit(X[4000:4500])
    assert o.n_updates_ == updates + 1


def test_precisions_follow_every_update():
    X, _ = make_blobs(4000, 3, 2, seed=3)
    o = OnlineGaussianMixture(2, init_size=1000, random_state=0).fit(X[:2000])
    first = o.precisions_.copy()
    pc = o.precisions_cholesky_
    np.testing.assert_allclose(first, pc @ pc.transpose(0, 2, 1), rtol=1e-12)
    o.partial_fit(X[2000:3000])
    pc = o.precisions_cholesky_
    assert not np.array_equal(o.precisions_, first)
    np.testing.assert_allclose(o.precisions_, pc @ pc.transpose(0, 2, 1), rtol=1e-12)
    assert not hasattr(OnlineGaussianMixture(2), "precisions_")


def test_changed_parameters_are_checked_again():
    X, _ = make_blobs(3000, 3, 2, seed=4)
    o = OnlineGaussianMixture(2, init_size=1000, random_state=0).fit(X[:2000])
    o.partial_fit(X[2000:2500])
    o.set_params(alpha=0.3)
    with pytest.raises(InvalidParameterError, match="alpha"):
        o.partial_fit(X[2500:3000])
    o.set_params(alpha=0.6, n_components=True)
    with pytest.raises(InvalidParameterError, match="n_components"):
        o.partial_fit(X[2500:3000])


@pytest.mark.parametrize("cov_type", ["diag", "full"])
def test_partial_fit_gives_the_same_bits_on_one_thread_and_on_two(cov_type, monkeypatch):
    """An online batch runs in one numba region whatever the thread count (its chunks
    depend on the rows only), so STREAMMIX_NUM_THREADS=1 and 2 give the same bits."""
    import numba

    from streammix.execution.threads import numba_regions_usable

    if numba.config.NUMBA_NUM_THREADS < 2 or not numba_regions_usable():
        pytest.skip("needs numba regions and 2 threads")
    X = make_blobs(12_000, 4, 3, seed=8)[0]
    runs = []
    for threads in ("1", "2"):
        monkeypatch.setenv("STREAMMIX_NUM_THREADS", threads)
        m = OnlineGaussianMixture(3, covariance_type=cov_type, random_state=0)
        for a in range(0, len(X), 3000):
            m.partial_fit(X[a:a + 3000])
        runs.append(m)
    for name in ("means_", "covariances_", "weights_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(runs[0], name), getattr(runs[1], name))


def test_a_wrong_feature_count_names_the_online_estimator():
    rng = np.random.default_rng(0)
    m = OnlineGaussianMixture(2, init_size=200, random_state=0)
    m.partial_fit(rng.normal(size=(300, 3)))
    with pytest.raises(InvalidInputError, match="but OnlineGaussianMixture is expecting 3"):
        m.partial_fit(rng.normal(size=(10, 4)))
    with pytest.raises(InvalidInputError, match="but OnlineGaussianMixture is expecting 3"):
        m.predict(rng.normal(size=(10, 4)))
