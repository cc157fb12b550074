"""Every benchmark still runs to its verdict (``--quick``, CPU) and leaves the folder it ran in as it was.

Timings are not asserted (benchmarks measure, tests check): what is checked is that a script's own checks of
what it measured pass (it exits non-zero with ``benchmark: ...`` when, say, a report it timed is wrong) and
that it prints its ``RESULT`` line. Without this a benchmark's checks rot unseen: report_build's stopped every
run once the report gained its post-hoc baseline rows, and nobody saw it until the table was re-measured."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
VERDICT = (
    r"RESULT {name}\b[^\n]*: [0-9.]+(?:e[+-]?\d+)?\s?\S* vs target [^\n]* -> measured/target = [0-9.]+ "
    r"\((?:PASS|FAIL)\)"
)
QUICK = (  # every script in benchmarks/ (the test below holds the list whole)
    "joblib_speedup",
    "peer",
    "report_build",
    "run_overhead",
    "sweep_wall",
    "torch_epoch",
    "torch_threads",
    "vectorised_seeds",
)


def test_every_benchmark_script_is_covered():
    assert sorted(p.stem for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_")) == list(QUICK)


@pytest.mark.slow
@pytest.mark.parametrize("name", QUICK)
def test_a_benchmark_runs_to_its_verdict(name, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick"],
        cwd=work,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    verdicts = re.findall(VERDICT.format(name=re.escape(name)), proc.stdout)
    assert len(verdicts) == 1, proc.stdout[-3000:]  # --quick: one size, one comparison
    assert sorted(p.name for p in work.iterdir()) == []  # nothing left in the folder it was run from
