"""Headless matplotlib for `streammix report` and `streammix select` (no display needed:
the Agg backend writes PNGs on a server or in a cron job), tick labels a person can read
(``plain_ticks``), labels that never overlap (``place_labels``), one colour per component
(``component_colors``) and the model-selection figure (``plot_selection``)."""

from __future__ import annotations

import math

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported only when a command plots)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plain_ticks(ax, axis: str = "y") -> None:
    """Tick labels as the values themselves: no offset ('+2.385e3') and no scientific
    multiplier above the axis, which make an ELBO or a log-likelihood unreadable.
    ``axis``: 'x', 'y' or 'both'."""
    from matplotlib.ticker import ScalarFormatter

    for which in (("x", "y") if axis == "both" else (axis,)):
        fmt = ScalarFormatter(useOffset=False)
        fmt.set_scientific(False)
        (ax.yaxis if which == "y" else ax.xaxis).set_major_formatter(fmt)


def save_png(fig, path) -> None:
    """Write ``fig`` as a PNG at ``path`` (a path or a binary file object) at the
    figure's own resolution, and close it."""
    fig.savefig(path, format="png", dpi=fig.dpi)
    pyplot().close(fig)


def component_colors(n: int) -> list[tuple]:
    """``n`` colours, one per component: tab10 up to 10; then tab20's light shades; then
    tab20b's and tab20c's hues (40 distinct colours), repeated beyond that (the
    component's number, drawn beside it, tells two of the same colour apart)."""
    import matplotlib

    cmap = matplotlib.colormaps
    if n <= 10:
        return [cmap["tab10"](k) for k in range(n)]
    t20, t20b, t20c = cmap["tab20"], cmap["tab20b"], cmap["tab20c"]
    base = ([t20(2 * i) for i in range(10)] + [t20(2 * i + 1) for i in range(10)]
            + [t20b(4 * i) for i in range(5)] + [t20c(4 * i) for i in range(4)]
            + [t20b(4 * i + 2) for i in range(5)] + [t20c(4 * i + 2) for i in range(4)]
            + [t20c(16), t20c(18)])
    return [base[k % len(base)] for k in range(n)]


#: the label boxes' padding, as a fraction of the font size (matplotlib's boxstyle pad)
_LABEL_PAD = 0.25


def place_labels(ax, anchors, texts, colors, *, order=None, fontsize: float = 9,
                 gid: str = "label", cover_anchor: bool = True, leader: bool = True,
                 gap: float = 2.0) -> list:
    """Boxed labels for the points ``anchors`` ((n, 2), data coordinates) of ``ax``, that
    overlap neither each other nor the axes' edges: each label (in ``order``, the first
    ones placed first) goes on its point if it is free (``cover_anchor``; else beside
    it), otherwise on the nearest free place of a widening ring around it, preferring
    the side away from the other points, with a thin leader line to its point.

    The figure's layout and the axes' limits must be final (they are frozen here): the
    labels are placed in pixels. Returns the Text artists in the order of ``texts``;
    each has gid ``f"{gid}-{i}"``."""
    from matplotlib.lines import Line2D

    n = len(texts)
    if n == 0:
        return []
    fig = ax.figure
    ax.set_xlim(ax.get_xlim())  # frozen: the labels are placed in pixels
    ax.set_ylim(ax.get_ylim())
    renderer = fig.canvas.get_renderer()
    anchors = np.asarray(anchors, dtype=float).reshape(n, 2)
    pts = ax.transData.transform(anchors)
    frame = ax.get_window_extent(renderer)
    fx0, fy0, fx1, fy1 = frame.x0 + 1, frame.y0 + 1, frame.x1 - 1, frame.y1 - 1
    pad = _LABEL_PAD * fontsize * fig.dpi / 72.0 + 1.5  # the box around the text + edge
    artists = []
    for i, (s, c) in enumerate(zip(texts, colors)):
        artists.append(ax.text(*anchors[i], s, ha="center", va="center", fontsize=fontsize,
                               fontweight="bold", zorder=6, clip_on=False,
                               gid=f"{gid}-{i}",
                               bbox=dict(boxstyle=f"round,pad={_LABEL_PAD}", fc="white",
                                         ec=c, lw=1.2, alpha=0.9)))
    sizes = []
    for t in artists:
        e = t.get_window_extent(renderer)
        sizes.append((e.width + 2 * pad, e.height + 2 * pad))
    placed = np.empty((0, 4))  # x0, y0, x1, y1 of the boxes placed so far
    span = math.hypot(fx1 - fx0, fy1 - fy0)
    for i in (range(n) if order is None else order):
        w, h = sizes[i]
        others = np.delete(pts, i, axis=0) if cover_anchor else pts
        best = None
        # first beside the point avoiding the other points; then anywhere free
        for avoid, reach in ((others, 8 * h), (others[:0], span)):
            step = max(0.5 * h, 3.0)
            for j in range(int(reach / step) + 1):
                r = j * step
                m = 1 if j == 0 else max(12, int(2 * math.pi * r / step))
                a = -0.5 * math.pi + 2 * math.pi * np.arange(m) / m
                cx = pts[i, 0] + r * np.cos(a) * min(max(w / h, 1.0), 2.5)
                cy = pts[i, 1] + r * np.sin(a)
                b = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
                ok = ((b[:, 0] >= fx0) & (b[:, 1] >= fy0) & (b[:, 2] <= fx1)
                      & (b[:, 3] <= fy1))
                if len(placed):
                    hit = ((b[:, None, 0] < placed[None, :, 2] + gap)
                           & (b[:, None, 2] > placed[None, :, 0] - gap)
                           & (b[:, None, 1] < placed[None, :, 3] + gap)
                           & (b[:, None, 3] > placed[None, :, 1] - gap))
                    ok &= ~hit.any(axis=1)
                if len(avoid):
                    inside = ((avoid[None, :, 0] > b[:, None, 0] - gap)
                              & (avoid[None, :, 0] < b[:, None, 2] + gap)
                              & (avoid[None, :, 1] > b[:, None, 1] - gap)
                              & (avoid[None, :, 1] < b[:, None, 3] + gap))
                    ok &= ~inside.any(axis=1)
                if ok.any():
                    idx = np.flatnonzero(ok)
                    if len(others) and len(idx) > 1:  # away from the crowd
                        dist = np.hypot(cx[idx, None] - others[None, :, 0],
                                        cy[idx, None] - others[None, :, 1]).min(axis=1)
                        idx = idx[np.argmax(np.round(dist, 3))]
                    else:
                        idx = idx[0]
                    best = b[idx]
                    break
            if best is not None:
                break
        if best is None:  # no free place at all (axes too small): on its point
            best = np.array([pts[i, 0] - w / 2, pts[i, 1] - h / 2,
                             pts[i, 0] + w / 2, pts[i, 1] + h / 2])
        placed = np.vstack([placed, best])
        centre = ((best[0] + best[2]) / 2, (best[1] + best[3]) / 2)
        artists[i].set_position(ax.transData.inverted().transform(centre))
        moved = not (best[0] <= pts[i, 0] <= best[2] and best[1] <= pts[i, 1] <= best[3])
        if leader and moved:
            xy = ax.transData.inverted().transform([pts[i], centre])
            ax.add_line(Line2D(xy[:, 0], xy[:, 1], color="0.2", lw=0.8, zorder=5.5,
                               solid_capstyle="round"))
    return artists


def boxes_overlap(a, b) -> bool:
    """Whether two matplotlib Bboxes overlap (touching edges do not count)."""
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


# ------------------------------------------------------------------ model selection
#: ΔBIC bands (Kass and Raftery): below 2 a close call, above 10 clearly worse
CLOSE_CALL, CLEARLY_WORSE = 2.0, 10.0


def _delta_ticks(top: float) -> list[float]:
    ticks = [0.0, CLOSE_CALL, 6.0, CLEARLY_WORSE]
    v = 100.0
    while v <= top * 1.0001:
        ticks.append(v)
        v *= 10
    return ticks


def selection_figure(results: list[dict], chosen: dict, criterion: str):
    """The Figure of ``plot_selection``."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    covs = sorted({r["covariance_type"] for r in results})
    styles = dict(zip(covs, zip(["tab:blue", "tab:orange", "tab:green", "tab:purple"] * 3,
                                ["o", "s", "^", "D"] * 3)))
    ks = sorted({int(r["n_components"]) for r in results})
    for ax, crit in zip(axes, ("bic", "aic")):
        best = min(results, key=lambda r: r[crit])
        top = max(max(r[crit] for r in results) - best[crit], CLEARLY_WORSE * 1.5)
        ax.axhspan(0, CLOSE_CALL, color="tab:green", alpha=0.12, lw=0)
        ax.axhspan(CLOSE_CALL, CLEARLY_WORSE, color="tab:olive", alpha=0.07, lw=0)
        for cov in covs:
            rows = sorted((r for r in results if r["covariance_type"] == cov),
                          key=lambda r: r["n_components"])
            color, marker = styles[cov]
            ax.plot([r["n_components"] for r in rows], [r[crit] - best[crit] for r in rows],
                    "-", marker=marker, color=color, ms=5, label=cov, zorder=3)
        ax.set_yscale("symlog", linthresh=CLEARLY_WORSE, linscale=2.0)
        ax.set_ylim(-1.2, top * 1.6)
        ax.yaxis.set_major_locator(FixedLocator(_delta_ticks(top)))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_major_locator(FixedLocator(ks) if len(ks) <= 20 else
                                   MaxNLocator(integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}"))
        pad = 0.5 if len(ks) > 1 else 1.0
        ax.set_xlim(ks[0] - pad, ks[-1] + pad)
        ax.plot([chosen["n_components"]], [chosen[crit] - best[crit]], "o", ms=15,
                mfc="none", mec="red", mew=2, zorder=4,
                alpha=1.0 if crit == criterion else 0.5)
        name = crit.upper()
        ax.set_xlabel("number of components K")
        ax.set_ylabel(f"Δ{name} = {name} − best {name}")
        ax.set_title(f"{name}: best {best[crit]:,.1f} ({best['covariance_type']}, "
                     f"K={best['n_components']})" +
                     (" — the criterion used" if crit == criterion else ""), fontsize=10)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=styles[c][0], marker=styles[c][1], ms=5, label=c)
               for c in covs]
    handles += [Line2D([], [], ls="none", marker="o", ms=11, mfc="none", mec="red", mew=2,
                       label=f"chosen by {criterion.upper()}: {chosen['covariance_type']}, "
                             f"K={chosen['n_components']}"),
                plt.Rectangle((0, 0), 1, 1, color="tab:green", alpha=0.25,
                              label=f"Δ < {CLOSE_CALL:g}: a close call"),
                plt.Rectangle((0, 0), 1, 1, color="tab:olive", alpha=0.15,
                              label=f"Δ {CLOSE_CALL:g} to {CLEARLY_WORSE:g}; above: "
                                    "clearly worse")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8.5,
               frameon=False)
    fig.tight_layout(rect=(0, 0.1 if len(handles) <= 4 else 0.14, 1, 1))
    # the close calls (0 < Δ < 10) get their Δ written beside them (placed in pixels:
    # after the layout, which must not change again)
    for ax, crit in zip(axes, ("bic", "aic")):
        best = min(r[crit] for r in results)
        close = [r for r in results if 0 < r[crit] - best < CLEARLY_WORSE]
        place_labels(ax, [(r["n_components"], r[crit] - best) for r in close],
                     [f"+{r[crit] - best:.1f}" for r in close],
                     [styles[r["covariance_type"]][0] for r in close], fontsize=7.5,
                     gid=f"delta-{crit}", cover_anchor=False)
    return fig


def plot_selection(results: list[dict], chosen: dict, criterion: str, path) -> None:
    """BIC and AIC against K, one line per covariance type, each as Δ = value − the best
    value (the best is 0; a symmetric-log axis, linear up to 10, so that close calls and
    distant candidates both show), with bands for a close call (Δ < 2) and a clearly
    worse candidate (Δ > 10), the close calls' Δ written beside them, and the chosen
    model circled, as a PNG at ``path`` (a path or a binary file object)."""
    save_png(selection_figure(results, chosen, criterion), path)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: the file that marks a folder as one `streammix report` wrote its PNGs into
REPORT_MARKER = ".streammix-report"


def is_png(path: str) -> bool:
    """Whether ``path`` is a file that starts as a PNG does."""
    try:
        with open(path, "rb") as f:
            return f.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
    except OSError:
        return False


def check_png_target(path: str, protected: dict[str, str | None], name: str) -> None:
    """Refuse (ConfigError, exit code 2) a PNG output path that is or lies inside a
    location the job reads or writes (``protected``: {what: path}) or any checkpoint, is
    a folder, or is an existing file that is not a PNG: a plot never replaces data, a
    checkpoint's file or a user's document. An earlier plot (a PNG) is replaced."""
    import os

    from ..execution.outputs import is_inside
    from ..persistence.markers import enclosing_checkpoint
    from .config import ConfigError

    where = [(what, p) for what, p in protected.items() if p]
    if "://" not in path:
        ck = enclosing_checkpoint(os.path.dirname(os.path.abspath(path)) or ".")
        if ck is None and os.path.isdir(path):
            ck = enclosing_checkpoint(path)
        if ck is not None:
            where.append(("the checkpoint", ck))
    for what, p in where:
        if is_inside(path, p) or is_inside(p, path):
            raise ConfigError(f"{name} {path!r} overlaps {what} {p!r}: the PNG would be "
                              "written into it; choose another path")
    if os.path.isdir(path):
        raise ConfigError(f"{name} {path!r} is a folder, not a PNG file: give a file path")
    if os.path.exists(path) and not is_png(path):
        raise ConfigError(f"{name} {path!r} is an existing file that is not a PNG: refusing "
                          "to replace it; choose another path")
