"""Whole-sweep wall time against the sum of its fits.

Target: wall time / sum of the runs' ``train/fit_seconds`` <= 1.10.

Runs one experiment exactly as a user does, ``python -m lossbench +experiment=NAME``, in a temporary working
folder with a fresh temporary SQLite store, timing the process from just before it starts to its exit. The
baseline, the sum of the fits, comes from the same sweep: every child run is read back with
``MlflowClient.search_runs`` and its ``train/fit_seconds`` summed. The MLflow timestamps then split the time
that is not fitting into: start-up (process start -> the sweep's parent run -> the first job's run), time
inside runs but outside the fit (data preparation is before the run; evaluation, logging and artifacts are
inside it), time between runs (Hydra's next job, N/A jobs, the resume search, data preparation), and the
tail (last run -> parent closed -> process exit, which includes the end-of-sweep report).

    python benchmarks/sweep_wall.py                    # +experiment=imbalance: 216 jobs (~6+ min on 2 cores)
    python benchmarks/sweep_wall.py --quick            # +experiment=smoke: 24 jobs (under a minute)
    python benchmarks/sweep_wall.py --experiment losses -- seed=0   # any experiment, extra overrides after --
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import check_sweep, machine_line, run_sweep, sqlite_uri, sweep_runs, table, verdict

TARGET = 1.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="+experiment=smoke instead of imbalance")
    parser.add_argument("--experiment", help="the experiment to sweep (default imbalance; quick: smoke)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for the sweep (after --)")
    args = parser.parse_args()
    experiment = args.experiment or ("smoke" if args.quick else "imbalance")

    print(f"sweep_wall: wall time of +experiment={experiment} vs the sum of its fits, fresh SQLite store")
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="lossbench-bench-") as tmp:
        folder = Path(tmp)
        uri = sqlite_uri(folder)
        overrides = [
            f"+experiment={experiment}",
            f"tracking.uri={uri}",
            f"hydra.sweep.dir={folder / 'sweep'}",
            *args.overrides,
        ]
        print("running: python -m lossbench " + " ".join(overrides))
        sweep = run_sweep(overrides, folder)
        name = _experiment_name(uri, sweep)
        parents, children = sweep_runs(uri, name)
        runs = check_sweep(sweep, uri, name, finished=max(1, len(children)))

    runs = sorted(runs, key=lambda r: r.info.start_time)
    n = len(runs)
    fit_sum, wall = sum(r.data.metrics["train/fit_seconds"] for r in runs), sweep.wall
    starts = [r.info.start_time / 1e3 for r in runs]
    ends = [r.info.end_time / 1e3 for r in runs]
    inside = sum(e - s for s, e in zip(starts, ends, strict=True))
    between = ends[-1] - starts[0] - inside
    parent = next((p for p in parents if p.data.tags.get("lossbench.role") == "sweep"), None)
    jobs = int(parent.data.params.get("sweep.jobs", 0)) if parent else 0
    skipped = int(parent.data.metrics.get("sweep/skipped", 0)) if parent else 0

    rows: list[list[str]] = []

    def add(label: str, seconds: float, runs_: int = 0) -> None:
        rows.append([label, f"{seconds:.2f}", f"{1e3 * seconds / runs_:.0f}" if runs_ else ""])

    add("wall time, process start to exit", wall)
    add(f"sum of train/fit_seconds over {n} FINISHED runs", fit_sum, n)
    add("not fitting = wall - sum of fits", wall - fit_sum, n)
    if parent is not None:
        add(
            "  start-up: process start -> parent run created", parent.info.start_time / 1e3 - sweep.started_at
        )
    add("  start-up: process start -> first job's run created", starts[0] - sweep.started_at)
    add("  inside runs, outside the fit (evaluate, log, artifacts)", inside - fit_sum, n)
    add(f"  between runs (next Hydra job, {skipped} N/A jobs, resume search, data)", between, max(n - 1, 1))
    if parent is not None and parent.info.end_time:
        add("  tail: last run -> parent run closed", parent.info.end_time / 1e3 - ends[-1])
        add(
            "  tail: parent closed -> exit (report, interpreter exit)",
            sweep.ended_at - parent.info.end_time / 1e3,
        )
    else:
        add("  tail: last run -> process exit", sweep.ended_at - ends[-1])
    rows.append(["wall / sum of fits", f"{wall / fit_sum:.3f}", ""])
    rows.append(["target", f"<= {TARGET:g}", ""])
    print()
    title = f"+experiment={experiment}: {jobs or '?'} jobs, {n} runs, {skipped} N/A"
    title += f" (exit status {sweep.returncode})"
    print(table(title, ["", "seconds", "ms/run"], rows))
    print()
    print(verdict("sweep_wall (wall / sum of fits)", wall / fit_sum, TARGET, "", higher_is_better=False))


def _experiment_name(uri: str, sweep) -> str:
    """The MLflow experiment the sweep wrote to: the store's only experiment besides MLflow's Default."""
    from mlflow.tracking import MlflowClient

    names = [e.name for e in MlflowClient(tracking_uri=uri).search_experiments() if e.name != "Default"]
    if len(names) != 1:
        tail = "\n".join(sweep.stderr.splitlines()[-25:])
        raise SystemExit(f"benchmark: expected one MLflow experiment in {uri}, found {names}\n{tail}")
    return names[0]


if __name__ == "__main__":
    main()
