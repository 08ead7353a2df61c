"""Headless matplotlib for `streammix report` and `streammix select` (no display needed:
the Agg backend writes PNGs on a server or in a cron job), and tick labels a person can
read (``plain_ticks``)."""

from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported only when a command plots)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plain_ticks(ax, axis: str = "y") -> None:
    """Tick labels as the values themselves: no offset ('+2.385e3') and no scientific
    multiplier above the axis, which make an ELBO or a log-likelihood unreadable."""
    from matplotlib.ticker import ScalarFormatter

    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


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
