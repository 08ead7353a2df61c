"""align / relabel / canonical_order, and the places tracking is applied (align_to=,
n_init restarts)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from streammix import (
    GaussianMixture,
    InvalidParameterError,
    OnlineGaussianMixture,
    align,
    canonical_order,
    relabel,
)
from tests.conftest import make_blobs

TYPES = ["full", "tied", "diag", "spherical"]


def fitted(cov_type="full", K=5, seed=0):
    X, _ = make_blobs(6000, 3, K, seed=seed, spread=8.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(K, covariance_type=cov_type, random_state=0).fit(X), X


@pytest.mark.parametrize("cov_type", TYPES)
@pytest.mark.parametrize("metric", ["bhattacharyya", "kl", "wasserstein"])
def test_align_recovers_a_known_permutation(cov_type, metric):
    model, X = fitted(cov_type)
    perm = np.random.default_rng(1).permutation(5)
    shuffled = relabel(model, perm)
    np.testing.assert_array_equal(shuffled.means_, model.means_[perm])
    p = align(shuffled, model, metric=metric)
    back = relabel(shuffled, p)
    np.testing.assert_array_equal(back.means_, model.means_)
    np.testing.assert_array_equal(back.weights_, model.weights_)
    np.testing.assert_array_equal(back.covariances_, model.covariances_)
    # predictions are relabelled consistently
    np.testing.assert_array_equal(shuffled.predict(X), np.argsort(perm)[model.predict(X)])
    np.testing.assert_allclose(shuffled.predict_proba(X), model.predict_proba(X)[:, perm])
    np.testing.assert_allclose(shuffled.score_samples(X), model.score_samples(X), rtol=1e-12)


def test_align_to_itself_is_the_identity():
    model, _ = fitted()
    np.testing.assert_array_equal(align(model, model), np.arange(5))


def test_gate_declares_far_components_new_and_different_k():
    model, X = fitted(K=5)
    small, _ = fitted(K=3, seed=5)   # a different data set: some components far away
    details = align(model, small, gate=0.5, return_details=True)
    assert sorted(details.permutation.tolist()) == list(range(5))
    assert len(details.reference_index) == 5
    # components beyond the reference's K are declared new
    assert np.all(details.reference_index[3:] == -1)
    # fewer components than the reference
    d2 = align(small, model, return_details=True)
    assert sorted(d2.permutation.tolist()) == [0, 1, 2]
    assert np.all(d2.reference_index >= 0)
    # a gate of zero declares everything new except identical components
    d3 = align(model, model, gate=0.0, return_details=True)
    np.testing.assert_array_equal(d3.reference_index, np.arange(5))


def test_refit_with_align_to_keeps_labels_on_reshuffled_data():
    model, X = fitted()
    rng = np.random.default_rng(3)
    X2 = X[rng.permutation(len(X))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = GaussianMixture(5, random_state=11).fit(X2, align_to=model)
    np.testing.assert_allclose(other.means_, model.means_, atol=0.05)
    assert np.mean(other.predict(X) == model.predict(X)) > 0.99


def test_n_init_restarts_do_not_renumber_clusters():
    X, _ = make_blobs(4000, 2, 4, seed=9, spread=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = GaussianMixture(4, init_params="random_from_data", random_state=4).fit(X)
        best = GaussianMixture(4, init_params="random_from_data", n_init=5,
                               random_state=4).fit(X)
    # same clusters found: the best restart's labels follow the first restart's
    np.testing.assert_allclose(best.means_, first.means_, atol=0.05)


def test_canonical_order():
    model, _ = fitted()
    by_w = relabel(model, canonical_order(model, "weight"))
    assert np.all(np.diff(by_w.weights_) <= 0)
    by_m = relabel(model, canonical_order(model, "mean"))
    assert np.all(np.diff(by_m.means_[:, 0]) >= 0)
    with pytest.raises(InvalidParameterError):
        canonical_order(model, "size")


def test_relabel_online_model_moves_ids_and_state():
    X, _ = make_blobs(20_000, 2, 3, seed=10, spread=8.0)
    o = OnlineGaussianMixture(3, init_size=2000, random_state=0).fit(X)
    p = np.array([2, 0, 1])
    r = relabel(o, p)
    np.testing.assert_array_equal(r.component_ids_, o.component_ids_[p])
    np.testing.assert_array_equal(r.means_, o.means_[p])
    assert o.means_ is not r.means_
    r.partial_fit(X[:2000])  # the relabelled model keeps learning consistently
    o.partial_fit(X[:2000])
    np.testing.assert_allclose(r.means_, o.means_[p], rtol=1e-9)


def test_relabel_rejects_non_permutations():
    model, _ = fitted()
    with pytest.raises(InvalidParameterError, match="permutation"):
        relabel(model, [0, 0, 1, 2, 3])


class _Stop(Exception):
    pass


def test_align_to_with_a_checkpoint_saves_the_aligned_model_and_survives_resume(tmp_path):
    import streammix

    model, X = fitted()
    X2 = X[np.random.default_rng(3).permutation(len(X))]
    params = dict(n_components=5, random_state=11, tol=0.0, max_iter=12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = GaussianMixture(**params).fit(X2, align_to=model)
        unaligned = GaussianMixture(**params).fit(X2)
        assert list(align(unaligned, model)) != list(range(5))  # the test can fail
        ck = str(tmp_path / "ck")

        def stop_after_3(info):
            if info.iteration == 3:
                raise _Stop

        with pytest.raises(_Stop):
            GaussianMixture(**params).fit(X2, align_to=model, checkpoint=ck,
                                          callback=stop_after_3)
        # resumed without align_to: the reference saved with the progress is used
        resumed = GaussianMixture(**params).fit(X2, checkpoint=ck)
    np.testing.assert_array_equal(resumed.means_, whole.means_)
    np.testing.assert_array_equal(streammix.load(ck).means_, whole.means_)
