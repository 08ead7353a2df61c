"""Headless matplotlib for `streammix report` and `streammix select` (no display needed:
the Agg backend writes PNGs on a server or in a cron job)."""

from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported only when a command plots)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt
