"""Per-run framework overhead of a lossbench sweep (Hydra job + MLflow run + logging) on SQLite.

Target: <= 40 ms per run.

What it measures, in one invocation (logistic regression on digits, one job per seed, nothing else swept):

- lossbench: ``python -m lossbench`` multiruns of N jobs as a user runs them (a fresh process, a fresh
  temporary SQLite store and working folder each), R times. Per job = the median time from one run's
  ``create_run`` to the next one's (MLflow's timestamps), over jobs 2..N of every repeat: a job's whole
  cycle (Hydra's job launch, the run, its logging) in steady state, without process start-up, imports, the
  store's creation or the first job's first-time imports; or, when it is longer, the median time from one
  run's ``set_terminated`` to the next one's (the MLflow helper process, lossbench.writer, stores the runs'
  ends while the next jobs train: the slower of the two streams sets the sweep's rate).
- cross-check: sweeps of 1 job too; (T_N - T_1) / (N - 1), the median over repeats. Process start-up varies by
  ~1 s between runs here, so this difference is noisy at N = 20 (±50 ms a job); the headline does not use it.
- baseline: a bare loop in this process calling ``lossbench.pipeline.run(cfg)`` on the same job configs:
  the same data preparation, fit and metrics, no Hydra, no MLflow (after one warm-up run). The median run
  over R repeats.
- overhead = lossbench per job - baseline per run, against the target.
- breakdown, in this process: the real sweeper's work (``lossbench.sweep.run.run_sweep``: the plan, the
  store, the parent run, the counting) on a fresh store, its N jobs each run by the real
  ``lossbench.sweep.jobs.run_job`` in this process (as the lossbench launcher at ``n_jobs: 1`` runs them,
  less Hydra's per-job set-up), after a 1-job warm-up sweep; timers around the real calls inside: the
  claims (``Tracker.runs_with_fingerprint``), ``Tracker.start`` (create_run), and at the job's end
  ``Tracker._log`` (log_batch), the artifacts (config.yaml, the per-class CSV, the confusion-matrix PNG,
  ``log_artifacts``), set_terminated and the job's status file. Also
  Hydra's ``compose()`` of one job config; the job timeline read back from MLflow (time inside a run vs
  between runs); and, at default sizes, the same sweeps with every job resumed (re-run on their stores)
  and with every job N/A (``loss=focal``, which logistic regression cannot train: Hydra's own per-job
  cost).

The end-of-sweep report is switched off (``report.enabled=false``): it runs once per sweep, not per run;
``benchmarks/sweep_wall.py`` shows its cost.

    python benchmarks/run_overhead.py            # N = 20 jobs, best of 3 (about 5 minutes on 2 busy cores)
    python benchmarks/run_overhead.py --quick    # N = 4 jobs, once (under a minute)
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
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
    end_periods: list[float] = []
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
                end_periods += timeline["end_periods"]
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
    return {"walls": walls, "timeline": timeline, "periods": periods, "end_periods": end_periods}


def job_timeline(sweep, runs) -> dict:
    """From the MLflow run timestamps (s): each job's period (one create_run to the next, from the second
    job on: the first carries first-time imports), the median time inside a run (create_run ->
    set_terminated) and between runs, and the time from process start to the first run and after the last."""
    runs = sorted(runs, key=lambda r: r.info.start_time)
    starts = [r.info.start_time / 1e3 for r in runs]
    ends = [r.info.end_time / 1e3 for r in runs]
    return {
        "periods": [b - a for a, b in itertools.pairwise(starts[1:])],
        "end_periods": [b - a for a, b in itertools.pairwise(ends[1:])],
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


class _JobsInProcess:
    """A launcher for the real sweeper (:func:`lossbench.sweep.run.run_sweep`) that runs each job's real
    ``lossbench.sweep.jobs.run_job`` in this process, on the config the sweeper composed and handed over:
    what the lossbench launcher with ``n_jobs: 1`` does, less Hydra's per-job set-up (job folder files,
    logging, callbacks: left to the end-to-end difference)."""

    def __init__(self, master) -> None:
        self.master = master  # run_sweep points its hydra.sweep.dir at the folder it claims
        self.configs: dict[tuple, object] = {}
        self.launched_at: float | None = None
        self.background_writes = False  # each call timed inline, in this process

    def runs_in_process(self) -> bool:
        return True  # as the lossbench launcher at n_jobs 1: the jobs' MLflow writes wait for the sweep's end

    def use_configs(self, configs: dict[tuple, object]) -> None:
        self.configs = dict(configs)

    def launch(self, job_overrides, initial_job_idx: int) -> list:
        from omegaconf import OmegaConf

        import lossbench.sweep.jobs as jobs
        from lossbench.cli import _resolve_threads
        from lossbench.config import to_container

        self.launched_at = time.perf_counter()
        sweep_dir = Path(str(self.master.hydra.sweep.dir))
        info = jobs.read_sweep(sweep_dir)
        for i, overrides in enumerate(job_overrides):
            cfg, num = self.configs.pop(tuple(overrides)), initial_job_idx + i
            task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # what the task gets
            c = to_container(task_cfg)
            _resolve_threads(c, False)  # train.threads=auto as at n_jobs 1: one job at a time
            hydra_cfg = SimpleNamespace(
                runtime=SimpleNamespace(output_dir=str(sweep_dir / str(num))),
                job=SimpleNamespace(num=num),
                sweep=SimpleNamespace(dir=str(sweep_dir)),
            )
            jobs.run_job(c, hydra_cfg, info)
        return []


def _sweep_in_process(master, loader, arguments: list[str]) -> tuple[Path, float]:
    """The real run_sweep on ``master`` (a composed multirun config) with :class:`_JobsInProcess`; returns
    its sweep folder and the time from its start to the launch (plan, store, parent run)."""
    import lossbench.sweep.jobs as jobs
    from lossbench.sweep.run import exit_code, run_sweep

    launcher = _JobsInProcess(master)
    sweeper = SimpleNamespace(
        config=master,
        launcher=launcher,
        hydra_context=SimpleNamespace(config_loader=loader),
        params=master.hydra.sweeper.params,
    )
    start = time.perf_counter()
    run_sweep(sweeper, arguments)
    sweep_dir = Path(str(master.hydra.sweep.dir))
    statuses = jobs.collect_statuses(sweep_dir)  # written once each job's MLflow writes are stored
    unfinished = [st for st in statuses if st["status"] != "finished"]
    if exit_code() or unfinished or not statuses:
        raise SystemExit(f"benchmark: the in-process sweep in {sweep_dir} did not finish: {unfinished}")
    return sweep_dir, (launcher.launched_at or time.perf_counter()) - start


def breakdown(root: Path, n: int, extra: list[str]) -> tuple[Profiler, dict[str, float]]:
    """The real sweeper (run_sweep) and per-job path (sweep.jobs.run_job, lossbench.tracking) for N jobs in
    this process on a fresh store, with timers around real calls. The sweep runs as it runs under the
    lossbench launcher at n_jobs 1, every MLflow call in the job's own thread. A warm-up sweep of one job
    (seed N) on the fresh store goes first: first imports,
    first data load, the store's creation. Returns the profiler and the sweep start times (run_sweep up to
    the launch) of the warm-up sweep (fresh store) and of the measured one."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import lossbench.compat
    import lossbench.config
    import lossbench.metrics
    import lossbench.pipeline
    import lossbench.plots
    import lossbench.sweep.jobs as jobs
    import lossbench.sweep.plan as plan
    import lossbench.tracking as tracking
    from lossbench.tracking import Tracker

    folder = root / "in-process"
    folder.mkdir(parents=True)
    uri = sqlite_uri(folder)
    select = write_experiment(root / "conf", "overhead_n", {"seed": _seeds(n)}, EXPERIMENT)
    common = [*select, f"tracking.uri={uri}", *extra]
    starts: dict[str, float] = {}
    with (
        Profiler() as prof,
        initialize_config_dir(config_dir=str(lossbench.config.config_dir()), version_base="1.3"),
    ):
        loader = GlobalHydra.instance().config_loader()

        def master(sweep_dir: Path, more: list[str]):
            return compose(
                config_name="config",
                overrides=[*common, *more, f"hydra.sweep.dir={sweep_dir}"],
                return_hydra_config=True,
            )

        # the sweep (once per sweep: amortised over its N runs in the rows)
        prof.wrap(plan, "plan", "plan.plan (compose and check every job)")
        prof.wrap(Tracker, "__init__", "Tracker()")
        prof.wrap(Tracker, "settle_interrupted", "Tracker.settle_interrupted")
        prof.wrap(plan, "settle_finished", "plan.settle_finished (resume search)")
        prof.wrap(Tracker, "start_parent", "Tracker.start_parent")
        prof.wrap(_JobsInProcess, "launch", "launch (own: each task config, as the CLI makes it)")
        prof.wrap(Tracker, "finish_parent", "Tracker.finish_parent")
        # one job, in the job's thread
        prof.wrap(jobs, "run_job", "sweep.run_job")
        prof.wrap(jobs, "_start_job", "jobs._start_job")
        prof.wrap(lossbench.config, "fingerprint", "config.fingerprint")
        prof.wrap(tracking, "fingerprint", "config.fingerprint")  # Tracker.start's own binding of it
        prof.wrap(jobs, "_claim", "jobs._claim (FINISHED or live runs of the config)")
        prof.wrap(jobs, "_keep_claim", "jobs._keep_claim (look again)")
        prof.wrap(Tracker, "runs_with_fingerprint", "Tracker.runs_with_fingerprint (SQL)")
        prof.wrap(lossbench.pipeline, "prepare", "pipeline.prepare [bare]")
        prof.wrap(lossbench.compat, "check_config", "compat.check_config")
        prof.wrap(Tracker, "start", "Tracker.start (own: create_run)")
        prof.wrap(lossbench.pipeline, "execute", "pipeline.execute [bare]")
        prof.wrap(jobs, "_end_job", "jobs._end_job")
        prof.wrap(Tracker, "finish", "Tracker.finish (own: entities)")
        # the run's end: metrics, params, tags, artifacts, set_terminated and the status file
        reporting = tracking._reporting
        prof.patch(
            tracking,
            "_reporting",
            lambda write, done: prof.timed(reporting(write, done), "finish's write (own: set_terminated)"),
        )
        prof.wrap(Tracker, "_log", "Tracker._log (log_batch)")
        prof.wrap(Tracker, "_log_files", "Tracker._log_files (own: temp folder, log_artifacts)")
        prof.wrap(tracking, "write_config", "config.yaml (artifacts.write_config)")
        prof.wrap(tracking, "write_predictions", "artifacts.write_predictions (own: per_class_test.csv)")
        prof.wrap(lossbench.metrics, "per_class_table", "metrics.per_class_table")
        prof.wrap(lossbench.metrics, "reliability_bins", "metrics.reliability_bins")
        prof.wrap(lossbench.metrics, "confusion", "metrics.confusion")
        prof.wrap(lossbench.plots, "confusion_matrix_figure", "confusion_matrix_test.png (plots)")
        prof.wrap(jobs, "write_status", "jobs.write_status")

        warm = master(folder / "warm-up", [f"seed={n}"])
        _, starts["fresh"] = _sweep_in_process(warm, loader, list(warm.hydra.overrides.task))
        prof.reset()
        measured = master(folder / "sweep", [])
        _, starts["measured"] = _sweep_in_process(measured, loader, list(measured.hydra.overrides.task))
    return prof, starts


def _total(prof: Profiler, label: str) -> float:
    """The time of the calls recorded under ``label`` in the job's thread, whatever called them."""
    return sum(
        t
        for path, t in prof.total.items()
        if not path.startswith("[") and (path == label or path.endswith("/" + label))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 4 jobs, once, no resumed/N/A sweeps")
    parser.add_argument("--jobs", type=int, help="N, the jobs of the larger sweep (default 20; quick 4)")
    parser.add_argument("--repeats", type=int, help="best of this many (default 3; quick 1)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every sweep (after --)")
    args = parser.parse_args()
    n = args.jobs or (4 if args.quick else 20)
    repeats = args.repeats or (1 if args.quick else 3)
    ladder = not args.quick
    if n < 2:
        parser.error("--jobs must be at least 2")
    extra = ["report.enabled=false"] if has_config_key("report.enabled") else []
    extra += args.overrides

    print("run_overhead: per-run framework overhead, logreg on digits, one job per seed, SQLite store")
    print(machine_line())
    print(f"N = {n} jobs, best of {repeats}; overrides added to every sweep: {extra or 'none'}")
    with tempfile.TemporaryDirectory(prefix="lossbench-bench-") as tmp:
        root = Path(tmp)
        print("end to end (python -m lossbench, fresh process and store each):")
        e2e = end_to_end(root, n, repeats, extra, ladder)
        # in this process: MLflow puts a SQLite store's artifacts under the working folder's mlruns/, so work
        # in the temporary folder (the command's folder stays as it was)
        with contextlib.chdir(root):
            print("bare loop (lossbench.pipeline.run in this process) ...")
            bare = bare_loop(root, n, repeats)
            print("in-process breakdown (real run_sweep and sweep.run_job with timers) ...")
            prof, starts = breakdown(root, n, extra)

    walls = e2e["walls"]

    def best(kind: str) -> tuple[float, float, float]:
        """(T_1, T_N, per job) of the repeat with the median per-job time: T_1 and T_N are paired by
        repeat, so a load change between repeats does not leak into the difference."""
        pairs = sorted(
            ((t1, tn, (tn - t1) / (n - 1)) for t1, tn in zip(walls[kind][1], walls[kind][n], strict=True)),
            key=lambda x: x[2],
        )
        return pairs[(len(pairs) - 1) // 2]

    # the jobs create their runs and the MLflow helper (when on) terminates them: the sweep's steady rate is
    # the slower of the two streams
    start_ms, end_ms = (1e3 * statistics.median(e2e[k]) for k in ("periods", "end_periods"))
    sweep_ms, bare_ms = max(start_ms, end_ms), 1e3 * bare["per_run"]
    overhead_ms = sweep_ms - bare_ms
    in_job = _total(prof, "sweep.run_job")
    bare_parts = _total(prof, "pipeline.prepare [bare]") + _total(prof, "pipeline.execute [bare]")
    run_job_ms = 1e3 * (in_job - bare_parts) / n
    rows = [
        [
            f"lossbench sweep, per job: the slower of the two periods below ({len(e2e['periods'])} jobs)",
            f"{sweep_ms:.1f}",
        ],
        ["  median create_run -> next create_run (the jobs)", f"{start_ms:.1f}"],
        ["  median set_terminated -> next set_terminated (the runs' ends)", f"{end_ms:.1f}"],
        ["  cross-check: (T_N - T_1)/(N - 1), median repeat", f"{1e3 * best('run')[2]:.1f}"],
        ["baseline: bare pipeline.run(cfg), median run", f"{bare_ms:.1f}"],
        ["  of which the fit itself (train/fit_seconds, median)", f"{1e3 * bare['fit']:.1f}"],
        ["framework overhead per run = sweep - baseline", f"{overhead_ms:.1f}"],
        [
            "  in sweep.run_job, all writes inline (in-process breakdown below)",
            f"{run_job_ms:.1f}",
        ],
        [
            "  difference: Hydra job launch, logging, CLI, less what the MLflow helper overlaps",
            f"{overhead_ms - run_job_ms:.1f}",
        ],
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
            [
                "inside a run: create_run -> set_terminated (median)",
                f"{1e3 * t['inside']:.1f}",
            ],
            [
                "between runs: set_terminated -> next create_run (median; < 0: overlapped)",
                f"{1e3 * t['between']:.1f}",
            ],
            ["last run terminated -> process exit", f"{1e3 * t['after_last']:.0f}"],
        ]
        print()
        print(table(f"Job timeline of the last {n}-job sweep (MLflow timestamps)", ["", "ms"], rows))

    print()
    print(
        table(
            f"In-process breakdown: the real run_sweep of {n} jobs (sweep.run_job each) on a fresh SQLite "
            "store, after a 1-job warm-up sweep (per run; own = total minus the timed calls inside)",
            ["call", "calls", "total ms", "own ms"],
            prof.rows(per=n),
        )
    )
    print(
        f"sweep start in-process (run_sweep up to the launch: plan, store, settle, parent run): "
        f"{starts['fresh']:.2f} s on a fresh store (1 job), {starts['measured']:.2f} s for the {n}-job sweep"
    )
    print()
    print(verdict("run_overhead (ms per run)", overhead_ms, TARGET_MS, " ms", higher_is_better=False))


if __name__ == "__main__":
    main()
