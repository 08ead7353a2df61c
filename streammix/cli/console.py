"""What the command line prints: log lines (text or JSON, on stderr) for schedulers and
log collectors, and a progress bar when stderr is a terminal."""

from __future__ import annotations

import json
import math
import logging
import sys
import time
import warnings
from typing import TextIO

LOGGER_NAME = "streammix.cli"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, command, message and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
               "level": record.levelname.lower(),
               "command": getattr(record, "command", None),
               "message": record.getMessage()}
        out.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(_finite(out), default=str, allow_nan=False)


def _finite(value):
    """JSON has no inf/NaN: strict parsers reject them, so they are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)-7s %(command)s: %(message)s",
                         "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "command"):
            record.command = "streammix"
        return super().format(record)


class _BarAwareHandler(logging.StreamHandler):
    """Ends a progress line drawn on the same terminal before writing a log line, so a
    warning never lands in the middle of the bar."""

    def emit(self, record: logging.LogRecord) -> None:
        bar = Progress.drawn
        if bar is not None and bar.stream is self.stream:
            self.stream.write("\n")
            Progress.drawn = None
        super().emit(record)


class CommandLog(logging.LoggerAdapter):
    """A logger that tags every record with the command and optional structured fields:
    ``log.info("message", fields={"iteration": 3})``."""

    def process(self, msg, kwargs):
        extra = dict(kwargs.pop("extra", {}) or {})
        extra["command"] = self.extra["command"]
        extra["fields"] = kwargs.pop("fields", None)
        kwargs["extra"] = extra
        return msg, kwargs


def setup_logging(command: str, verbosity: int, log_format: str,
                  stream: TextIO | None = None) -> CommandLog:
    """Configure the CLI logger: verbosity -1 quiet (warnings and errors), 0 info,
    1 debug; text or json lines on ``stream`` (stderr)."""
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = _BarAwareHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel({-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG))
    logger.propagate = False
    log = CommandLog(logger, {"command": command})

    def show_warning(message, category, filename, lineno, file=None, line=None):
        """Warnings (ConvergenceWarning, DegenerateComponentWarning...) as one log line."""
        log.warning(f"{category.__name__}: {message}",
                    fields={"warning": category.__name__})

    warnings.showwarning = show_warning
    return log


def _duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60:02d}:{s % 60:02d}"


def _rate(rows_per_s: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if rows_per_s >= scale:
            return f"{rows_per_s / scale:.1f}{unit}"
    return f"{rows_per_s:.0f}"


class Progress:
    """A one-line progress bar on a terminal: units done of a total (rows), rows/s and
    ETA; with no total (EM iterations: the end is convergence, not known in advance), the
    count, the rate and the elapsed time. Draws nothing unless ``stream`` is a TTY and
    ``enabled``; the caller logs plain lines otherwise."""

    drawn: "Progress | None" = None  # the bar whose line is on the terminal now

    def __init__(self, total: float | None, unit: str, stream: TextIO | None = None,
                 enabled: bool = True, width: int = 28):
        self.stream = stream or sys.stderr
        self.active = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total = None if total is None else float(total)
        self.unit, self.width = unit, width
        self.rate: float | None = None
        self.done, self.rows = 0.0, 0.0
        self.start = time.perf_counter()
        self.note = ""

    def update(self, done: float, rows: float = 0.0, note: str = "",
               rate: float | None = None) -> None:
        """``rate``: rows/s to show (default: rows so far over the elapsed time)."""
        self.done, self.rows, self.note, self.rate = float(done), self.rows + rows, note, rate
        if self.active:
            self.stream.write("\r" + self.line())
            self.stream.flush()
            Progress.drawn = self

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.rate if self.rate is not None else \
            (self.rows / elapsed if elapsed > 0 else 0.0)
        if self.total is None:
            return (f"{self.unit} {self.done:,.0f}  {_rate(rate)} rows/s  elapsed "
                    f"{_duration(elapsed)}  {self.note}").rstrip()
        frac = min(1.0, self.done / self.total) if self.total > 0 else 1.0
        bar = "#" * int(frac * self.width)
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("inf")
        return (f"[{bar:<{self.width}}] {self.done:,.0f}/{self.total:,.0f} {self.unit}  "
                f"{_rate(rate)} rows/s  elapsed {_duration(elapsed)}  ETA {_duration(eta)}"
                f"  {self.note}").rstrip()

    def close(self) -> None:
        if self.active and Progress.drawn is self:
            self.stream.write("\n")
            self.stream.flush()
        if Progress.drawn is self:
            Progress.drawn = None


def log_structure_events(model, since: int, log) -> None:
    """Log the births, deaths, merges and splits an online model recorded after its
    first ``since`` events (one line each), so a follower's log says when the
    stream's structure changed."""
    for e in getattr(model, "events_", [])[since:]:
        kind = e.get("event")
        if kind == "merge":
            text = f"merged component {e['merged_id']} into {e['component_id']} ({e.get('reason')})"
        elif kind == "split":
            text = f"split component {e['component_id']}: new component {e['new_component_id']}"
        elif kind == "birth":
            text = f"component {e['component_id']} born ({e.get('reason')})"
        elif kind == "death":
            text = f"component {e['component_id']} died ({e.get('reason')})"
        else:
            continue
        log.info(f"update {e['update']}: {text}",
                 fields={"event": kind, "update": e["update"],
                         "component_id": e.get("component_id")})
