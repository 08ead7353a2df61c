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
import os

import numpy as np

from ...errors import NotFittedError
from ...persistence import load
from ...persistence.storage import Storage
from ..config import EFFECTIVE_THRESHOLD, is_bayesian, is_online
from ..plotting import REPORT_MARKER, plain_ticks, pyplot
from .select import SELECTION_FILE, plot_selection

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


def principal_axes(model) -> np.ndarray:
    """(2, d): the two leading eigenvectors of the mixture's overall covariance
    sum_k w_k (S_k + m_k m_k^T) - m m^T (the data's, if the model fits them)."""
    w, mu = model.weights_, model.means_
    covs = component_covariances(model)
    m = w @ mu
    total = np.einsum("k,kij->ij", w, covs) + (mu * w[:, None]).T @ mu - np.outer(m, m)
    vals, vecs = np.linalg.eigh(total)
    return vecs[:, ::-1][:, :2].T


def sample_rows(data, n: int, seed: int = 0) -> np.ndarray:
    """Up to n rows picked uniformly (sorted indices: each chunk read at most once)."""
    from ...execution.inputs import as_dask_array
    from ..config import MissingDataError

    if isinstance(data, str) and "://" not in data and not os.path.exists(data):
        raise MissingDataError(f"--data {data!r} does not exist")
    if isinstance(data, str) and data.endswith(".npy"):
        data = np.load(data, mmap_mode="r")
    X = as_dask_array(data) if not isinstance(data, np.ndarray) else data
    rows = int(X.shape[0])
    idx = np.sort(np.random.default_rng(seed).choice(rows, size=min(n, rows), replace=False))
    out = X[idx]
    return np.asarray(out.compute() if hasattr(out, "compute") else out, dtype=np.float64)


def _ellipse(ax, centre, cov2, color) -> None:
    from matplotlib.patches import Ellipse

    vals, vecs = np.linalg.eigh(cov2)
    vals = np.clip(vals, 0, None)
    angle = float(np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1])))
    for nsig, alpha in ((1.0, 0.9), (2.0, 0.5)):
        ax.add_patch(Ellipse(centre, 2 * nsig * np.sqrt(vals[1]), 2 * nsig * np.sqrt(vals[0]),
                             angle=angle, fill=False, color=color, lw=2, alpha=alpha))


def plot_loglik(model, path) -> None:
    """The EM (or online) log-likelihood trace as a PNG at ``path`` (a path or a binary
    file object)."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    hist = np.asarray(getattr(model, "lower_bounds_", []), dtype=float)
    online = is_online(model)
    bayesian = is_bayesian(model)
    if bayesian:
        label = "batch mean score" if online else "evidence lower bound (ELBO)"
        ylabel = ("mean variational score per sample" if online else
                  "evidence lower bound (ELBO)")
    else:
        label = "batch mean log-likelihood" if online else "mean log-likelihood"
        ylabel = "mean log-likelihood per sample"
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    x = np.arange(1, len(hist) + 1)
    ax.plot(x, hist, "-", color="tab:blue", alpha=0.5 if online else 1.0,
            marker=None if online or len(hist) > 60 else "o", label=label)
    if online and len(hist) >= 10:
        w = max(5, len(hist) // 20)
        smooth = np.convolve(hist, np.ones(w) / w, mode="valid")
        ax.plot(x[w - 1:], smooth, color="tab:red", lw=2, label=f"moving average ({w})")
    ax.set_xlabel(("stochastic variational update" if bayesian else "stepwise update")
                  if online else
                  "variational EM iteration" if bayesian else "EM iteration")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    plain_ticks(ax)
    effective = (f" ({model.effective_n_components(EFFECTIVE_THRESHOLD)} above "
                 f"{EFFECTIVE_THRESHOLD:.0%} weight)" if bayesian else "")
    ax.set_title(f"{type(model).__name__}: K={len(model.weights_)}{effective}, "
                 f"{model.covariance_type}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def plot_components(model, X: np.ndarray, from_model: bool, path) -> None:
    """X projected on the model's principal axes (or a histogram when d = 1) with each
    component's 1 and 2 sigma ellipse, as a PNG at ``path`` (a path or a file object)."""
    plt = pyplot()
    K, d = model.means_.shape
    labels = model.predict(X)
    # a Bayesian mixture's switched-off components (the prior's, nearly weightless and
    # as broad as the data) would hide the others: only those in use are drawn
    shown = [k for k in range(K)
             if not is_bayesian(model) or model.weights_[k] > EFFECTIVE_THRESHOLD]
    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    cmap = plt.get_cmap("tab10" if K <= 10 else "tab20")
    if d == 1:
        ax.hist(X[:, 0], bins=80, density=True, color="0.7")
        grid = np.linspace(X[:, 0].min(), X[:, 0].max(), 400)[:, None]
        resp = model.predict_proba(grid) * np.exp(model.score_samples(grid))[:, None]
        for k in shown:
            ax.plot(grid[:, 0], resp[:, k], color=cmap(k % cmap.N), lw=2,
                    label=f"k={k} (w={model.weights_[k]:.2f})")
        ax.set_xlabel("x")
    else:
        P = np.eye(2, d) if d == 2 else principal_axes(model)
        Z = X @ P.T
        for k in range(K):
            ax.scatter(*Z[labels == k].T, s=3, alpha=0.35, color=cmap(k % cmap.N))
        covs = component_covariances(model)
        for k in shown:
            centre = P @ model.means_[k]
            _ellipse(ax, centre, P @ covs[k] @ P.T, cmap(k % cmap.N))
            ax.annotate(str(k), centre, fontsize=11, weight="bold", ha="center",
                        va="center")
        ax.set_xlabel("x0" if d == 2 else "principal axis 1")
        ax.set_ylabel("x1" if d == 2 else "principal axis 2")
        ax.autoscale_view()
    what = "points drawn from the model" if from_model else "rows sampled from the data"
    if len(shown) < K:
        ax.set_title(f"{len(X):,} {what}\nellipses (1 and 2 sigma): the {len(shown)} "
                     f"components above {EFFECTIVE_THRESHOLD:.0%} weight")
    else:
        ax.set_title(f"{len(X):,} {what}; ellipses: 1 and 2 sigma")
    if d == 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


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
