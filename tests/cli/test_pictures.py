"""The pictures of `streammix report` and `streammix select` as a person reads them:
loglik.png (plain values, integer iteration ticks, each iteration's change against tol),
components.png (one label per component, none overlapping another even at K = 30, the
weights in a table, a note that the view is a projection) and selection.png (ΔBIC and
ΔAIC against the best, the close calls written, the choice circled). The figures are
checked through their matplotlib artists, the files as PNGs (small models, in-process)."""

import io
import itertools
import json

import numpy as np
import pytest

from streammix import GaussianMixture, OnlineGaussianMixture
from streammix.cli import main
from streammix.cli.commands import report
from streammix.cli.commands.select import SELECTION_FILE
from streammix.cli.plotting import (PNG_SIGNATURE, boxes_overlap, plot_selection,
                                    pyplot, selection_figure)
from streammix.persistence.storage import Storage


def blobs(K, d, n, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=scale, size=(K, d))
    return means[rng.integers(K, size=n)] + rng.normal(size=(n, d))


@pytest.fixture(scope="module")
def models():
    """{K: (model, X)}: K = 3 in 2-d, 12 in 5-d, 30 in 8-d, and a 1-d K = 4."""
    out = {}
    for K, d in ((3, 2), (12, 5), (30, 8), (4, 1)):
        X = blobs(K, d, 100 * K + 1500, seed=K)
        out[K] = (GaussianMixture(K, random_state=0, max_iter=300, tol=1e-4,
                                  init_params="random_from_data").fit(X), X)
    return out


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, from its header."""
    assert data[:8] == PNG_SIGNATURE
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def render(plot, *args) -> bytes:
    buf = io.BytesIO()
    plot(*args, buf)
    return buf.getvalue()


def not_blank(data: bytes) -> None:
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(data), format="png")
    assert img[..., :3].std() > 0.05


def close(fig) -> None:
    pyplot().close(fig)


def integer_ticks(axis) -> bool:
    lo, hi = axis.get_view_interval()
    ticks = [t for t in axis.get_majorticklocs() if lo <= t <= hi]
    return len(ticks) >= 1 and all(float(t).is_integer() for t in ticks)


# ------------------------------------------------------------------ loglik.png
@pytest.mark.parametrize("K", [3, 12, 30])
def test_loglik_shows_plain_values_integer_ticks_and_the_change_against_tol(models, K):
    model, _ = models[K]
    assert model.converged_ and model.n_iter_ >= 3
    fig = report.loglik_figure(model)
    fig.canvas.draw()
    trace, change = fig.axes[:2]
    assert trace.get_ylabel() == "mean log-likelihood per sample"
    for ax in (trace, change):
        assert ax.yaxis.get_offset_text().get_text() == ""
        assert ax.xaxis.get_offset_text().get_text() == ""
        assert integer_ticks(ax.xaxis)
    assert all("e" not in t.get_text() for t in trace.get_yticklabels())
    # the tolerance: a horizontal line at tol on a log scale of |change|
    assert change.get_yscale() == "log"
    tol_lines = [ln for ln in change.get_lines() if ln.get_label() == "tol = 0.0001"]
    assert len(tol_lines) == 1 and np.allclose(tol_lines[0].get_ydata(), 1e-4)
    lo, hi = change.get_ylim()
    assert lo < 1e-4 < hi
    assert change.get_title().startswith(f"converged at iteration {model.n_iter_}")
    # every change is drawn: the last one below tol
    hist = np.asarray(model.lower_bounds_)
    drawn = np.concatenate([ln.get_ydata() for ln in change.get_lines()
                            if ln.get_label() == "rose by less than tol"])
    assert np.isclose(drawn[-1], abs(hist[-1] - hist[-2]))
    close(fig)
    png = render(report.plot_loglik, model)
    assert png_size(png) == (800, 640)
    not_blank(png)


def test_loglik_offset_free_on_a_flat_trace_and_off_scale_first_points(models):
    """A trace that moves by 1e-5 around -3.7369 reads -3.73686, not '1e-5 + -3.73686';
    a first iteration at -2,500,000 is named below the axis, not scaled to."""
    model, _ = models[3]
    flat = GaussianMixture(3, tol=1e-6)
    for a in ("weights_", "means_", "covariances_", "covariance_type", "converged_",
              "n_iter_"):
        setattr(flat, a, getattr(model, a))
    flat.lower_bounds_ = [-2_500_000.0] + list(-3.73690 + 1e-5 * (1 - 0.5 ** np.arange(8)))
    flat.n_iter_ = len(flat.lower_bounds_)
    fig = report.loglik_figure(flat)
    fig.canvas.draw()
    trace, change = fig.axes[:2]
    assert trace.yaxis.get_offset_text().get_text() == ""
    labels = [t.get_text().replace("−", "-") for t in trace.get_yticklabels()]
    assert labels and all(lab.startswith("-3.7368") or lab.startswith("-3.7369")
                          for lab in labels), labels
    assert trace.get_ylim()[0] > -3.8  # the first point is not scaled to
    assert any("below the axis: iteration 1: -2,500,000" in t.get_text()
               for t in trace.texts)
    assert any(t.get_text().startswith("above the axis:") for t in change.texts)
    close(fig)


def test_loglik_says_when_it_stopped_without_converging():
    X = blobs(5, 3, 2000, seed=1)
    model = GaussianMixture(5, random_state=0, max_iter=4, tol=1e-9,
                            init_params="random_from_data")
    with pytest.warns(Warning):
        model.fit(X)
    assert not model.converged_
    fig = report.loglik_figure(model)
    title = fig.axes[1].get_title()
    assert title.startswith("not converged: stopped at iteration 4 (max_iter = 4)")
    assert "≥ tol = 1e-09" in title
    close(fig)


def test_loglik_of_an_online_model_is_a_per_batch_score_without_tol():
    X = blobs(3, 2, 12000, seed=2)
    model = OnlineGaussianMixture(3, random_state=0)
    for i in range(0, len(X), 400):
        model.partial_fit(X[i:i + 400])
    fig = report.loglik_figure(model)
    fig.canvas.draw()
    assert len(fig.axes) == 1  # no convergence test: no tol panel
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()][0] == \
        "batch mean log-likelihood"
    assert ax.get_xlabel() == "stepwise update"
    assert ax.yaxis.get_offset_text().get_text() == "" and integer_ticks(ax.xaxis)
    assert any("no convergence test" in t.get_text() for t in fig.texts)
    close(fig)
    png = render(report.plot_loglik, model)
    assert png_size(png) == (800, 440)


# ------------------------------------------------------------------ components.png
def _labels(ax):
    return [t for t in ax.texts if (t.get_gid() or "").startswith("component-label")]


@pytest.mark.parametrize("K", [3, 12, 30])
def test_components_one_label_each_none_overlapping(models, K):
    model, X = models[K]
    d = X.shape[1]
    fig = report.components_figure(model, X[:2000], False)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    panels = [ax for ax in fig.axes if _labels(ax)]
    assert len(panels) == (3 if d >= 3 else 1)  # a corner of 3 views from d = 3
    for ax in panels:
        labels = _labels(ax)
        assert sorted(t.get_text() for t in labels) == sorted(str(k) for k in range(K))
        boxes = [t.get_bbox_patch().get_window_extent(renderer) for t in labels]
        frame = ax.get_window_extent(renderer)
        for b in boxes:  # inside the axes
            assert frame.x0 <= b.x0 and b.x1 <= frame.x1
            assert frame.y0 <= b.y0 and b.y1 <= frame.y1
        for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
            assert not boxes_overlap(a, b), (labels[i].get_text(), labels[j].get_text())
        assert ax.xaxis.get_offset_text().get_text() == ""
        assert ax.yaxis.get_offset_text().get_text() == ""
    # each component's weight, in a table beside the plot
    legend = next(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)
    rows = [t.get_text() for t in legend.get_texts()]
    assert rows == [f"{k}: {100 * w:.3g}%" for k, w in enumerate(model.weights_)]
    # the note that a projection can overlap components
    notes = " ".join(t.get_text() for ax in fig.axes for t in ax.texts) + " ".join(
        t.get_text() for t in fig.texts)
    if d >= 3:
        assert "2-D projection" in notes.replace("\n", " ")
        assert f"apart in {d}-D can overlap" in notes.replace("\n", " ")
        assert "principal axis 1 (" in panels[-1].get_xlabel()
    else:
        assert "no projection" in notes
    close(fig)
    png = render(report.plot_components, model, X[:2000], False)
    assert png_size(png) == ((1050, 1000) if d >= 3 else (825 + 125 * (K > 20), 620))
    not_blank(png)


def test_components_one_dimension_labels_each_curve(models):
    model, X = models[4]
    fig = report.components_figure(model, X, True)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in _labels(ax)) == ["0", "1", "2", "3"]
    assert len([ln for ln in ax.get_lines() if len(ln.get_xdata()) == 400]) == 4
    assert "curves: the components" in ax.get_title()
    close(fig)


def test_component_labels_stay_apart_when_all_means_coincide():
    """The worst case for labels: 30 components on one point, each label still free."""
    from streammix.cli.plotting import component_colors, place_labels

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    texts = place_labels(ax, np.zeros((30, 2)), [str(k) for k in range(30)],
                         component_colors(30), fontsize=8)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [t.get_bbox_patch().get_window_extent(r) for t in texts]
    assert not any(boxes_overlap(a, b) for a, b in itertools.combinations(boxes, 2))
    assert len(component_colors(30)) == 30 and len(set(component_colors(30))) == 30
    close(fig)


# ------------------------------------------------------------------ selection.png
def _results():
    """A close call: full K=6 best, diag K=6 at +1.5, spherical K=6 at +4, the rest far."""
    out = []
    for cov, extra in (("full", 0.0), ("diag", 1.5), ("spherical", 4.0)):
        for K in range(2, 10):
            bic = 250_000.0 + 900 * (K - 6) ** 2 + extra + (0 if K == 6 else 50)
            out.append({"covariance_type": cov, "n_components": K, "bic": bic,
                        "aic": bic - 40 * K})
    return out


def test_selection_shows_deltas_against_the_best_and_circles_the_choice():
    results = _results()
    chosen = min(results, key=lambda r: r["bic"])
    fig = selection_figure(results, chosen, "bic")
    fig.canvas.draw()
    bic_ax, aic_ax = fig.axes[:2]
    assert bic_ax.get_ylabel() == "ΔBIC = BIC − best BIC"
    assert aic_ax.get_ylabel() == "ΔAIC = AIC − best AIC"
    assert "best 250,000.0 (full, K=6)" in bic_ax.get_title()
    for ax in (bic_ax, aic_ax):
        assert ax.yaxis.get_offset_text().get_text() == ""
        assert all("e" not in t.get_text() for t in ax.get_yticklabels())
        assert integer_ticks(ax.xaxis)
        # one line per covariance type, Δ >= 0 with the best at 0
        ys = np.concatenate([ln.get_ydata() for ln in ax.get_lines()
                             if ln.get_label() in ("full", "diag", "spherical")])
        assert ys.min() == 0 and (ys >= 0).all()
    full = next(ln for ln in bic_ax.get_lines() if ln.get_label() == "full")
    assert list(full.get_xdata()) == list(range(2, 10))
    assert np.allclose(full.get_ydata(), [900 * (K - 6) ** 2 + 50 * (K != 6)
                                          for K in range(2, 10)])
    # the close calls written beside their points, not overlapping
    deltas = [t for t in bic_ax.texts if (t.get_gid() or "").startswith("delta-bic")]
    assert sorted(t.get_text() for t in deltas) == ["+1.5", "+4.0"]
    r = fig.canvas.get_renderer()
    boxes = [t.get_bbox_patch().get_window_extent(r) for t in deltas]
    assert not boxes_overlap(*boxes)
    # the choice circled at (6, 0)
    rings = [ln for ln in bic_ax.get_lines() if ln.get_markeredgecolor() == "red"]
    assert len(rings) == 1 and list(rings[0].get_xydata()[0]) == [6, 0]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "chosen by BIC: full, K=6" in legend
    close(fig)
    png = render(plot_selection, results, chosen, "bic")
    assert png_size(png) == (1000, 400)
    not_blank(png)
    assert render(plot_selection, results, chosen, "bic") == png  # deterministic


# ------------------------------------------------------------------ the report
def test_report_writes_the_pictures_deterministically(tmp_path):
    """`streammix report` on a selected model (selection.json in the checkpoint): the
    three PNGs, identical on a rerun."""
    X = blobs(4, 3, 2000, seed=4)
    np.save(tmp_path / "x.npy", X)
    model = GaussianMixture(4, random_state=0, tol=1e-4).fit(X)
    ck = str(tmp_path / "ck")
    model.save(ck)
    results = _results()
    Storage(ck).write_text_atomic(json.dumps({"criterion": "bic", "chosen": results[4],
                                              "results": results}), SELECTION_FILE)
    pngs = {}
    for out in ("r1", "r2"):
        assert main(["--no-progress", "report", ck, "--out", str(tmp_path / out),
                     "--data", str(tmp_path / "x.npy"), "--sample", "1000"]) == 0
        pngs[out] = {name: (tmp_path / out / name).read_bytes()
                     for name in ("loglik.png", "components.png", "selection.png")}
    assert pngs["r1"] == pngs["r2"]
    assert png_size(pngs["r1"]["loglik.png"]) == (800, 640)
    assert png_size(pngs["r1"]["components.png"]) == (1050, 1000)
    assert png_size(pngs["r1"]["selection.png"]) == (1000, 400)
    for png in pngs["r1"].values():
        not_blank(png)
