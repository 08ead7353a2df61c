#!/usr/bin/env python
"""Streams that change shape: per scenario, the adjusted Rand index after the change,
label swaps among the clusters that persist, and updates per second, for

  moves      OnlineGaussianMixture (split, merge and birth moves: the default)
  stepwise   OnlineGaussianMixture(split_merge=False): stepwise EM alone
  sklearn    scikit-learn GaussianMixture(warm_start=True) refitted on every batch

on the seeded streams of tests/drift_streams.py (2-D, batches of 2,000 rows, 200
batches; the change at batch 100, or 120 for the gradual merge and split, or from the
start for the bad initialisation). All start from the same first batch: the online
models initialise on it (eta_min = 0.05), scikit-learn fits it first; in the
bad-initialisation scenario all three start from the same bad parameters. The ARI is
averaged over the batches from 10 after the change on; a swap is a persisting cluster
whose component (id for streammix, label for scikit-learn) holding >= 80% of its points
changes. Writes a PNG of ARI over time per scenario.

    .venv/bin/python benchmarks/bench_drift.py --png benchmarks/bench_drift.png
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from tests import drift_streams as ds  # noqa: E402

SCENARIOS = [  # name, stream, K, change, extra model arguments, clusters that change
    ("born at full capacity", ds.born, 5, 100, {}, (4,)),
    ("vanished", ds.vanished, 5, 100, {}, (4,)),
    ("two merging", ds.merging, 4, 120, {}, (2, 3)),
    ("one splitting", ds.splitting, 4, 120, {"max_components": 5}, (0, 4)),
    ("bad start", ds.stationary, 3, 0, dict(ds.BAD_INIT), ()),
]


class SklearnRefit:
    """scikit-learn's GaussianMixture refitted, warm-started, on every batch."""

    def __init__(self, K, init=None, seed=0):
        from sklearn.mixture import GaussianMixture

        self.gm = GaussianMixture(K, warm_start=True, random_state=seed,
                                  **({k: v for k, v in init.items()} if init else {}))
        self.fitted = False

    def partial_fit(self, X):
        self.gm.fit(X)
        self.fitted = True

    def labels(self, X):
        return self.gm.predict(X)


class Streammix:
    def __init__(self, K, moves, extra):
        from streammix import OnlineGaussianMixture

        self.m = OnlineGaussianMixture(K, eta_min=0.05, init_size=2000, random_state=0,
                                       split_merge=moves, **extra)

    @property
    def fitted(self):
        return hasattr(self.m, "means_")

    def partial_fit(self, X):
        self.m.partial_fit(X)

    def labels(self, X):
        return self.m.component_ids_[self.m.predict(X)]


def follow(system, stream, change, involved):
    from sklearn.metrics import adjusted_rand_score

    curve, owner, swaps, spent, updates = [], {}, 0, 0.0, 0
    for b, X, y in stream():
        if system.fitted:
            ids = system.labels(X)
            curve.append((b, adjusted_rand_score(y, ids)))
            for k in np.unique(y):
                counts = np.bincount(ids[y == k])
                if b < 10 or k in involved or counts.max() < 0.8 * counts.sum():
                    continue
                major = int(counts.argmax())
                swaps += owner.setdefault(int(k), major) != major
                owner[int(k)] = major
        t0 = time.perf_counter()
        system.partial_fit(X)
        spent += time.perf_counter() - t0
        updates += 1
    after = float(np.mean([a for b, a in curve if b >= change + 10]))
    return after, swaps, updates / spent, curve


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--png", default=None, help="write the ARI curves here")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from _common import markdown_table, report_header

    report_header("bench_drift: streams that change shape", ["scikit-learn"])
    t_start = time.perf_counter()
    rows, curves = [], {}
    # warm-up: kernels loaded, the moves' code paths run once, outside the timings
    for moves_on in (True, False):
        follow(Streammix(3, moves_on, dict(ds.BAD_INIT)),
               lambda: ds.stationary(n_batches=30), 0, ())
    follow(SklearnRefit(3), lambda: ds.stationary(n_batches=3), 0, ())
    for name, stream, K, change, extra, involved in SCENARIOS:
        init = {k: v for k, v in extra.items() if k.endswith("_init")}
        systems = {"moves": Streammix(K, True, extra),
                   "stepwise": Streammix(K, False, extra),
                   "sklearn": SklearnRefit(K, init)}
        for label, system in systems.items():
            after, swaps, rate, curve = follow(system, stream, change, involved)
            curves[(name, label)] = curve
            rows.append([name, label, f"{after:.3f}", str(swaps), f"{rate:,.0f}"])
            print(f"  {name}: {label} ARI {after:.3f} swaps {swaps} {rate:,.0f} updates/s",
                  file=sys.stderr)
    print("2-D streams of 200 batches x 2,000 rows (tests/drift_streams.py); ARI averaged "
          "from 10 batches after the change\n")
    print(markdown_table(["scenario", "system", "ARI after the change",
                          "swaps (persisting clusters)", "updates per second"], rows))
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(SCENARIOS), 1, figsize=(8, 2.2 * len(SCENARIOS)),
                                 sharex=True)
        for ax, (name, _, _, change, _, _) in zip(axes, SCENARIOS):
            for label in ("moves", "stepwise", "sklearn"):
                b, a = zip(*curves[(name, label)])
                ax.plot(b, a, label=label, lw=1.2)
            if change:
                ax.axvline(change, color="grey", ls=":", lw=1)
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("ARI")
            ax.set_title(name, fontsize=10)
        axes[0].legend(loc="lower left", fontsize=8)
        axes[-1].set_xlabel("batch")
        fig.tight_layout()
        fig.savefig(args.png, dpi=80)
        print(f"\nARI over time: {args.png}")
    print(f"\nTotal wall time {time.perf_counter() - t_start:.1f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
