"""OnlineBayesianGaussianMixture: stochastic variational inference on a stream."""

from __future__ import annotations

import numpy as np
import pytest

from streammix import (
    BayesianGaussianMixture,
    InvalidInputError,
    InvalidParameterError,
    OnlineBayesianGaussianMixture,
    align,
    load,
    relabel,
)

pytestmark = pytest.mark.filterwarnings("ignore::streammix.ConvergenceWarning")

CENTRES = np.array([[0, 0], [20, 0], [0, 20], [20, 20], [10, 10], [-15, 10]], float)


def draw(n, rng, clusters=5):
    labels = rng.randint(clusters, size=n)
    return CENTRES[labels] + rng.randn(n, 2) * (0.6 + 0.2 * labels)[:, None]


@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical"])
def test_one_pass_in_batches_of_10000_matches_batch_variational_inference(cov_type):
    """One pass of partial_fit in batches of 10,000 ends within 1% of batch variational
    inference's held-out score and uses the same number of components."""
    rng = np.random.RandomState(1)
    X, X_test = draw(100_000, rng), draw(20_000, rng)
    batch = BayesianGaussianMixture(n_components=20, covariance_type=cov_type,
                                    random_state=0, max_iter=1000).fit(X)
    online = OnlineBayesianGaussianMixture(20, covariance_type=cov_type, random_state=0)
    for i in range(0, len(X), 10_000):
        online.partial_fit(X[i:i + 10_000])
    assert online.n_samples_seen_ == len(X)
    ref, got = batch.score(X_test), online.score(X_test)
    assert abs(got - ref) < 0.01 * abs(ref)
    assert online.effective_n_components() == batch.effective_n_components()
    assert online.effective_n_components() in (5, 6)
    # what the stream saw is one posterior of the stream's size
    assert np.sum(online.mean_precision_) == pytest.approx(
        len(X) + 20 * online.mean_precision_prior_, rel=1e-6)


def test_switched_off_components_are_reused_for_a_new_cluster():
    """Three clusters, then a fourth appears: a component the prior had switched off is
    re-seeded on it (a new id, 'death' and 'birth' events) and takes its share."""
    rng = np.random.RandomState(3)
    m = OnlineBayesianGaussianMixture(8, covariance_type="full", random_state=0,
                                      eta_min=0.05)
    for _ in range(20):
        m.partial_fit(draw(2000, rng, clusters=3))
    assert m.effective_n_components() == 3
    ids_before = m.component_ids_.copy()
    t_new = m.n_updates_
    new = np.vstack([draw(1500, rng, clusters=3), CENTRES[5] + rng.randn(500, 2)])
    for _ in range(30):
        m.partial_fit(new[rng.permutation(len(new))])
    assert m.effective_n_components() == 4
    births = [e for e in m.events_ if e["event"] == "birth" and e["update"] > t_new]
    assert len(births) == 1 and births[0]["reason"] in ("novel points", "revived by new data")
    assert births[0]["component_id"] in m.component_ids_
    assert births[0]["component_id"] not in ids_before
    # the components the prior switched off were recorded as such
    assert sum(e["event"] == "death" for e in m.events_) >= 4
    k = int(np.argmin(np.linalg.norm(m.means_ - CENTRES[5], axis=1)))
    assert np.linalg.norm(m.means_[k] - CENTRES[5]) < 0.5
    assert m.weights_[k] == pytest.approx(0.25, abs=0.05)


def test_a_bad_batch_changes_nothing_and_state_round_trips(tmp_path):
    rng = np.random.RandomState(0)
    m = OnlineBayesianGaussianMixture(6, covariance_type="diag", random_state=0)
    for _ in range(5):
        m.partial_fit(draw(2000, rng))
    before = {k: np.copy(v) for k, v in m.__dict__.items() if isinstance(v, np.ndarray)}
    bad = draw(1000, rng)
    bad[10, 1] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        m.partial_fit(bad)
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(m, k), v, err_msg=k)
    m.save(str(tmp_path / "ck"))
    back = load(str(tmp_path / "ck"))
    assert type(back) is OnlineBayesianGaussianMixture
    nxt = draw(2000, rng)
    m.partial_fit(nxt)
    back.partial_fit(nxt)
    np.testing.assert_array_equal(back.means_, m.means_)
    np.testing.assert_array_equal(np.asarray(back.weight_concentration_),
                                  np.asarray(m.weight_concentration_))


def test_align_to_a_reference_keeps_labels_and_ids():
    rng = np.random.RandomState(5)
    X = draw(30_000, rng)
    ref = BayesianGaussianMixture(n_components=5, random_state=0, max_iter=300,
                                  weight_concentration_prior_type="dirichlet_distribution"
                                  ).fit(X)
    m = OnlineBayesianGaussianMixture(5, random_state=7,
                                      weight_concentration_prior_type="dirichlet_distribution")
    for i in range(0, len(X), 3000):
        m.partial_fit(X[i:i + 3000])
    p = align(m, ref)
    out = relabel(m, p)
    np.testing.assert_allclose(out.means_, ref.means_, atol=0.1)
    np.testing.assert_array_equal(out.component_ids_, m.component_ids_[p])
    np.testing.assert_array_equal(out.predict(X[:500]),
                                  np.argsort(p)[m.predict(X[:500])])


def test_parameters_are_checked():
    X = draw(3000, np.random.RandomState(0))
    for kw, match in [(dict(weight_concentration_prior=-1), "weight_concentration_prior"),
                      (dict(total_samples=0), "total_samples"),
                      (dict(alpha=0.4), "alpha"),
                      (dict(covariance_prior=np.eye(3)), "shape")]:
        with pytest.raises(InvalidParameterError, match=match):
            OnlineBayesianGaussianMixture(3, init_size=1000, **kw).partial_fit(X)


def test_total_samples_sets_the_posterior_scale():
    X = draw(20_000, np.random.RandomState(2))
    m = OnlineBayesianGaussianMixture(5, random_state=0, total_samples=1e6)
    for i in range(0, len(X), 5000):
        m.partial_fit(X[i:i + 5000])
    assert np.sum(m.mean_precision_) == pytest.approx(1e6 + 5 * m.mean_precision_prior_,
                                                      rel=1e-6)
