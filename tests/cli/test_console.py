"""The progress bar (drawn only on a terminal) and the log formats."""

import io
import json
import warnings

from streammix.cli.console import Progress, setup_logging


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_draws_on_a_terminal_only():
    tty = FakeTerminal()
    bar = Progress(100, "rows", stream=tty)
    bar.update(25, rows=25, note="batch 1")
    bar.update(50, rows=25)
    bar.close()
    out = tty.getvalue()
    assert out.count("\r") == 2 and out.endswith("\n")
    last = out.split("\r")[-1]
    assert "[" + "#" * 14 in last and "50/100 rows" in last and "ETA" in last
    pipe = io.StringIO()
    quiet = Progress(100, "rows", stream=pipe)
    quiet.update(50, rows=50)
    quiet.close()
    assert pipe.getvalue() == "" and not quiet.active
    disabled = Progress(100, "rows", stream=FakeTerminal(), enabled=False)
    assert not disabled.active


def test_json_log_lines_carry_fields_and_warnings():
    stream = io.StringIO()
    log = setup_logging("fit", 0, "json", stream=stream)
    log.info("iteration 3", fields={"iteration": 3, "lower_bound": -1.5})
    log.debug("hidden at verbosity 0")
    warnings.warn("did not converge", UserWarning)
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "iteration 3" and lines[0]["iteration"] == 3
    assert lines[0]["command"] == "fit" and lines[0]["level"] == "info"
    assert lines[1]["level"] == "warning" and "UserWarning: did not converge" in lines[1]["message"]
    assert len(lines) == 2


def test_text_log_lines_and_quiet():
    stream = io.StringIO()
    log = setup_logging("update", -1, "text", stream=stream)
    log.info("not shown")
    log.error("bad batch")
    assert stream.getvalue().count("\n") == 1 and "ERROR   update: bad batch" in stream.getvalue()


def test_progress_without_a_total_shows_count_and_rate():
    tty = FakeTerminal()
    bar = Progress(None, "EM iteration", stream=tty)
    bar.update(3, rows=1000, rate=2.5e6, note="change 1e-4")
    assert "EM iteration 3  2.5M rows/s" in tty.getvalue() and "ETA" not in tty.getvalue()
