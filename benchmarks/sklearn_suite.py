#!/usr/bin/env python
"""Run scikit-learn's OWN mixture tests against streammix, with only the import changed.

Why: streammix's estimators aim to be drop-in replacements for scikit-learn's, and the
most direct evidence of that (and of where they are not) is scikit-learn's own test
suite. This tool copies the installed test files

    sklearn/mixture/tests/test_bayesian_mixture.py   -> streammix.BayesianGaussianMixture
    sklearn/mixture/tests/test_gaussian_mixture.py   -> streammix.GaussianMixture
    sklearn/mixture/tests/test_mixture.py            -> both (``--module common``)

to a temporary directory, rewrites the ``from sklearn.mixture import ...`` statement so
that the estimator classes come from ``streammix`` (everything else is left alone:
imports of private helpers from ``sklearn.mixture._gaussian_mixture`` /
``_bayesian_mixture`` and of ``sklearn.exceptions`` stay scikit-learn's, so those tests
keep testing scikit-learn's internals and scikit-learn's exception classes), runs pytest
on the copy in a subprocess and classifies every test from a JUnit XML report:

    passed / skipped / failed, and for each failure a category from ``EXPLAINED``:
      (a) internals  - the test uses scikit-learn private functions or methods
      (b) documented - a deliberate, documented difference of streammix
      (c) gap        - a bug or gap in streammix to fix
    and "unexplained" for a failure not listed in ``EXPLAINED`` (a regression, or a new
    scikit-learn test to look at).

Isolation: pytest runs with ``-c <tmp>/pytest.ini --rootdir <tmp> -p no:cacheprovider``
in the temporary directory, with an empty ini file, so neither this project's pytest
configuration (which turns RuntimeWarning into errors) nor its conftest applies, and
with ``PYTEST_ADDOPTS`` / ``PYTEST_PLUGINS`` cleared. A small conftest.py written next
to the copies provides the two fixtures the tests take from scikit-learn's own
conftest: ``global_random_seed`` (42, or ``SKLEARN_TESTS_GLOBAL_RANDOM_SEED``) and
``global_dtype`` (float64; float32 too with ``SKLEARN_RUN_FLOAT32_TESTS=1``), as
scikit-learn defines them. Nothing is downloaded.

Usage (from the repository root):

    .venv/bin/python benchmarks/sklearn_suite.py                   # both modules
    .venv/bin/python benchmarks/sklearn_suite.py --module bayesian
    .venv/bin/python benchmarks/sklearn_suite.py --module gaussian --verbose
    .venv/bin/python benchmarks/sklearn_suite.py --json report.json

The exit code is 0 whatever the tests do (this is a report); ``--strict`` makes it 1
when a failure is unexplained. ``run_module(name)`` is the same run as a function
(tests/estimators/test_sklearn_suite.py uses it).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

# --------------------------------------------------------------------------- modules
# name -> (test file in sklearn/mixture/tests, the classes that come from streammix)
MODULES = {
    "bayesian": ("test_bayesian_mixture.py", ("BayesianGaussianMixture",)),
    "gaussian": ("test_gaussian_mixture.py", ("GaussianMixture",)),
    "common": ("test_mixture.py", ("BayesianGaussianMixture", "GaussianMixture")),
}
CHOICES = {"bayesian": ["bayesian"], "gaussian": ["gaussian"],
           "both": ["bayesian", "gaussian"], "common": ["common"],
           "all": ["bayesian", "gaussian", "common"]}

CATEGORIES = {
    "a": "uses scikit-learn internals",
    "b": "documented streammix difference",
    "c": "streammix bug or gap",
}
UNEXPLAINED = "unexplained"

# --------------------------------------------------------------------------- verdicts
# module -> test -> (category, one-line reason). A key is a test function name (it
# covers every parametrisation) or a full pytest id "name[params]" (that case only;
# looked up first). Filled by reading each failing test's source: see the report.
EXPLAINED: dict[str, dict[str, tuple[str, str]]] = {
    "bayesian": {},
    "gaussian": {},
    "common": {},
}


# --------------------------------------------------------------------------- results
@dataclass
class TestResult:
    name: str                  # pytest id within the module: "test_x[param]"
    outcome: str               # passed | failed | skipped
    message: str = ""          # first line of the error (failures) or skip reason
    category: str = ""         # a | b | c | unexplained (failures only)
    reason: str = ""           # from EXPLAINED


@dataclass
class ModuleReport:
    module: str
    test_file: str
    seconds: float
    results: list[TestResult] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # EXPLAINED keys that did not fail

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def passed(self) -> int:
        return self.count("passed")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    def failures(self, category: str | None = None) -> list[TestResult]:
        return [r for r in self.results if r.outcome == "failed"
                and (category is None or r.category == category)]

    @property
    def unexplained(self) -> list[TestResult]:
        return self.failures(UNEXPLAINED)


# --------------------------------------------------------------------------- the copy
def sklearn_tests_dir() -> Path:
    import sklearn.mixture

    return Path(sklearn.mixture.__file__).parent / "tests"


def rewrite_imports(source: str, names: tuple[str, ...]) -> str:
    """``source`` with ``names`` imported from streammix instead of sklearn.mixture.

    Only ``from sklearn.mixture import ...`` statements (the public package) change;
    ``sklearn.mixture._gaussian_mixture`` and friends are other modules and stay. A
    line asserting where the classes come from is appended, so that a rewrite that
    silently failed cannot produce a report about scikit-learn's own classes."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits = []  # (first line index, last line index, replacement text)
    found = set()
    for node in tree.body:
        if not (isinstance(node, ast.ImportFrom) and node.module == "sklearn.mixture"
                and node.level == 0):
            continue
        ours = [a for a in node.names if a.name in names]
        if not ours:
            continue
        theirs = [a for a in node.names if a.name not in names]
        text = "from streammix import " + ", ".join(
            a.name + (f" as {a.asname}" if a.asname else "") for a in ours) + "\n"
        if theirs:
            text += "from sklearn.mixture import " + ", ".join(
                a.name + (f" as {a.asname}" if a.asname else "") for a in theirs) + "\n"
        edits.append((node.lineno - 1, node.end_lineno - 1, text))
        found.update(a.asname or a.name for a in ours)
    missing = [n for n in names if n not in found]
    if missing:
        raise RuntimeError(f"no 'from sklearn.mixture import {', '.join(missing)}' found: "
                           "scikit-learn's test file changed; update rewrite_imports")
    for first, last, text in sorted(edits, reverse=True):
        lines[first:last + 1] = [text]
    check = "".join(
        f"assert {n}.__module__.startswith('streammix.'), {n}.__module__\n" for n in names)
    return "".join(lines) + "\n\n# added by benchmarks/sklearn_suite.py\n" + check


CONFTEST = '''\
"""The fixtures scikit-learn's mixture tests take from scikit-learn's conftest.py,
defined as scikit-learn defines them (written by benchmarks/sklearn_suite.py)."""
import os

import numpy as np
import pytest

_SKIP32 = pytest.mark.skipif(
    os.environ.get("SKLEARN_RUN_FLOAT32_TESTS", "0") != "1",
    reason="Set SKLEARN_RUN_FLOAT32_TESTS=1 to run float32 dtype tests",
)


@pytest.fixture(params=[pytest.param(np.float32, marks=_SKIP32), np.float64])
def global_dtype(request):
    yield request.param


def pytest_generate_tests(metafunc):
    var = os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED")
    if var is None:
        seeds = [42]
    elif var == "all":
        seeds = list(range(100))
    elif "-" in var:
        start, stop = var.split("-")
        seeds = list(range(int(start), int(stop) + 1))
    else:
        seeds = [int(var)]
    if "global_random_seed" in metafunc.fixturenames:
        metafunc.parametrize("global_random_seed", seeds)
'''

INI = """\
[pytest]
# empty on purpose: not the project's configuration (see benchmarks/sklearn_suite.py)
markers =
    thread_unsafe: scikit-learn marker
    parallel_threads(n): scikit-learn marker
"""


# --------------------------------------------------------------------------- running
def _first_line(text: str) -> str:
    """The informative first line of a JUnit failure message (for a pytest.raises
    whose match= failed, the regex and the message that did not match)."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    if not lines:
        return ""
    first = lines[0]
    if "Regex pattern did not match" in first:
        extra = [ln for ln in lines[1:4] if ln.startswith(("Regex:", "Input:",
                                                             "Expected regex:",
                                                             "Actual message:"))]
        first = " ".join([first] + extra)
    return first[:300]


def _classify(module: str, name: str) -> tuple[str, str]:
    table = EXPLAINED.get(module, {})
    key = name if name in table else name.split("[", 1)[0]
    if key in table:
        return table[key]
    return UNEXPLAINED, ""


def parse_junit(path: Path, module: str) -> list[TestResult]:
    results: dict[str, TestResult] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                message = _first_line(child.get("message") or child.text or "")
                break
            if child.tag == "skipped":
                outcome = "skipped"
                message = _first_line(child.get("message") or "")
        if name in results and results[name].outcome == "failed":
            continue  # a teardown error after a failure: keep the failure
        results[name] = TestResult(name, outcome, message)
    for r in results.values():
        if r.outcome == "failed":
            r.category, r.reason = _classify(module, r.name)
    return sorted(results.values(), key=lambda r: r.name)


def run_module(module: str, *, timeout: float = 1800, verbose: bool = False,
               keep: str | None = None) -> ModuleReport:
    """Copy scikit-learn's test file for ``module``, rewrite its import, run it with
    pytest in a subprocess, and classify the outcomes."""
    filename, names = MODULES[module]
    source = (sklearn_tests_dir() / filename).read_text()
    with tempfile.TemporaryDirectory(prefix="streammix-sklearn-suite-") as tmp:
        work = Path(keep) if keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        target = work / f"streammix_{filename}"  # not sklearn's name: no module clash
        target.write_text(rewrite_imports(source, names))
        (work / "conftest.py").write_text(CONFTEST)
        (work / "pytest.ini").write_text(INI)
        xml = work / f"{module}.xml"
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        cmd = [sys.executable, "-m", "pytest", str(target), "-c", str(work / "pytest.ini"),
               "--rootdir", str(work), "-p", "no:cacheprovider", "-q", "-rA",
               f"--junitxml={xml}", "-o", "junit_family=xunit1"]
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                              timeout=timeout)
        seconds = time.monotonic() - started
        if verbose:
            sys.stderr.write(proc.stdout[-20000:] + proc.stderr[-5000:])
        if not xml.exists():
            raise RuntimeError(f"pytest wrote no report (exit {proc.returncode}):\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        results = parse_junit(xml, module)
    report = ModuleReport(module, filename, seconds, results)
    failed = {r.name for r in report.failures()}
    bases = {n.split("[", 1)[0] for n in failed}
    report.stale = sorted(k for k in EXPLAINED.get(module, {})
                          if k not in failed and k not in bases)
    return report


# --------------------------------------------------------------------------- printing
def format_report(report: ModuleReport) -> str:
    filename, names = MODULES[report.module]
    out = [f"## {report.module}: sklearn/mixture/tests/{filename} against "
           f"streammix.{' and streammix.'.join(names)}",
           "",
           f"total {report.total}   passed {report.passed}   failed {report.failed}   "
           f"skipped {report.skipped}   ({report.seconds:.1f} s)"]
    for cat, label in list(CATEGORIES.items()) + [(UNEXPLAINED, "NOT EXPLAINED")]:
        n = len(report.failures(cat))
        if n or cat != UNEXPLAINED:
            out.append(f"  failed ({cat}) {label}: {n}")
    fails = report.failures()
    if fails:
        width = max(len(r.name) for r in fails)
        out += ["", f"{'test':<{width}}  cat  reason / error"]
        out.append("-" * (width + 60))
        for r in fails:
            out.append(f"{r.name:<{width}}  {r.category if r.category != UNEXPLAINED else '?':<3}  "
                       f"{r.reason or 'UNEXPLAINED'}")
            out.append(f"{'':<{width}}       error: {r.message}")
    if report.stale:
        out += ["", "listed in EXPLAINED but did not fail (remove them?): "
                + ", ".join(report.stale)]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", choices=list(CHOICES), default="both")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--verbose", action="store_true", help="show pytest's output")
    parser.add_argument("--keep", metavar="DIR",
                        help="write the rewritten tests and reports to DIR and keep them")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a failure is not explained")
    args = parser.parse_args(argv)
    try:
        import sklearn
    except ImportError:
        print("scikit-learn is not installed: nothing to run")
        return 0
    import streammix

    print(f"scikit-learn {sklearn.__version__}, streammix {streammix.__version__}, "
          f"python {sys.version.split()[0]}")
    reports = []
    for module in CHOICES[args.module]:
        report = run_module(module, verbose=args.verbose,
                            keep=os.path.join(args.keep, module) if args.keep else None)
        reports.append(report)
        print()
        print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(
            [dict(asdict(r), total=r.total, passed=r.passed, failed=r.failed,
                  skipped=r.skipped) for r in reports], indent=1))
    if args.strict and any(r.unexplained for r in reports):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
