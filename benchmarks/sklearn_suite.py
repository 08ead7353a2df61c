#!/usr/bin/env python
"""Run scikit-learn's OWN mixture tests against streammix, with only the import changed.

Why: streammix's estimators aim to be drop-in replacements for scikit-learn's, and the
most direct evidence of that (and of where they are not) is scikit-learn's own test
suite, as installed. This tool copies

    sklearn/mixture/tests/test_bayesian_mixture.py  -> streammix.BayesianGaussianMixture
    sklearn/mixture/tests/test_gaussian_mixture.py  -> streammix.GaussianMixture
    sklearn/mixture/tests/test_mixture.py           -> both          (--module common)

to a temporary directory and rewrites the ``from sklearn.mixture import ...`` statement
so that the estimator classes come from ``streammix``. Nothing else changes: imports of
private helpers from ``sklearn.mixture._gaussian_mixture`` / ``_bayesian_mixture`` and
of ``sklearn.exceptions`` stay scikit-learn's, so those tests keep testing scikit-learn's
internals and scikit-learn's exception classes. It runs pytest on the copy in a
subprocess and classifies every test from pytest's JUnit XML report:

- skipped: as in scikit-learn's default run (array-API tests without torch/cupy/...,
  float32 variants unless ``--float32``);
- scikit-learn-only: the test never touches the estimator classes (it tests a private
  helper such as ``_estimate_gaussian_covariances_full``), found by reading the test's
  source (and the module-level helpers it calls); it passes or fails as in scikit-learn
  and says nothing about streammix;
- the rest exercise streammix. A failure gets a category from ``EXPLAINED``:
    (a) the test uses scikit-learn private functions, methods or internals;
    (b) a deliberate, documented difference of streammix (or a different message);
    (c) a bug or gap of streammix to fix;
  and is "unexplained" when it is not listed there (a regression, or a new
  scikit-learn test to look at). "Public-API tests" are those that exercise streammix
  minus the (a) failures; the headline is how many of them pass.

Isolation: pytest runs in the temporary directory with ``-c <tmp>/pytest.ini --rootdir
<tmp> -p no:cacheprovider`` and an ini file of our own (no filterwarnings, no addopts),
so neither this project's pytest configuration (which turns RuntimeWarning into errors)
nor its conftest applies; ``PYTEST_ADDOPTS`` and ``PYTEST_PLUGINS`` are cleared. A small
conftest.py next to the copies defines the two fixtures the tests take from
scikit-learn's own conftest, as scikit-learn defines them: ``global_random_seed`` (42;
``--seed`` as SKLEARN_TESTS_GLOBAL_RANDOM_SEED: "all", "0-9", "7") and ``global_dtype``
(float64; float32 too with ``--float32``). Nothing is downloaded.

Usage (from the repository root):

    .venv/bin/python benchmarks/sklearn_suite.py                   # bayesian and gaussian
    .venv/bin/python benchmarks/sklearn_suite.py --module bayesian
    .venv/bin/python benchmarks/sklearn_suite.py --module all --float32
    .venv/bin/python benchmarks/sklearn_suite.py --module gaussian --verbose --keep /tmp/s

About 10-20 s per module (the modules run in parallel). The exit code is 0 whatever the
tests do (this is a report); ``--strict`` makes it 1 when a failure is unexplained.
``run_modules([...])`` is the same run as a function
(tests/estimators/test_sklearn_suite.py uses it).
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
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
    "b": "documented difference / message",
    "c": "streammix bug or gap",
}
UNEXPLAINED = "unexplained"

# --------------------------------------------------------------------------- verdicts
# module -> key -> (category, one-line reason), decided by reading each failing test's
# source (scikit-learn 1.9.1). A key is a test function name (every parametrisation), a
# full pytest id "name[params]", or an fnmatch pattern such as "name[float32-*]"; the
# most specific match wins (exact id, then patterns, then the function name).
_FLOAT32_DTYPE = ("b", "documented: float32 input gives float64 fitted attributes and "
                       "score_samples (statistics and parameters are float64 whatever "
                       "the input: more accurate); scikit-learn keeps float32 and the test "
                       "asserts it")
EXPLAINED: dict[str, dict[str, tuple[str, str]]] = {
    "bayesian": {
        "test_compare_covar_type": (
            "a", "calls scikit-learn's private bgmm._check_parameters(X) and "
                 "bgmm._initialize_parameters(X, rng) to inspect the state after init"),
    },
    "gaussian": {
        "test_gaussian_mixture_precisions_init": (
            "a", "its helper calls scikit-learn's private GaussianMixture._set_parameters, "
                 "then the test calls the private gmm._initialize(X, resp)"),
        "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters": (
            "a", "monkeypatches sklearn.mixture._gaussian_mixture._estimate_gaussian_"
                 "parameters and counts its calls: streammix never calls it (0 != n_iter_)"),
        "test_regularisation": (
            "b", "documented: a collapsed component is kept with diagonal loading and a "
                 "DegenerateComponentWarning instead of raising 'ill-defined empirical "
                 "covariance'"),
        "test_gaussian_mixture_precisions_init_diag": (
            "b", "k-means init differs: ours finds the same 2 clusters numbered the other "
                 "way, so precisions_init built from scikit-learn's KMeans labels is "
                 "paired with the other mean: 3 EM iterations instead of 2 (same optimum)"),
        "test_gaussian_mixture_precisions_init_diag[float32]": (
            "b", _FLOAT32_DTYPE[1] + "; then fails as the float64 case (k-means order)"),
        "test_check_weights": (
            "b", "message: scikit-learn's weights_init range error labels the minimum "
                 "'max value' and the maximum 'min value' (its bug, pinned by the test); "
                 "ours labels them right. Shape and sum messages match"),
        # float32 variants: only run with --float32 (SKLEARN_RUN_FLOAT32_TESTS=1)
        "test_fitted_precision_covariance_concistency[float32-*]": _FLOAT32_DTYPE,
        "test_gaussian_mixture_fit[float32]": _FLOAT32_DTYPE,
        "test_means_for_all_inits[float32-*]": _FLOAT32_DTYPE,
        "test_score[float32]": _FLOAT32_DTYPE,
        "test_gaussian_mixture_fit_predict[float32-*]": _FLOAT32_DTYPE,
    },
    "common": {
    },
}


# --------------------------------------------------------------------------- results
@dataclass
class TestResult:
    __test__ = False          # not a pytest test class

    name: str                  # pytest id within the module: "test_x[param]"
    outcome: str               # passed | failed | skipped
    message: str = ""          # first line of the error (failures) or skip reason
    touches: bool = True       # the test uses the streammix classes
    category: str = ""         # a | b | c | unexplained (failures only)
    reason: str = ""           # from EXPLAINED


@dataclass
class ModuleReport:
    module: str
    test_file: str
    seconds: float
    results: list[TestResult] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # EXPLAINED keys whose tests passed

    def _n(self, outcome: str, touches: bool | None = None) -> int:
        return sum(r.outcome == outcome and (touches is None or r.touches == touches)
                   for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def passed(self) -> int:
        return self._n("passed")

    @property
    def failed(self) -> int:
        return self._n("failed")

    @property
    def skipped(self) -> int:
        return self._n("skipped")

    @property
    def sklearn_only(self) -> list[TestResult]:
        """Run tests that never touch streammix (scikit-learn's private helpers)."""
        return [r for r in self.results if r.outcome != "skipped" and not r.touches]

    @property
    def streammix_run(self) -> int:
        return sum(r.outcome != "skipped" and r.touches for r in self.results)

    @property
    def streammix_passed(self) -> int:
        return self._n("passed", touches=True)

    @property
    def public_api(self) -> int:
        """Tests that exercise streammix, except those failing for scikit-learn internals."""
        return self.streammix_run - len(self.failures("a"))

    def failures(self, category: str | None = None) -> list[TestResult]:
        return [r for r in self.results if r.outcome == "failed"
                and (category is None or r.category == category)]

    @property
    def unexplained(self) -> list[TestResult]:
        return self.failures(UNEXPLAINED)

    def summary(self) -> dict:
        return {"total": self.total, "skipped": self.skipped, "passed": self.passed,
                "failed": self.failed, "sklearn_only": len(self.sklearn_only),
                "streammix_run": self.streammix_run,
                "streammix_passed": self.streammix_passed,
                "public_api": self.public_api,
                **{f"failed_{c}": len(self.failures(c))
                   for c in [*CATEGORIES, UNEXPLAINED]}}


# --------------------------------------------------------------------------- the copy
def sklearn_tests_dir() -> Path:
    import sklearn.mixture

    return Path(sklearn.mixture.__file__).parent / "tests"


def _alias(a: ast.alias) -> str:
    return a.name + (f" as {a.asname}" if a.asname else "")


def rewrite_imports(source: str, names: tuple[str, ...]) -> str:
    """``source`` with ``names`` imported from streammix instead of sklearn.mixture.

    Only ``from sklearn.mixture import ...`` statements at module level change (the
    public package; ``sklearn.mixture._gaussian_mixture`` and friends are other modules
    and stay). Lines asserting where the classes come from are appended, so that a
    rewrite that silently failed cannot produce a report about scikit-learn's classes."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits, found = [], set()
    for node in tree.body:
        if not (isinstance(node, ast.ImportFrom) and node.module == "sklearn.mixture"
                and node.level == 0):
            continue
        ours = [a for a in node.names if a.name in names]
        if not ours:
            continue
        theirs = [a for a in node.names if a.name not in names]
        text = "from streammix import " + ", ".join(map(_alias, ours)) + "\n"
        if theirs:
            text += "from sklearn.mixture import " + ", ".join(map(_alias, theirs)) + "\n"
        edits.append((node.lineno - 1, node.end_lineno - 1, text))
        found.update(a.name for a in ours)
    missing = [n for n in names if n not in found]
    if missing:
        raise RuntimeError(f"no 'from sklearn.mixture import {', '.join(missing)}' found: "
                           "scikit-learn's test file changed; update rewrite_imports")
    for first, last, text in sorted(edits, reverse=True):
        lines[first:last + 1] = [text]
    check = "".join(f"assert {n}.__module__.startswith('streammix.'), {n}.__module__\n"
                    for n in names)
    return "".join(lines) + "\n\n# added by benchmarks/sklearn_suite.py\n" + check


def tests_touching(source: str, names: tuple[str, ...]) -> dict[str, bool]:
    """For each module-level test function: does it use one of ``names``, directly, in
    its decorators (parametrize) or through a module-level helper, class or constant
    that does? (Static: a test that never mentions them cannot exercise streammix.)"""
    tree = ast.parse(source)
    refs: dict[str, set[str]] = {}
    tests = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined = [node.name]
            if node.name.startswith("test"):
                tests.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        else:
            continue
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        used |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
        for d in defined:
            refs.setdefault(d, set()).update(used - {d})
    memo: dict[str, bool] = {}

    def uses(name: str, seen: frozenset = frozenset()) -> bool:
        if name not in memo:
            memo[name] = bool(refs.get(name, set()) & set(names)) or any(
                uses(g, seen | {name}) for g in refs.get(name, ()) if g in refs
                and g not in seen)
        return memo[name]

    return {t: uses(t) for t in tests}


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
# not the project's configuration (see benchmarks/sklearn_suite.py)
markers =
    thread_unsafe: scikit-learn marker
    parallel_threads(n): scikit-learn marker
filterwarnings =
    ignore::pytest.PytestRemovedIn10Warning
"""


# --------------------------------------------------------------------------- running
def _first_line(text: str) -> str:
    """The informative first line of a JUnit failure message (for a pytest.raises whose
    match= failed: the regex and the message that did not match)."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    if not lines:
        return ""
    first = lines[0]
    if "Regex pattern did not match" in first:
        first = " ".join([first] + [ln for ln in lines[1:4] if ln.startswith(
            ("Regex:", "Input:", "Expected regex:", "Actual message:"))])
        return first[:600]
    return first[:300]


def lookup(module: str, name: str) -> tuple[str, str] | None:
    """The EXPLAINED entry for test id ``name``: exact id, then the most specific fnmatch
    pattern, then the function name."""
    table = EXPLAINED.get(module, {})
    if name in table:
        return table[name]
    patterns = sorted((k for k in table if any(c in k for c in "*?[") and "[" in k
                       and fnmatch.fnmatchcase(name, k.replace("[", "[[]", 1))),
                      key=len, reverse=True)
    if patterns:
        return table[patterns[0]]
    return table.get(name.split("[", 1)[0])


def _key_matches(key: str, name: str) -> bool:
    if key == name:
        return True
    if "[" in key:
        return fnmatch.fnmatchcase(name, key.replace("[", "[[]", 1))
    return name.split("[", 1)[0] == key


def parse_junit(path: Path, module: str, touching: dict[str, bool]) -> list[TestResult]:
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
        # a collection error is reported under the file's name: it touches streammix
        touches = touching.get(name.split("[", 1)[0], True)
        results[name] = TestResult(name, outcome, message, touches)
    for r in results.values():
        if r.outcome == "failed":
            r.category, r.reason = lookup(module, r.name) or (UNEXPLAINED, "")
    return sorted(results.values(), key=lambda r: r.name)


def _command(module: str, work: Path) -> tuple[list[str], Path]:
    filename, names = MODULES[module]
    source = (sklearn_tests_dir() / filename).read_text()
    target = work / f"streammix_{filename}"  # not scikit-learn's name: no module clash
    target.write_text(rewrite_imports(source, names))
    (work / "conftest.py").write_text(CONFTEST)
    (work / "pytest.ini").write_text(INI)
    xml = work / f"{module}.xml"
    cmd = [sys.executable, "-m", "pytest", str(target), "-c", str(work / "pytest.ini"),
           "--rootdir", str(work), "-p", "no:cacheprovider", "-q", "-rA",
           f"--junitxml={xml}", "-o", "junit_family=xunit1"]
    return cmd, xml


def run_modules(modules: list[str], *, float32: bool = False, seed: str | None = None,
                timeout: float = 1800, verbose: bool = False,
                keep: str | None = None) -> list[ModuleReport]:
    """Copy scikit-learn's test file of each module, rewrite its import, run them with
    pytest (one subprocess per module, in parallel) and classify the outcomes."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "SKLEARN_RUN_FLOAT32_TESTS",
                        "SKLEARN_TESTS_GLOBAL_RANDOM_SEED")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if float32:
        env["SKLEARN_RUN_FLOAT32_TESTS"] = "1"
    if seed is not None:
        env["SKLEARN_TESTS_GLOBAL_RANDOM_SEED"] = str(seed)
    reports = []
    with tempfile.TemporaryDirectory(prefix="streammix-sklearn-suite-") as tmp:
        runs = []
        for module in modules:
            work = Path(keep or tmp) / module
            work.mkdir(parents=True, exist_ok=True)
            cmd, xml = _command(module, work)
            out = open(work / "pytest-output.txt", "w+")
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, text=True)
            runs.append((module, proc, out, xml))
        started = time.monotonic()
        for module, proc, out, xml in runs:
            try:
                proc.wait(timeout=max(1.0, started + timeout - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            out.seek(0)
            output = out.read()
            out.close()
            if verbose:
                sys.stderr.write(f"==== pytest output ({module}) ====\n{output}\n")
            if not xml.exists():
                raise RuntimeError(f"pytest wrote no report for {module} (exit "
                                   f"{proc.returncode}):\n{output[-5000:]}")
            filename, names = MODULES[module]
            touching = tests_touching((sklearn_tests_dir() / filename).read_text(), names)
            suite = ET.parse(xml).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            seconds = float(suite.get("time", "nan"))  # pytest's own session time
            report = ModuleReport(module, filename, seconds,
                                  parse_junit(xml, module, touching))
            ran = [r for r in report.results if r.outcome != "skipped"]
            report.stale = sorted(
                key for key in EXPLAINED.get(module, {})
                if any(_key_matches(key, r.name) for r in ran)
                and not any(_key_matches(key, r.name) for r in report.failures()))
            reports.append(report)
    return reports


def run_module(module: str, **kwargs) -> ModuleReport:
    return run_modules([module], **kwargs)[0]


# --------------------------------------------------------------------------- printing
def format_report(report: ModuleReport) -> str:
    filename, names = MODULES[report.module]
    s = report.summary()
    out = [f"## {report.module}: sklearn/mixture/tests/{filename} against "
           f"streammix.{' and streammix.'.join(names)}   ({report.seconds:.1f} s)",
           "",
           f"collected {s['total']}: skipped {s['skipped']}, passed {s['passed']}, "
           f"failed {s['failed']}",
           f"  scikit-learn-only tests (never touch streammix): {s['sklearn_only']}, "
           f"passed {sum(r.outcome == 'passed' for r in report.sklearn_only)}",
           f"  tests exercising streammix: {s['streammix_run']}, passed "
           f"{s['streammix_passed']}",
           f"  PUBLIC-API TESTS PASSED: {s['streammix_passed']} of {s['public_api']} "
           f"(those exercising streammix, minus the (a) failures)",
           "  failed by category:"]
    for cat, label in CATEGORIES.items():
        out.append(f"    ({cat}) {label}: {s['failed_' + cat]}")
    out.append(f"    UNEXPLAINED: {s['failed_' + UNEXPLAINED]}")
    fails = report.failures()
    if fails:
        width = max(len(r.name) for r in fails)
        out += ["", f"{'failing test':<{width}}  cat  reason", "-" * (width + 80)]
        for r in sorted(fails, key=lambda r: (r.category, r.name)):
            cat = "?" if r.category == UNEXPLAINED else r.category
            out.append(f"{r.name:<{width}}  {cat:<3}  {r.reason or 'UNEXPLAINED'}")
            out.append(f"{'':<{width}}       error: {r.message}")
    if report.stale:
        out += ["", "listed in EXPLAINED but passed now (remove them): "
                + ", ".join(report.stale)]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", choices=list(CHOICES), default="both",
                        help="both = bayesian and gaussian (default); all adds common")
    parser.add_argument("--float32", action="store_true",
                        help="also run the float32 variants (SKLEARN_RUN_FLOAT32_TESTS=1)")
    parser.add_argument("--seed", help="SKLEARN_TESTS_GLOBAL_RANDOM_SEED: 'all', '0-9', "
                        "'7' (default 42)")
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
          f"python {sys.version.split()[0]}"
          + (", float32 variants on" if args.float32 else "")
          + (f", seeds {args.seed}" if args.seed else ""))
    reports = run_modules(CHOICES[args.module], float32=args.float32, seed=args.seed,
                          verbose=args.verbose, keep=args.keep)
    for report in reports:
        print()
        print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(
            [dict(asdict(r), **r.summary()) for r in reports], indent=1))
    if args.strict and any(r.unexplained for r in reports):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
