"""Per-run framework overhead of a lossbench sweep (Hydra job + MLflow run + logging) on SQLite.

Target: <= 40 ms per run.

What it measures, in one invocation (logistic regression on digits, one job per seed, nothing else swept):

- lossbench: ``python -m lossbench`` multiruns of N jobs as a user runs them (a fresh process, a fresh
  temporary SQLite store and working folder each), R times. Per job = the median time from one run's
  ``create_run`` to the next one's (MLflow's timestamps), over jobs 2..N of every repeat: a job's whole
  cycle (Hydra's job launch, the run, its logging) in steady state, without process start-up, imports, the
  store's creation or the first job's first-time imports.
- cross-check: sweeps of 1 job too; (T_N - T_1) / (N - 1), the median over repeats. Process start-up varies by
  ~1 s between runs here, so this difference is noisy at N = 20 (±50 ms a job); the headline does not use it.
- baseline: a bare loop in this process calling ``lossbench.pipeline.run(cfg)`` on the same job configs:
  the same data preparation, fit and metrics, no Hydra, no MLflow (after one warm-up run). The median run
  over R repeats.
- overhead = lossbench per job - baseline per run, against the target.
- breakdown, in this process: the real ``lossbench.sweep.run_job`` on a fresh store, with timers around the
  real calls inside it (``Tracker()``, the resume search, ``Tracker.start``, ``Tracker.finish`` and within it
  ``log_batch``, the per-class CSV, the confusion-matrix PNG, ``log_artifacts``, ``set_terminated``); Hydra's
  ``compose()`` of one job config; the job timeline read back from MLflow (time inside a run vs between runs);
  and, at default sizes, the same sweeps with every job resumed (re-run on their stores) and with every job
  N/A (``loss=focal``, which logistic regression cannot train: Hydra's own per-job cost).

The end-of-sweep report is switched off (``report.enabled=false``): it runs once per sweep, not per run;
``benchmarks/sweep_wall.py`` shows its cost.

    python benchmarks/run_overhead.py            # N = 20 jobs, best of 3 (about 5 minutes on 2 busy cores)
    python benchmarks/run_overhead.py --quick    # N = 4 jobs, once (under a minute)
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from _common import (
    Profiler,
    check_sweep,
    has_config_key,
    machine_line,
    run_sweep,
    sqlite_uri,
    table,
    verdict,
    write_experiment,
)

TARGET_MS = 40.0
EXPERIMENT = "bench_overhead"


def _seeds(n: int) -> str:
    return ",".join(str(k) for k in range(n))


def end_to_end(root: Path, n: int, repeats: int, extra: list[str], ladder: bool) -> dict:
    """Wall times of the subprocess sweeps: {kind: {jobs: [seconds per repeat]}}, plus the job timeline."""
    conf = root / "conf"
    select = {
        ("run", 1): write_experiment(conf, "overhead_1", {"seed": "0"}, EXPERIMENT),
        ("run", n): write_experiment(conf, "overhead_n", {"seed": _seeds(n)}, EXPERIMENT),
        ("na", 1): write_experiment(conf, "overhead_na_1", {"loss": "focal", "seed": "0"}, EXPERIMENT),
        ("na", n): write_experiment(conf, "overhead_na_n", {"loss": "focal", "seed": _seeds(n)}, EXPERIMENT),
    }
    walls: dict[str, dict[int, list[float]]] = {k: {1: [], n: []} for k in ("run", "resumed", "na")}
    timeline: dict[str, float] = {}
    periods: list[float] = []
    for rep in range(repeats):
        for jobs in (1, n):
            folder = root / f"run-{jobs}-{rep}"
            uri = sqlite_uri(folder)
            common = [f"tracking.uri={uri}", *extra]
            sweep = run_sweep([*select["run", jobs], *common, f"hydra.sweep.dir={folder / 'sweep'}"], folder)
            done = check_sweep(sweep, uri, EXPERIMENT, finished=jobs)
            walls["run"][jobs].append(sweep.wall)
            print(f"  sweep of {jobs:>3} job(s), fresh store:      {sweep.wall:7.2f} s")
            if jobs == n and n > 2:
                timeline = job_timeline(sweep, done)
                periods += timeline["periods"]
            if not ladder:
                continue
            again = run_sweep(
                [*select["run", jobs], *common, f"hydra.sweep.dir={folder / 'resumed'}"], folder
            )
            check_sweep(again, uri, EXPERIMENT, finished=jobs)
            walls["resumed"][jobs].append(again.wall)
            print(f"  sweep of {jobs:>3} job(s), all resumed:      {again.wall:7.2f} s")
            folder = root / f"na-{jobs}-{rep}"
            uri = sqlite_uri(folder)
            na = run_sweep(
                [*select["na", jobs], f"tracking.uri={uri}", *extra, f"hydra.sweep.dir={folder / 'sweep'}"],
                folder,
            )
            if na.returncode != 0:
                print(f"  note: the N/A sweep exited with status {na.returncode}: {na.last_line()}")
            walls["na"][jobs].append(na.wall)
            print(f"  sweep of {jobs:>3} job(s), all N/A:          {na.wall:7.2f} s")
    return {"walls": walls, "timeline": timeline, "periods": periods}


def job_timeline(sweep, runs) -> dict:
    """From the MLflow run timestamps (s): each job's period (one create_run to the next, from the second
    job on: the first carries first-time imports), the median time inside a run (create_run ->
    set_terminated) and between runs, and the time from process start to the first run and after the last."""
    runs = sorted(runs, key=lambda r: r.info.start_time)
    starts = [r.info.start_time / 1e3 for r in runs]
    ends = [r.info.end_time / 1e3 for r in runs]
    return {
        "periods": [b - a for a, b in itertools.pairwise(starts[1:])],
        "inside": statistics.median(e - s for s, e in zip(starts[1:], ends[1:], strict=True)),
        "between": statistics.median(s - e for e, s in zip(ends[1:-1], starts[2:], strict=True)),
        "before_first": starts[0] - sweep.started_at,
        "after_last": sweep.ended_at - ends[-1],
    }


def bare_loop(root: Path, n: int, repeats: int) -> dict[str, float]:
    """lossbench.pipeline.run(cfg) on the job configs of seeds 1..N-1 (the jobs T_N - T_1 counts)."""
    from hydra import compose, initialize_config_dir

    from lossbench.config import config_dir
    from lossbench.pipeline import run

    select = write_experiment(root / "conf", "overhead_n", {"seed": _seeds(n)}, EXPERIMENT)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        start = time.perf_counter()
        cfgs = [compose(config_name="config", overrides=[*select, f"seed={k}"]) for k in range(n + 1)]
        compose_s = (time.perf_counter() - start) / len(cfgs)
    run(cfgs[n])  # warm-up: first imports, first data load
    times, fits = [], []
    for _ in range(repeats):
        for k in range(1, n):
            start = time.perf_counter()
            fits.append(run(cfgs[k]).info["fit_seconds"])
            times.append(time.perf_counter() - start)
    return {"per_run": statistics.median(times), "fit": statistics.median(fits), "compose": compose_s}


def breakdown(root: Path, n: int, extra: list[str]) -> tuple[Profiler, float]:
    """The real sweep.run_job for N jobs in this process on a fresh store, with timers around real calls.
    Returns the profiler and the time of the sweep's start (SweepCallback.on_multirun_start, fresh store)."""
    import pandas as pd
    from hydra import compose, initialize_config_dir
    from mlflow.tracking import MlflowClient

    import lossbench.compat
    import lossbench.config
    import lossbench.metrics
    import lossbench.pipeline
    import lossbench.plots
    import lossbench.sweep as sweep_mod
    from lossbench.store import RunWriter
    from lossbench.tracking import Tracker

    folder = root / "in-process"
    folder.mkdir(parents=True)
    uri, sweep_dir = sqlite_uri(folder), folder / "sweep"
    select = write_experiment(root / "conf", "overhead_n", {"seed": _seeds(n)}, EXPERIMENT)
    common = [*select, f"tracking.uri={uri}", *extra]
    with initialize_config_dir(config_dir=str(lossbench.config.config_dir()), version_base="1.3"):
        launcher_cfg = compose(
            config_name="config",
            overrides=[*common, f"hydra.sweep.dir={sweep_dir}"],
            return_hydra_config=True,
        )
        cfgs = [compose(config_name="config", overrides=[*common, f"seed={k}"]) for k in range(n + 1)]
    start = time.perf_counter()
    sweep_mod.SweepCallback().on_multirun_start(launcher_cfg)  # creates the store, experiment and parent
    startup = time.perf_counter() - start
    info = sweep_mod.read_sweep(sweep_dir)

    def job(k: int) -> None:
        job_dir = sweep_dir / str(k)
        hydra_cfg = SimpleNamespace(
            runtime=SimpleNamespace(output_dir=str(job_dir)), job=SimpleNamespace(num=k)
        )
        sweep_mod.run_job(lossbench.config.to_container(cfgs[k]), hydra_cfg, info)
        status = json.loads((job_dir / sweep_mod.STATUS_FILE).read_text())
        if status["status"] != "finished":
            raise SystemExit(f"benchmark: in-process job {k} did not finish: {status}")

    with Profiler() as prof:
        prof.wrap(sweep_mod, "run_job", "sweep.run_job")
        prof.wrap(lossbench.config, "fingerprint", "config.fingerprint")
        prof.wrap(lossbench.compat, "check_config", "compat.check_config")
        prof.wrap(Tracker, "__init__", "Tracker()")
        prof.wrap(Tracker, "finished_run", "Tracker.finished_run (resume)")
        prof.wrap(lossbench.pipeline, "prepare", "pipeline.prepare [bare]")
        prof.wrap(lossbench.pipeline, "execute", "pipeline.execute [bare]")
        prof.wrap(Tracker, "start", "Tracker.start")
        prof.wrap(Tracker, "finish", "Tracker.finish")
        prof.wrap(Tracker, "_log_prediction_artifacts", "prediction artifacts")
        prof.wrap(lossbench.metrics, "per_class_table", "metrics.per_class_table")
        prof.wrap(pd.DataFrame, "to_csv", "per_class_test.csv (to_csv)")
        prof.wrap(lossbench.metrics, "reliability_bins", "metrics.reliability_bins")
        prof.wrap(lossbench.metrics, "confusion", "metrics.confusion")
        prof.wrap(lossbench.plots, "confusion_matrix_figure", "confusion_matrix_test.png (plots)")
        prof.wrap(sweep_mod, "write_status", "sweep.write_status")
        for method in (
            "__init__",
            "get_experiment_by_name",
            "search_runs",
            "create_run",
            "log_batch",
            "log_text",
            "log_artifacts",
            "set_tag",
            "set_terminated",
        ):
            prof.wrap(MlflowClient, method, "MlflowClient()" if method == "__init__" else f"mlflow {method}")
        # a plain SQLite store: the child runs are written into its tables in place (store.RunWriter)
        prof.wrap(RunWriter, "create_run", "RunWriter.create_run (in place: create_run + params)")
        prof.wrap(RunWriter, "log", "RunWriter.log (in place: log_batch + set_terminated)")
        job(n)  # warm-up: first imports and the first plot in this process
        prof.reset()
        for k in range(n):
            job(k)
    return prof, startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 4 jobs, once, no resumed/N/A sweeps")
    parser.add_argument("--jobs", type=int, help="N, the jobs of the larger sweep (default 20; quick 4)")
    parser.add_argument("--repeats", type=int, help="best of this many (default 3; quick 1)")
    args = parser.parse_args()
    n = args.jobs or (4 if args.quick else 20)
    repeats = args.repeats or (1 if args.quick else 3)
    ladder = not args.quick
    if n < 2:
        parser.error("--jobs must be at least 2")
    extra = ["report.enabled=false"] if has_config_key("report.enabled") else []

    print("run_overhead: per-run framework overhead, logreg on digits, one job per seed, SQLite store")
    print(machine_line())
    print(f"N = {n} jobs, best of {repeats}; overrides added to every sweep: {extra or 'none'}")
    with tempfile.TemporaryDirectory(prefix="lossbench-bench-") as tmp:
        root = Path(tmp)
        print("end to end (python -m lossbench, fresh process and store each):")
        e2e = end_to_end(root, n, repeats, extra, ladder)
        print("bare loop (lossbench.pipeline.run in this process) ...")
        bare = bare_loop(root, n, repeats)
        print("in-process breakdown (real sweep.run_job with timers) ...")
        prof, startup = breakdown(root, n, extra)

    walls = e2e["walls"]

    def best(kind: str) -> tuple[float, float, float]:
        """(T_1, T_N, per job) of the repeat with the median per-job time: T_1 and T_N are paired by
        repeat, so a load change between repeats does not leak into the difference."""
        pairs = sorted(
            ((t1, tn, (tn - t1) / (n - 1)) for t1, tn in zip(walls[kind][1], walls[kind][n], strict=True)),
            key=lambda x: x[2],
        )
        return pairs[(len(pairs) - 1) // 2]

    sweep_ms, bare_ms = 1e3 * statistics.median(e2e["periods"]), 1e3 * bare["per_run"]
    overhead_ms = sweep_ms - bare_ms
    in_job = prof.total["sweep.run_job"]
    bare_parts = (
        prof.total["sweep.run_job/pipeline.prepare [bare]"]
        + prof.total["sweep.run_job/pipeline.execute [bare]"]
    )
    run_job_ms = 1e3 * (in_job - bare_parts) / n
    rows = [
        [
            f"lossbench sweep, per job: median run-to-run period ({len(e2e['periods'])} jobs)",
            f"{sweep_ms:.1f}",
        ],
        ["  cross-check: (T_N - T_1)/(N - 1), median repeat", f"{1e3 * best('run')[2]:.1f}"],
        ["baseline: bare pipeline.run(cfg), median run", f"{bare_ms:.1f}"],
        ["  of which the fit itself (train/fit_seconds, median)", f"{1e3 * bare['fit']:.1f}"],
        ["framework overhead per run = sweep - baseline", f"{overhead_ms:.1f}"],
        ["  in sweep.run_job: MLflow, resume search, status (in-process)", f"{run_job_ms:.1f}"],
        ["  the rest: Hydra job launch, job logging, CLI (by difference)", f"{overhead_ms - run_job_ms:.1f}"],
        ["  for scale: Hydra compose() of one job config (measured alone)", f"{1e3 * bare['compose']:.1f}"],
        ["target", f"<= {TARGET_MS:g}"],
        ["overhead / target", f"{overhead_ms / TARGET_MS:.2f}"],
    ]
    print()
    print(table(f"Per-run cost (ms), N = {n}, best of {repeats}", ["", "ms/run"], rows))

    kinds = [("run", "jobs run")]
    if ladder:
        kinds += [
            ("resumed", "jobs resumed (re-run on the same store)"),
            ("na", "jobs N/A (Hydra's own cost)"),
        ]
    e2e_rows = []
    for kind, label in kinds:
        t1, tn, job = best(kind)
        e2e_rows.append([label, f"{t1:.2f}", f"{tn:.2f}", f"{1e3 * job:.1f}"])
    print()
    print(
        table(
            "End-to-end sweeps (the repeat with the median per-job time)",
            ["", "T_1 (s)", f"T_{n} (s)", "per job (ms)"],
            e2e_rows,
        )
    )

    if e2e["timeline"]:
        t = e2e["timeline"]
        rows = [
            ["process start -> first run created", f"{1e3 * t['before_first']:.0f}"],
            ["inside a run: create_run -> set_terminated (median)", f"{1e3 * t['inside']:.1f}"],
            ["between runs: set_terminated -> next create_run (median)", f"{1e3 * t['between']:.1f}"],
            ["last run terminated -> process exit", f"{1e3 * t['after_last']:.0f}"],
        ]
        print()
        print(table(f"Job timeline of the last {n}-job sweep (MLflow timestamps)", ["", "ms"], rows))

    print()
    print(
        table(
            f"In-process breakdown: real sweep.run_job x {n} on a fresh SQLite store (per run; own = total "
            "minus the timed calls inside)",
            ["call", "calls", "total ms", "own ms"],
            prof.rows(per=n),
        )
    )
    print(f"sweep start in-process (SweepCallback.on_multirun_start on a fresh store): {startup:.2f} s")
    print()
    print(verdict("run_overhead (ms per run)", overhead_ms, TARGET_MS, " ms", higher_is_better=False))


if __name__ == "__main__":
    main()
