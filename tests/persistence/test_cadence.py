"""SaveCadence: every N steps, and never sooner than the interval and 20x the last save's
duration after it (checkpoints then cost at most about 5% of a run)."""

import pytest

import streammix.persistence.cadence as cadence_mod
from streammix.persistence.cadence import COST_FACTOR, SaveCadence


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(cadence_mod.time, "monotonic", c)
    return c


def test_without_an_interval_every_n_steps_exactly(clock):
    c = SaveCadence(every=3, interval=None)
    due = []
    for _ in range(9):
        due.append(c.step())
        if due[-1]:
            c.saved(clock())
    assert due == [False, False, True] * 3


def test_the_interval_holds_saves_back_and_pending_says_what_is_unsaved(clock):
    c = SaveCadence(every=1, interval=10.0)
    assert not c.pending()
    clock.now += 4
    assert not c.step() and c.pending()  # 4 s since the start: not yet
    clock.now += 6
    assert c.step()  # 10 s
    started = clock()
    clock.now += 0.01
    c.saved(started)
    assert not c.pending()
    clock.now += 9.9
    assert not c.step()
    clock.now += 0.2
    assert c.step()


def test_a_slow_save_spaces_the_next_one_by_twenty_times_its_duration(clock):
    c = SaveCadence(every=1, interval=1.0)
    clock.now += 1
    assert c.step()
    started = clock()
    clock.now += 2.0  # a 2 s save: the next waits 40 s, not 1 s
    c.saved(started)
    clock.now += COST_FACTOR * 2.0 - 0.5
    assert not c.step()
    clock.now += 1.0
    assert c.step()
    # whatever the step and save durations, saves then cost at most 1 / (1 + 20) of the run
    assert 2.0 / (2.0 + COST_FACTOR * 2.0) <= 1 / (1 + COST_FACTOR) + 1e-12


def test_idle_due_only_with_unsaved_steps_and_the_interval_passed(clock):
    c = SaveCadence(every=5, interval=10.0)
    clock.now += 100
    assert not c.idle_due()  # nothing to save
    assert not c.step()  # 1 of 5 steps
    assert c.idle_due()  # an idle stream commits what it has once the interval passed
    c.saved(clock())
    assert not c.idle_due()
    c.step()
    clock.now += 5
    assert not c.idle_due()


@pytest.mark.filterwarnings("ignore::streammix.ConvergenceWarning")
def test_a_fit_saves_on_the_cadence_and_always_at_the_end(tmp_path):
    import numpy as np

    from streammix import GaussianMixture
    from streammix.persistence import list_versions
    from tests.conftest import make_blobs

    X, _ = make_blobs(1000, 2, 3, seed=5)
    kw = dict(n_components=3, max_iter=6, tol=0.0, random_state=0)
    every = GaussianMixture(**kw).fit(X, checkpoint=tmp_path / "every", keep_last=100,
                                      checkpoint_every=1, checkpoint_interval=None)
    held = GaussianMixture(**kw).fit(X, checkpoint=tmp_path / "held", keep_last=100,
                                     checkpoint_every=1, checkpoint_interval=3600)
    assert len(list_versions(tmp_path / "every")) == every.n_iter_ == 6
    assert list_versions(tmp_path / "held") == [1]  # only the final save
    np.testing.assert_array_equal(every.means_, held.means_)
