"""The `streammix` command line (also `python -m streammix`).

    streammix fit CONFIG        exact EM from the configured source into a checkpoint
                                (GaussianMixture or BayesianGaussianMixture)
    streammix update CONFIG     online update from the data not consumed yet
                                (OnlineGaussianMixture or OnlineBayesianGaussianMixture)
    streammix predict CONFIG    labels / responsibilities / log-density to Zarr
    streammix score CONFIG      log-density (+ anomaly flags) to Zarr
    streammix select CONFIG     BIC/AIC over K and covariance types (GaussianMixture)
    streammix inspect CKPT      what a checkpoint holds (--json for machines); a Bayesian
                                mixture's effective number of components
    streammix report CKPT --out DIR   PNG plots (a Bayesian mixture's: its sorted weights)
    streammix repair CKPT       point a damaged checkpoint at its newest good version
    streammix demo              what `make demo` runs

Exit codes: 0 success (including "nothing new to do"), 2 bad config or usage, 3 bad or
missing data, 4 checkpoint problem (missing, corrupt, locked, other fit), 1 anything else.
"""

from __future__ import annotations

import argparse
import os
import sys

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_DATA, EXIT_CHECKPOINT = 0, 1, 2, 3, 4

CONFIG_COMMANDS = ("fit", "update", "predict", "score", "select")
#: the option picking a checkpoint version (inspect, report); `--version` is streammix's
CHECKPOINT_VERSION = ("--checkpoint-version",)
CHECKPOINT_HELP = "checkpoint directory or URL (a job's run.checkpoint)"


def exit_code(exc: BaseException) -> int:
    """The documented exit code of an error."""
    from ..errors import (
        CheckpointError,
        InvalidDtypeError,
        InvalidInputError,
        InvalidParameterError,
        NotFittedError,
    )
    from .config import ConfigError, MissingDataError

    if isinstance(exc, (ConfigError, InvalidParameterError)):
        return EXIT_CONFIG
    if isinstance(exc, (CheckpointError, NotFittedError)):
        return EXIT_CHECKPOINT
    if isinstance(exc, (MissingDataError, InvalidInputError, InvalidDtypeError)):
        return EXIT_DATA
    return EXIT_ERROR


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {value}")
    return value


def _add_global_options(p: argparse.ArgumentParser, top: bool, cluster: bool = True) -> None:
    """Options every command takes, before or after the command name. ``cluster``: the
    command runs Dask work (--scheduler/--workers in its help); commands that do not
    still accept them (a wrapper may pass the same options to every command) but do
    not list them."""
    from .._version import __version__

    d = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    if not top:  # `streammix COMMAND --version` as `streammix --version`
        p.add_argument("--version", action="version", version=f"streammix {__version__}",
                       help="show streammix's version and exit")
    p.add_argument("--scheduler", metavar="ADDRESS", default=d(None),
                   help="use a running Dask scheduler (default: in-process threads, or "
                        "run.cluster in the config)" if cluster else argparse.SUPPRESS)
    p.add_argument("--workers", type=_positive_int, metavar="N", default=d(None),
                   help="start a local Dask cluster of N worker processes" if cluster
                   else argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="count", default=d(0),
                   help="debug lines and tracebacks (-vv: the same as -v)")
    p.add_argument("-q", "--quiet", action="store_true", default=d(False),
                   help="only warnings and errors")
    p.add_argument("--log-format", choices=("text", "json"), default=d("text"),
                   help="log lines as text or one JSON object per line (log collectors)")
    p.add_argument("--no-progress", action="store_true", default=d(False),
                   help="no progress bar even on a terminal")


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    ap = argparse.ArgumentParser(
        prog="streammix", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"streammix {__version__}",
                    help="show streammix's version and exit")
    _add_global_options(ap, top=True)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    helps = {"fit": "exact EM from the configured source into the checkpoint (resumable)",
             "update": "online update from the rows/files not consumed yet",
             "predict": "write labels / responsibilities / log-density to Zarr",
             "score": "write log-density and anomaly flags to Zarr",
             "select": "BIC/AIC over numbers of components and covariance types"}
    for name in CONFIG_COMMANDS:
        p = sub.add_parser(name, help=helps[name], description=helps[name])
        p.add_argument("config", metavar="CONFIG", help="YAML job config")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set model.n_components=8 "
                            "(repeatable; values are YAML)")
        if name in ("update", "score"):
            p.add_argument("--follow", action="store_true",
                           help="run as a service on a broker stream (source.type: redis) "
                                "until SIGTERM/SIGINT")
            p.add_argument("--metrics-port", metavar="[HOST:]PORT", default=None,
                           help="with --follow: serve Prometheus metrics on this port")
        if name == "fit":
            p.add_argument("--align-to", metavar="CHECKPOINT", default=None,
                           help="keep the labels of this model ('previous': the model the "
                                "checkpoint holds); overrides run.align_to")
        _add_global_options(p, top=False)
    p = sub.add_parser("inspect", help="summarise a checkpoint",
                       description="summarise a checkpoint")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help=CHECKPOINT_HELP)
    p.add_argument("--json", action="store_true", help="machine-readable JSON")
    p.add_argument(*CHECKPOINT_VERSION, dest="version", type=_positive_int, default=None,
                   metavar="N", help="summarise checkpoint version N instead of the "
                                     "current one (versions on disk: see the summary)")
    _add_global_options(p, top=False, cluster=False)
    p = sub.add_parser("report", help="PNG plots of a checkpoint",
                       description="PNG plots of a checkpoint")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help=CHECKPOINT_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the PNGs")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="Zarr array (path/URL) or .npy file to sample the scatter plot "
                        "from (default: "
                        "--config's source, else samples drawn from the model)")
    p.add_argument("--config", default=None, metavar="CONFIG",
                   help="take the data from this config's source")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --config: override one of its keys (repeatable)")
    p.add_argument("--sample", type=_positive_int, default=5000, metavar="N",
                   help="points in the scatter plot (default: 5000)")
    p.add_argument(*CHECKPOINT_VERSION, dest="version", type=_positive_int, default=None,
                   metavar="N", help="plot checkpoint version N instead of the current one")
    _add_global_options(p, top=False, cluster=False)
    p = sub.add_parser("repair", help="point a checkpoint at its newest version that "
                       "verifies (after exit code 4: damaged version, lost pointer)",
                       description="point a checkpoint at its newest version that verifies")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help=CHECKPOINT_HELP)
    _add_global_options(p, top=False, cluster=False)
    p = sub.add_parser("demo", help="the `make demo` job", add_help=False)
    p.add_argument("demo_args", nargs=argparse.REMAINDER)
    return ap


class Interrupted(BaseException):
    """SIGINT or SIGTERM: unwinds like KeyboardInterrupt, so checkpoint locks are
    released and `update` saves the batches it has folded in."""


def _raise_on_signals():
    """Turn SIGINT/SIGTERM into Interrupted (schedulers send SIGTERM); returns a function
    restoring the previous handlers."""
    import signal

    def handler(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (e.g. called from a test thread)
            pass

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _only_options(args: list[str]) -> bool:
    """Whether ``args`` (what comes before a command name) are global options only."""
    takes_value = {"--scheduler", "--workers", "--log-format"}
    i = 0
    while i < len(args):
        if not args[i].startswith("-"):
            return False
        i += 2 if args[i] in takes_value else 1
    return True


def _old_checkpoint_version(argv: list[str]) -> str | None:
    """N when ``argv`` picks a checkpoint version the old way (`inspect CKPT --version N`,
    which now prints streammix's version), else None."""
    if not any(c in argv for c in ("inspect", "report")):
        return None
    for i, a in enumerate(argv):
        value = a.split("=", 1)[1] if a.startswith("--version=") else \
            (argv[i + 1] if a == "--version" and i + 1 < len(argv) else None)
        if value is not None and value.lstrip("-").isdigit():
            return value
    return None


def _stdout_to_devnull() -> None:
    """After a broken pipe on stdout: point its file descriptor at /dev/null, so that
    what is still buffered is dropped quietly when Python flushes it at exit (no
    BrokenPipeError, no ResourceWarning of a file left open)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (tests capture it)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (never raises for expected errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "demo" in argv and _only_options(argv[:argv.index("demo")]):
        from ..demo import main as demo_main  # the demo has its own options

        i = argv.index("demo")  # global options go before or after the command
        return demo_main(argv[:i] + argv[i + 1:])
    parser = build_parser()
    moved = _old_checkpoint_version(argv)
    if moved is not None:
        parser.error(f"the checkpoint version is chosen with --checkpoint-version {moved} "
                     "(--version prints streammix's version)")
    args = parser.parse_args(argv)  # usage errors exit with code 2
    from ..errors import CheckpointCorruptError, CheckpointError, InvalidDtypeError
    from .cluster import ClusterError
    from .config import cli_checkpoint_message
    from .console import setup_logging

    verbosity = -1 if args.quiet else min(args.verbose, 1)
    log = setup_logging(args.command, verbosity, args.log_format)
    args.progress = not (args.no_progress or args.quiet or args.log_format == "json")
    restore = _raise_on_signals()
    try:
        code = _dispatch(args, log)
        sys.stdout.flush()  # a reader gone (`| head`) shows up here, not at exit
        return code
    except Interrupted as exc:
        if getattr(args, "follow", False):  # a service stopped while starting: nothing read
            log.info(f"stopped by {exc} while starting; nothing was read",
                     fields={"signal": str(exc)})
            return EXIT_OK
        log.error(f"{exc}: stopped; the checkpoint holds the last saved state, rerun the "
                  "same command to continue", fields={"signal": str(exc)})
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `streammix inspect CKPT | head`: the reader has enough
        _stdout_to_devnull()
        return EXIT_OK
    except Exception as exc:  # every error becomes a log line and an exit code
        code = exit_code(exc)
        expected = code != EXIT_ERROR or isinstance(exc, ClusterError)
        message = str(exc) or type(exc).__name__
        if isinstance(exc, InvalidDtypeError) and args.command in CONFIG_COMMANDS:
            message += " (in a config: source.dtype: float64 casts the data when read)"
        if isinstance(exc, CheckpointError):  # worded for the command line, not Python
            message = cli_checkpoint_message(message)
        if isinstance(exc, CheckpointCorruptError) and args.command != "repair":
            message += (" (`streammix repair CHECKPOINT` points it at its newest version "
                        "that verifies)")
        log.error(message,
                  fields={"error": type(exc).__name__, "exit_code": code},
                  exc_info=verbosity > 0 or not expected)
        return code
    finally:
        restore()


def _dispatch(args, log) -> int:
    import warnings

    warnings.simplefilter("default")
    if args.command in CONFIG_COMMANDS:
        from .config import load_config

        cfg = load_config(args.config, args.set)
        log.debug(f"config {cfg.path} validated")
        if args.command == "fit":
            from .commands import fit

            return fit.run(cfg, args, log)
        if args.command == "update":
            from .commands import update

            return update.run(cfg, args, log)
        if args.command in ("predict", "score"):
            from .commands import predict

            return predict.run(cfg, args, log, command=args.command)
        from .commands import select

        return select.run(cfg, args, log)
    if args.command == "repair":
        from .commands import repair

        return repair.run(args, args, log)
    if args.command == "inspect":
        from .commands import inspect

        return inspect.run(args, args, log)
    from .commands import report
    from .config import require_checkpoint

    require_checkpoint(args.checkpoint)
    if isinstance(args.data, str) and args.data.endswith(".npy") and \
            os.path.isfile(args.data):  # not a .npy array, or objects: say so, by name
        from .sources import npy_header

        npy_header(args.data)
    return report.run(args, args, log)
