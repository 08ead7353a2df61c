"""`streammix report CHECKPOINT --out DIR`: PNG plots of a saved model a person would
rather look at than read: the log-likelihood trace (a Bayesian mixture's: its evidence
lower bound), the BIC/AIC curves when `streammix select` left them, an online model's
component timeline (weights over the updates, births, deaths, merges and splits marked),
a Bayesian mixture's sorted weights (the sticks: how many components the data use), and
a sample of the data projected on the model's two principal axes with each component's
2-sigma ellipse.

Everything that can fail (loading the model, reading the data, drawing) happens before
the first file is written, and the PNGs never go into the checkpoint or the data: a
failed report leaves the output directory as it was."""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np

from ...errors import NotFittedError
from ...persistence import load
from ...persistence.storage import Storage
from ..config import EFFECTIVE_THRESHOLD, is_bayesian, is_online
from ..plotting import (REPORT_MARKER, component_colors, place_labels, plain_ticks,
                        plot_selection, pyplot, save_png)
from .select import SELECTION_FILE

#: the files a report writes (a folder no report wrote must not hold any of them)
REPORT_FILES = ("loglik.png", "components.png", "selection.png", "timeline.png",
                "weights.png")


def component_covariances(model) -> np.ndarray:
    """(K, d, d) covariances whatever the covariance type."""
    K, d = model.means_.shape
    c = np.asarray(model.covariances_)
    t = model.covariance_type
    if t == "full":
        return c
    if t == "tied":
        return np.broadcast_to(c, (K, d, d))
    if t == "diag":
        return np.stack([np.diag(v) for v in c])
    return c[:, None, None] * np.eye(d)[None]


def principal_axes(model, n: int = 2) -> np.ndarray:
    """(n, d): the n leading eigenvectors of the mixture's overall covariance
    sum_k w_k (S_k + m_k m_k^T) - m m^T (the data's, if the model fits them)."""
    return _principal(model, n)[1]


def _principal(model, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(the overall covariance's eigenvalues, largest first; its n leading axes (n, d))."""
    w, mu = model.weights_, model.means_
    covs = component_covariances(model)
    m = w @ mu
    total = np.einsum("k,kij->ij", w, covs) + (mu * w[:, None]).T @ mu - np.outer(m, m)
    vals, vecs = np.linalg.eigh(total)
    return np.clip(vals[::-1], 0, None), vecs[:, ::-1][:, :n].T


def sample_rows(data, n: int, seed: int = 0) -> np.ndarray:
    """Up to n rows picked uniformly (sorted indices: each chunk read at most once)."""
    from ...execution.inputs import as_dask_array
    from ..config import MissingDataError

    if isinstance(data, str) and "://" not in data and not os.path.exists(data):
        raise MissingDataError(f"--data {data!r} does not exist")
    if isinstance(data, str) and data.endswith(".npy"):
        from ..sources import npy_header

        npy_header(data)  # not a .npy array, or Python objects: a clear error first
        data = np.load(data, mmap_mode="r", allow_pickle=False)
    X = as_dask_array(data) if not isinstance(data, np.ndarray) else data
    rows = int(X.shape[0])
    idx = np.sort(np.random.default_rng(seed).choice(rows, size=min(n, rows), replace=False))
    out = X[idx]
    return np.asarray(out.compute() if hasattr(out, "compute") else out, dtype=np.float64)


def _ellipse(ax, centre, cov2, color, lw: float = 2.0) -> None:
    from matplotlib.patches import Ellipse

    vals, vecs = np.linalg.eigh(cov2)
    vals = np.clip(vals, 0, None)
    angle = float(np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1])))
    for nsig, alpha in ((1.0, 0.9), (2.0, 0.5)):
        ax.add_patch(Ellipse(centre, 2 * nsig * np.sqrt(vals[1]), 2 * nsig * np.sqrt(vals[0]),
                             angle=angle, fill=False, color=color, lw=lw, alpha=alpha))


def _off_scale(hist: np.ndarray) -> int:
    """How many leading points of a trace to leave off the y range: each one that alone
    stretches the axis more than 20-fold (a first iteration at -2,500,000 before the
    trace settles near -3.7 would flatten the rest into a line)."""
    s = 0
    while s < min(5, len(hist) - 2):
        rest = np.ptp(hist[s + 1:])
        if not np.ptp(hist[s:]) > 20 * max(rest, 1e-12 * max(1.0, abs(hist[-1]))):
            break
        s += 1
    return s


def _num(v: float) -> str:
    """A number as a person reads it: -3.7369, -2,516,230, 0.00012."""
    if v == 0 or not np.isfinite(v):
        return f"{v:g}"
    if abs(v) >= 1e4:
        return f"{v:,.0f}"
    return f"{v:.5g}"


def loglik_figure(model):
    """The Figure of ``plot_loglik``: axes[0] is the trace."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    plt = pyplot()
    hist = np.asarray(getattr(model, "lower_bounds_", []), dtype=float)
    hist = hist[np.isfinite(hist)]
    online = is_online(model)
    bayesian = is_bayesian(model)
    if bayesian:
        label = "batch mean score" if online else "evidence lower bound (ELBO)"
        ylabel = ("mean variational score per sample" if online else
                  "evidence lower bound (ELBO)")
    else:
        label = "batch mean log-likelihood" if online else "mean log-likelihood"
        ylabel = "mean log-likelihood per sample"
    tol = None if online else getattr(model, "tol", None)
    convergence = tol is not None and len(hist) >= 1
    if convergence:
        fig, (ax, cax) = plt.subplots(2, 1, figsize=(8, 6.4), dpi=100, sharex=True,
                                      gridspec_kw=dict(height_ratios=(1.3, 1)))
    else:
        fig, ax = plt.subplots(figsize=(8, 4.4), dpi=100)
        cax = None
    n = len(hist)
    x = np.arange(1, n + 1)
    ax.plot(x, hist, "-", color="tab:blue", alpha=0.5 if online else 1.0,
            marker=None if online or n > 60 else "o", ms=4, label=label)
    if online and n >= 10:
        w = max(5, n // 20)
        smooth = np.convolve(hist, np.ones(w) / w, mode="valid")
        ax.plot(x[w - 1:], smooth, color="tab:red", lw=2, label=f"moving average ({w})")
    s = _off_scale(hist) if n else 0
    if s:  # the first points would flatten the rest: left below the axis, named
        rest = hist[s:]
        lo, hi = float(rest.min()), float(rest.max())
        margin = 0.08 * (hi - lo) if hi > lo else max(abs(hi) * 1e-6, 1e-9)
        ax.set_ylim(lo - margin, hi + margin)
        ax.plot(x[:s], np.full(s, lo - 0.6 * margin), "v", color="tab:blue", ms=7,
                clip_on=False, ls="none")
        named = ", ".join(f"{i + 1}: {_num(hist[i])}" for i in range(s))
        ax.annotate(f"below the axis: iteration {named}",
                    (x[s - 1], lo - 0.6 * margin), xytext=(24, 8),
                    textcoords="offset points", fontsize=8.5, color="0.25",
                    ha="left", va="bottom")
    step = ("stochastic variational update" if bayesian else "stepwise update") \
        if online else "variational EM iteration" if bayesian else "EM iteration"
    ax.set_ylabel(ylabel)
    plain_ticks(ax)
    effective = (f" ({model.effective_n_components(EFFECTIVE_THRESHOLD)} above "
                 f"{EFFECTIVE_THRESHOLD:.0%} weight)" if bayesian else "")
    ax.set_title(f"{type(model).__name__}: K={len(model.weights_)}{effective}, "
                 f"{model.covariance_type}" + (f"; final {_num(hist[-1])}" if n else ""))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if online:
        fig.text(0.01, 0.01, "An online model has no convergence test: each point is one "
                 "batch's mean, scored before the model learns from it.", fontsize=8.5,
                 color="0.25", ha="left", va="bottom")
    bottom = cax if cax is not None else ax
    bottom.set_xlabel(step)
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    bottom.set_xlim(0.5, max(n, 1) + 0.5)
    if cax is not None:
        _convergence_panel(cax, model, hist, float(tol), bayesian, s)
        cax.yaxis.set_minor_locator(FixedLocator([]))
    fig.tight_layout(rect=(0, 0.04 if online else 0, 1, 1))
    return fig


def _convergence_panel(ax, model, hist: np.ndarray, tol: float, bayesian: bool,
                       off: int = 0) -> None:
    """|change| of the lower bound from one iteration to the next, on a log scale,
    against the tolerance: EM stops at the first change below tol (converged_). The
    changes from the ``off`` first iterations (off the trace's scale) are marked at the
    top, not scaled to."""
    from matplotlib.ticker import LogLocator

    n = len(hist)
    what = "ELBO" if bayesian else "mean log-likelihood"
    if tol > 0:  # (tol = 0: EM runs to max_iter)
        ax.axhspan(tol * 1e-30, tol, color="tab:green", alpha=0.10, lw=0)
        ax.axhline(tol, color="tab:red", ls="--", lw=1.5, label=f"tol = {tol:g}")
    converged = bool(getattr(model, "converged_", False))
    if n >= 2:
        change = np.diff(hist)
        mag = np.abs(change)
        positive = [v for v in (tol, mag[mag > 0].min() if (mag > 0).any() else 0) if v > 0]
        floor = min(positive) / 10 if positive else 1e-12
        shown = np.maximum(mag, floor)  # (a change of exactly 0 at the bottom)
        it = np.arange(2, n + 1)
        ax.plot(it, shown, "-", color="0.6", lw=1, zorder=2)
        up = change >= 0
        big = mag >= tol
        for sel, style, lab in (
                (up & big, dict(color="tab:blue", marker="o"), "rose by tol or more"),
                (up & ~big, dict(color="tab:green", marker="o"), "rose by less than tol"),
                (~up, dict(color="tab:red", marker="v"), f"fell (the {what} went down)")):
            if sel.any():
                ax.plot(it[sel], shown[sel], ls="none", ms=4 if n > 60 else 5, zorder=3,
                        label=lab, **style)
        ax.annotate(f"{float(mag[-1]):.2g}", (n, shown[-1]), xytext=(-9, 0),
                    textcoords="offset points", ha="right", va="center", fontsize=8.5,
                    color="0.2")  # (left of the last point: the earlier ones are higher)
        lo = min(float(shown.min()), tol if tol > 0 else np.inf) / 3
        rest = shown[off:] if off < len(shown) else shown
        hi = max(float(rest.max()), tol) * 3
        ax.set_ylim(lo, hi)
        if off and off < len(shown) and shown[:off].max() > hi:
            over = np.flatnonzero(shown[:off] > hi)
            ax.plot(it[over], np.full(len(over), hi), "^", color="tab:blue", ms=7,
                    clip_on=False, ls="none", zorder=4)
            ax.annotate("above the axis: iteration " + ", ".join(
                f"{it[i]}: {_num(float(mag[i]))}" for i in over), (it[over[-1]], hi),
                xytext=(12, -4), textcoords="offset points", fontsize=8.5, color="0.25",
                ha="left", va="top")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=8))
    max_iter = getattr(model, "max_iter", None)
    if n < 2:
        verdict = ("no iteration recorded" if n == 0 else
                   "one iteration: no change to compare with tol")
    elif converged:
        verdict = (f"converged at iteration {n}: the {what} changed by "
                   f"{abs(hist[-1] - hist[-2]):.2g} < tol = {tol:g}")
    else:
        verdict = (f"not converged: stopped at iteration {n}"
                   + (f" (max_iter = {max_iter})" if max_iter == n else "")
                   + f" with a change of {abs(hist[-1] - hist[-2]):.2g} ≥ tol = {tol:g}")
    ax.set_title(verdict, fontsize=10, color="0.1" if converged else "tab:red")
    ax.set_ylabel(f"|change| of the {what}\n(log scale)")
    ax.grid(alpha=0.3, which="major")
    ax.legend(loc="best", fontsize=8.5)


def plot_loglik(model, path) -> None:
    """The EM (or online) log-likelihood trace as a PNG at ``path`` (a path or a binary
    file object): the trace (a Bayesian mixture's evidence lower bound, an online
    model's per-batch mean score) with integer iteration ticks and plain values, and,
    for a batch fit, below it each iteration's |change| on a log scale against the
    convergence tolerance ``tol``, so that a person sees why it stopped."""
    save_png(loglik_figure(model), path)


def _pct(w: float) -> str:
    return f"{100 * w:.3g}%"


def components_figure(model, X: np.ndarray, from_model: bool):
    """The Figure of ``plot_components``."""
    plt = pyplot()
    K, d = model.means_.shape
    weights = np.asarray(model.weights_, dtype=float)
    labels = model.predict(X)
    # a Bayesian mixture's switched-off components (the prior's, nearly weightless and
    # as broad as the data) would hide the others: only those in use are drawn
    shown = [k for k in range(K)
             if not is_bayesian(model) or weights[k] > EFFECTIVE_THRESHOLD]
    shown = shown or [int(np.argmax(weights))]
    order = sorted(range(len(shown)), key=lambda i: -weights[shown[i]])  # heaviest first
    colors = component_colors(K)
    ncol = max(1, math.ceil(len(shown) / 20))
    fontsize = 9 if len(shown) <= 12 else 8
    lw = 2.0 if len(shown) <= 6 else 1.5 if len(shown) <= 15 else 1.0
    what = "points drawn from the model" if from_model else "rows sampled from the data"
    if len(shown) < K:
        title = (f"{len(X):,} {what}; ellipses (1 and 2 sigma): the {len(shown)} "
                 f"components above {EFFECTIVE_THRESHOLD:.0%} weight")
    else:
        title = f"{len(X):,} {what}; ellipses: 1 and 2 sigma"
    vals, P = _principal(model, min(d, 3))
    share = vals / vals.sum() if vals.sum() > 0 else np.zeros_like(vals)
    if d >= 3:
        fig = plt.figure(figsize=(10.5, 10), dpi=100)
        gs = fig.add_gridspec(2, 2, left=0.075, right=0.985, bottom=0.06, top=0.95,
                              wspace=0.06, hspace=0.1)
        a12 = fig.add_subplot(gs[0, 0])
        a32 = fig.add_subplot(gs[0, 1], sharey=a12)
        a13 = fig.add_subplot(gs[1, 0], sharex=a12)
        side = fig.add_subplot(gs[1, 1])
        panels = ((a12, 0, 1), (a32, 2, 1), (a13, 0, 2))
        Z = X @ P.T
        covs = component_covariances(model)
        centres = []
        for ax, i, j in panels:
            Pij = P[[i, j]]
            centres.append(_scatter_panel(ax, Z[:, [i, j]], labels, colors, shown,
                                          model.means_ @ Pij.T,
                                          [Pij @ covs[k] @ Pij.T for k in range(K)], lw))
            plain_ticks(ax, "both")
        axis = [f"principal axis {i + 1} ({share[i]:.0%} of the variance)" for i in range(3)]
        a12.set_ylabel(axis[1])
        a13.set_xlabel(axis[0])
        a13.set_ylabel(axis[2])
        a32.set_xlabel(axis[2])
        a32.tick_params(labelleft=False)
        a12.tick_params(labelbottom=False)
        side.axis("off")
        kept = share[:3].sum()
        note = (f"Each panel is a 2-D projection of the {d} dimensions on the mixture's "
                f"principal axes (axes 1 to 3 hold {kept:.0%} of the variance): "
                f"components that are apart in {d}-D can overlap here."
                if d > 3 else
                "Each panel is a 2-D projection of the 3 dimensions (rotated to the "
                "mixture's principal axes): components that are apart in 3-D can "
                "overlap in one view and not in another.")
        _legend_table(side, shown, weights, colors, K, ncol, fontsize, loc="upper left",
                      anchor=(0.06, 0.97))
        side.text(0.06, 0.0, _wrap(note, 58), transform=side.transAxes, fontsize=9,
                  color="0.2", va="bottom", ha="left")
        fig.suptitle(title, fontsize=11)
        for (ax, _, _), anchors in zip(panels, centres):
            _label_centres(ax, anchors, shown, order, colors, fontsize)
        return fig
    W, H = 6.7 + 0.3 + 1.25 * ncol, 6.2  # inches: the plot, then the table
    fig = plt.figure(figsize=(W, H), dpi=100)
    ax = fig.add_axes((0.85 / W, 0.75 / H, 5.7 / W, 5.0 / H))
    side = fig.add_axes((6.75 / W, 0.75 / H, (W - 6.8) / W, 5.0 / H))
    side.axis("off")
    if d == 1:
        ax.hist(X[:, 0], bins=80, density=True, color="0.75")
        lo, hi = X[:, 0].min(), X[:, 0].max()
        grid = np.linspace(lo, hi, 400)[:, None]
        dens = model.predict_proba(grid) * np.exp(model.score_samples(grid))[:, None]
        peaks = []
        for k in shown:
            ax.plot(grid[:, 0], dens[:, k], color=colors[k], lw=lw + 0.5)
            peaks.append((grid[np.argmax(dens[:, k]), 0], dens[:, k].max()))
        ax.set_xlabel("x")
        ax.set_ylabel("density")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
        ax.set_xlim(lo, hi)
        note = ("Grey: histogram of the sample; each curve: a component's weight times "
                "its density.")
        anchors = np.array(peaks)
    else:
        anchors = _scatter_panel(ax, X, labels, colors, shown, model.means_,
                                 list(component_covariances(model)), lw)
        ax.set_xlabel("x0")
        ax.set_ylabel("x1")
        note = "The data's own 2 dimensions (no projection)."
    plain_ticks(ax, "both")
    _legend_table(side, shown, weights, colors, K, ncol, fontsize, loc="upper left",
                  anchor=(0.05, 1.0))
    fig.text(0.85 / W, 0.1 / H, note, fontsize=9, color="0.2", ha="left", va="bottom")
    if d == 1:
        title = title.split(";")[0] + "; curves: the components"
    ax.set_title(title, fontsize=11)
    _label_centres(ax, anchors, shown, order, colors, fontsize)
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _scatter_panel(ax, Z, labels, colors, shown, centres, covs2, lw) -> np.ndarray:
    """The points coloured by their component, each shown component's 1 and 2 sigma
    ellipses and a dot at its mean; returns the shown components' means."""
    cols = np.asarray(colors)[labels]
    ax.scatter(Z[:, 0], Z[:, 1], s=3, c=cols, alpha=0.35, linewidths=0, rasterized=False)
    for k in shown:
        _ellipse(ax, centres[k], covs2[k], colors[k], lw=lw)
    ax.plot(centres[shown, 0], centres[shown, 1], ".", color="black", ms=3, zorder=4)
    ax.autoscale_view()
    return np.asarray(centres)[shown]


def _label_centres(ax, anchors, shown, order, colors, fontsize) -> None:
    """Each shown component's number at its mean, none overlapping another."""
    place_labels(ax, anchors, [str(k) for k in shown], [colors[k] for k in shown],
                 order=order, fontsize=fontsize, gid="component-label")


def _legend_table(ax, shown, weights, colors, K, ncol, fontsize, loc, anchor) -> None:
    """A numbered table of the shown components and their weights, beside the plot."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="none", marker="s", ms=8, color=colors[k],
                      label=f"{k}: {_pct(weights[k])}") for k in shown]
    title = "component: weight"
    if len(shown) < K:
        title += (f"\n({K - len(shown)} more below {EFFECTIVE_THRESHOLD:.0%}: "
                  "not drawn)")
    ax.legend(handles=handles, loc=loc, bbox_to_anchor=anchor, ncol=ncol,
              fontsize=fontsize + 0.5, title=title, title_fontsize=fontsize + 1,
              frameon=False, handletextpad=0.3, columnspacing=1.0, borderaxespad=0)


def plot_components(model, X: np.ndarray, from_model: bool, path) -> None:
    """X projected on the model's principal axes (a corner of three 2-D views, axes 1-2,
    3-2 and 1-3, when d >= 3; the data's own axes when d = 2; a histogram with each
    component's weighted density when d = 1) with each component's 1 and 2 sigma
    ellipse, its number at its mean (labels never overlap: the nearest free place, with
    a leader line), a table of the components' weights beside the plot, and a note that
    a projection can overlap components that are apart in d dimensions; as a PNG at
    ``path`` (a path or a file object)."""
    save_png(components_figure(model, X, from_model), path)


def plot_weights(model, path, threshold: float = EFFECTIVE_THRESHOLD) -> None:
    """A Bayesian mixture's weights in decreasing order as a bar chart (the sticks),
    the ``threshold`` drawn and the number of components above it in the title, as a
    PNG at ``path`` (a path or a binary file object): how many components the data use
    out of the n_components the prior was given."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    plt = pyplot()
    w = np.asarray(model.weights_, dtype=float)
    K = len(w)
    order = np.argsort(-w, kind="stable")
    used = w[order] > threshold
    n_used = int(used.sum())
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    x = np.arange(1, K + 1)
    ax.bar(x, w[order], width=0.8, color=np.where(used, "tab:blue", "0.65"),
           edgecolor="none")
    ax.axhline(threshold, color="tab:red", ls="--", lw=1.2,
               label=f"{threshold:.0%} threshold")
    if K <= 30:  # each bar named by its component index
        ax.set_xticks(x)
        ax.set_xticklabels([str(k) for k in order], fontsize=8 if K > 15 else 10)
        ax.set_xlabel("component (heaviest first)")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("rank of the component's weight (heaviest first)")
    ax.set_xlim(0.3, K + 0.7)
    ax.set_ylim(0, max(float(w.max()) * 1.08, threshold * 3))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.4g}%"))
    ax.set_ylabel("weight")
    prior = ("Dirichlet process" if model.weight_concentration_prior_type ==
             "dirichlet_process" else "Dirichlet distribution")
    ax.set_title(f"{n_used} of {K} components above {threshold:.0%} weight "
                 f"({prior} prior)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


#: how each structural event is marked on the timeline
EVENT_MARKS = {"birth": ("^", "tab:green"), "death": ("x", "tab:red"),
               "merge": ("v", "tab:purple"), "split": ("D", "tab:orange")}


def plot_timeline(model, path) -> None:
    """An online model's component timeline as a PNG at ``path``: each component's
    weight over the updates (by id, so a line is one component's life), with its births,
    deaths, merges and splits marked, so a person sees when the structure changed."""
    plt = pyplot()
    history = model._history.by_component()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    cmap = plt.get_cmap("tab20")
    for n, (cid, (updates, weights)) in enumerate(sorted(history.items())):
        ax.plot(updates, weights, color=cmap(n % cmap.N), lw=1.5, label=f"id {cid}")
    top = max((float(np.max(w)) for _, w in history.values()), default=1.0)
    seen = set()
    for e in model.events_:
        if e["update"] == 0 or e["event"] not in EVENT_MARKS:
            continue
        marker, color = EVENT_MARKS[e["event"]]
        ax.axvline(e["update"], color=color, lw=0.8, alpha=0.4)
        ax.plot([e["update"]], [top * 1.04], marker=marker, color=color, ls="none",
                label=e["event"] if e["event"] not in seen else None)
        seen.add(e["event"])
    ax.set_xlabel("stepwise update")
    ax.set_ylabel("component weight")
    ax.set_ylim(0, top * 1.1)
    ax.set_title(f"components over {model.n_updates_:,} updates "
                 f"({len(model.weights_)} now; events marked at the top)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def _data_to_plot(args):
    """(what to sample the scatter plot from, its path or URL), both None when the plot
    shows points drawn from the model: --data, else --config's source."""
    if args.data is not None:
        return args.data, args.data
    if args.config is None:
        return None, None
    from ..config import load_config
    from ..sources import open_source

    cfg = load_config(args.config, args.set)
    return open_source(cfg), cfg.source["path"]


def check_report_dir(out: str, checkpoint: str, source: str | None) -> None:
    """Refuse an --out that is a file, or is or lies inside a checkpoint or the data
    (PNGs written there would corrupt them): a config error, exit code 2."""
    from ...execution.outputs import is_inside
    from ...persistence.markers import enclosing_checkpoint
    from ..config import ConfigError

    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"--out {out!r} is an existing file, not a directory: choose "
                          "another directory")
    ck = enclosing_checkpoint(out) if "://" not in out else None
    for what, p in (("the checkpoint", checkpoint), ("the data", source), ("a checkpoint", ck)):
        if p is not None and is_inside(out, p):
            raise ConfigError(f"--out {out!r} is or lies inside {what} {p!r}: the PNGs "
                              "would be written into it; choose another directory")
    if os.path.isdir(out) and not os.path.exists(os.path.join(out, REPORT_MARKER)):
        # a folder no report wrote: add our PNGs beside its files, never over them
        taken = [n for n in REPORT_FILES if os.path.lexists(os.path.join(out, n))]
        if taken:
            raise ConfigError(f"--out {out!r} already holds {', '.join(taken)}, not written "
                              "by `streammix report`: refusing to replace them; choose "
                              "another directory")


def render_report(model, checkpoint: str, data, sample: int) -> dict[str, bytes]:
    """{file name: PNG bytes} of every plot, drawn in memory so that nothing is written
    unless all of them could be made."""
    from ...errors import InvalidInputError

    if data is not None:
        X = sample_rows(data, sample)
        if X.shape[1] != model.n_features_in_:
            raise InvalidInputError(f"the data have {X.shape[1]} features but the model was "
                                    f"fitted on {model.n_features_in_}")
    else:
        X = model.sample(sample)[0]
    pngs = {}
    buf = io.BytesIO()
    plot_loglik(model, buf)
    pngs["loglik.png"] = buf.getvalue()
    st = Storage(checkpoint)
    if is_bayesian(model):
        buf = io.BytesIO()
        plot_weights(model, buf)
        pngs["weights.png"] = buf.getvalue()
    elif st.exists(SELECTION_FILE):  # (a Bayesian mixture has no BIC/AIC to compare)
        sel = json.loads(st.read_text(SELECTION_FILE))
        chosen = next(r for r in sel["results"] if r == sel["chosen"])
        buf = io.BytesIO()
        plot_selection(sel["results"], chosen, sel["criterion"], buf)
        pngs["selection.png"] = buf.getvalue()
    buf = io.BytesIO()
    plot_components(model, X, data is None, buf)
    pngs["components.png"] = buf.getvalue()
    if getattr(model, "_history", None) is not None and model._history.updates:
        buf = io.BytesIO()
        plot_timeline(model, buf)
        pngs["timeline.png"] = buf.getvalue()
    return pngs


def _write_atomic(path: str, data: bytes) -> None:
    """Write a file under a temporary name, then rename it: never a half-written PNG."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def run(args, opts, log) -> int:
    model = load(args.checkpoint, version=args.version)
    if not hasattr(model, "means_"):
        raise NotFittedError(f"checkpoint {args.checkpoint!r} holds a model that is not "
                             "fitted yet: nothing to plot")
    data, source = _data_to_plot(args)
    check_report_dir(args.out, args.checkpoint, source)
    pngs = render_report(model, args.checkpoint, data, args.sample)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, REPORT_MARKER), "a"):
        pass  # this folder's PNGs are ours: a later report may replace them
    for name, png in pngs.items():
        path = os.path.join(args.out, name)
        _write_atomic(path, png)
        log.info(f"wrote {path}", fields={"png": path})
    return 0
