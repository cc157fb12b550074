"""Parallel speed-up of a sweep on worker processes on one machine.

Target: wall time with ``hydra.launcher.n_jobs=2`` (lossbench's launcher on a loky pool; ``--launcher
joblib``: Hydra's joblib launcher) >= 1.7x faster than with one worker, on the same sweep of jobs that each
fit for at least a second.

The sweep: ``model=torch_mlp`` on digits at ``imbalance.ratio=1`` with a fixed number of epochs
(``train.patience=null``), so every job does the same work, one job per seed. ``--model sklearn_mlp``: the
scikit-learn MLP instead (numpy, one thread per fit in either sweep's jobs; ~2-3 s per fit, it stops when it
converges; ``--epochs`` sets its ``model.max_iter``). Both sweeps run as a user runs
them (``python -m lossbench``, a fresh process, working folder and SQLite store each):

- baseline: one worker (``n_jobs: 1``: the jobs run in the launching process, and its MLflow helper only
  stores runs: ``hydra.launcher.helper_jobs=false``);
- parallel: ``hydra.launcher.n_jobs=2`` (``--launcher joblib``: ``hydra/launcher=joblib
  hydra.launcher.n_jobs=2``);
- and, reported beside the verdict, lossbench's default: ``n_jobs: 1`` with the helper training jobs too
  (``helper_jobs: auto``, :mod:`lossbench.sweep.share`), a second worker of another kind.

``train.threads`` stays ``auto`` unless ``--threads`` sets it: one worker's jobs get every core's torch
threads, each of two workers half of them.

speed-up = baseline wall / joblib wall. The fits are read back from MLflow (``train/fit_seconds``) to check
the jobs last >= 1 s and to show whether the fits slow down when two run at once (CPU threads contending);
the run timestamps split each wall time into start-up, the jobs, and the tail (which includes the
end-of-sweep report, run once in either case). The verdict is on the whole wall time, so the fixed start-up
and tail count against it; the "jobs" row shows the speed-up of the parallel part alone.

    python benchmarks/joblib_speedup.py            # 32 jobs x 120 epochs (2-4 s per fit; ~4 min on 2 cores)
    python benchmarks/joblib_speedup.py --quick    # 4 jobs x 20 epochs (under a minute; fits may be < 1 s)
    python benchmarks/joblib_speedup.py --jobs 64 --n-jobs 4 --threads 1
    python benchmarks/joblib_speedup.py --model sklearn_mlp   # 32 scikit-learn MLP jobs (~3 min)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import check_sweep, machine_line, run_sweep, sqlite_uri, table, verdict, write_experiment

TARGET = 1.7
EXPERIMENT = "bench_joblib"


def sweep(
    root: Path,
    name: str,
    jobs: int,
    model: list[str],
    launcher: list[str],
) -> dict[str, float]:
    folder = root / name
    uri = sqlite_uri(folder)
    select = write_experiment(
        root / "conf", "joblib_bench", {"seed": ",".join(map(str, range(jobs)))}, EXPERIMENT
    )
    overrides = [
        *select,
        *model,
        "imbalance.ratio=1",
        f"tracking.uri={uri}",
        f"hydra.sweep.dir={folder / 'sweep'}",
        *launcher,
    ]
    result = run_sweep(overrides, folder)
    runs = sorted(check_sweep(result, uri, EXPERIMENT, finished=jobs), key=lambda r: r.info.start_time)
    fits = [r.data.metrics["train/fit_seconds"] for r in runs]
    first_start = runs[0].info.start_time / 1e3
    last_end = max(r.info.end_time for r in runs) / 1e3
    return {
        "wall": result.wall,
        "startup": first_start - result.started_at,
        "jobs": last_end - first_start,
        "tail": result.ended_at - last_end,
        "fit_sum": sum(fits),
        "fit_mean": statistics.mean(fits),
        "fit_min": min(fits),
    }


def outside(result: dict[str, float], workers: int, jobs: int) -> float:
    """Worker time per job spent outside the fits while the jobs ran: what a launcher adds to each job (the
    fits themselves vary by ~10% between runs of this VM, which moves the wall-time ratio more)."""
    return (result["jobs"] * workers - result["fit_sum"]) / jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 jobs x 20 epochs")
    parser.add_argument("--jobs", type=int, help="jobs in the sweep (default 32; quick 4)")
    parser.add_argument(
        "--model",
        choices=("torch_mlp", "sklearn_mlp"),
        default="torch_mlp",
        help="the jobs' model (default torch_mlp)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="train.epochs of every torch_mlp job (default 120; quick 20); sklearn_mlp: model.max_iter "
        "(default: the model's own, 300; quick 60)",
    )
    parser.add_argument("--n-jobs", type=int, default=2, help="joblib workers (default 2)")
    parser.add_argument(
        "--threads",
        type=int,
        help="train.threads for both sweeps (default: auto, the cores shared among the workers)",
    )
    parser.add_argument(
        "--launcher",
        choices=("lossbench", "joblib"),
        default="lossbench",
        help="the parallel sweep's launcher: lossbench's own (default) or Hydra's joblib launcher",
    )
    args = parser.parse_args()
    jobs = args.jobs or (4 if args.quick else 32)
    threads = [] if args.threads is None else [f"train.threads={args.threads}"]
    if args.model == "torch_mlp":
        epochs = args.epochs or (20 if args.quick else 120)  # 60 gave fits under 1 s on a faster VM
        model = [
            "model=torch_mlp",
            "train.patience=null",
            "train.min_steps=0",
            f"train.epochs={epochs}",
            *threads,
        ]
        work = f"{epochs} epochs each"
    else:
        epochs = args.epochs or (60 if args.quick else None)
        model = ["model=sklearn_mlp", *([f"model.max_iter={epochs}"] if epochs else []), *threads]
        work = f"at most {epochs or 300} iterations each"

    print(f"joblib_speedup: {jobs} jobs of {args.model} on digits, {work}, fresh SQLite stores")
    print(machine_line())
    print(f"train.threads for the sweeps: {args.threads or 'auto'}")
    with tempfile.TemporaryDirectory(prefix="lossbench-bench-") as tmp:
        root = Path(tmp)
        print("baseline: 1 worker (lossbench's launcher, in process; its helper only stores runs) ...")
        one = sweep(root, "one", jobs, model, ["hydra.launcher.helper_jobs=false"])
        print(f"  {one['wall']:.2f} s")
        print("lossbench's default: in process, the helper training jobs too ...")
        default = sweep(root, "default", jobs, model, [])
        print(f"  {default['wall']:.2f} s")
        parallel = [f"hydra.launcher.n_jobs={args.n_jobs}"]
        if args.launcher == "joblib":
            parallel.insert(0, "hydra/launcher=joblib")
        print(f"parallel: {' '.join(parallel)} ...")
        par = sweep(root, "par", jobs, model, parallel)
        print(f"  {par['wall']:.2f} s")

    speedup = one["wall"] / par["wall"]
    rows = [
        ["wall time (s)", f"{one['wall']:.2f}", f"{par['wall']:.2f}", f"{speedup:.2f}"],
        ["  start-up: process start -> first run (s)", f"{one['startup']:.2f}", f"{par['startup']:.2f}", ""],
        [
            "  jobs: first run created -> last run ended (s)",
            f"{one['jobs']:.2f}",
            f"{par['jobs']:.2f}",
            f"{one['jobs'] / par['jobs']:.2f}",
        ],
        ["  tail: last run ended -> exit (s)", f"{one['tail']:.2f}", f"{par['tail']:.2f}", ""],
        [
            "  outside the fits, per job: (jobs x workers - fits) / jobs (s)",
            f"{outside(one, 1, jobs):.2f}",
            f"{outside(par, args.n_jobs, jobs):.2f}",
            "",
        ],
        ["sum of train/fit_seconds (s)", f"{one['fit_sum']:.2f}", f"{par['fit_sum']:.2f}", ""],
        ["fit per job, mean (s)", f"{one['fit_mean']:.2f}", f"{par['fit_mean']:.2f}", ""],
        ["fit per job, shortest (s)", f"{one['fit_min']:.2f}", f"{par['fit_min']:.2f}", ""],
    ]
    print()
    print(
        table(
            f"{jobs} jobs; speed-up = 1 worker / {args.n_jobs} workers; target >= {TARGET:g}",
            ["", "1 worker", f"{args.launcher} n_jobs={args.n_jobs}", "speed-up"],
            rows,
        )
    )
    if one["fit_min"] < 1.0:
        print(
            f"note: the shortest fit took {one['fit_min']:.2f} s (< 1 s); raise --epochs for the real figure"
        )
    print(
        f"lossbench's default (n_jobs 1, the helper training jobs too): {default['wall']:.2f} s, "
        f"{one['wall'] / default['wall']:.2f}x the 1-worker baseline "
        f"(jobs {one['jobs'] / default['jobs']:.2f}x; fits {default['fit_mean']:.2f} s a job)"
    )
    print()
    name = f"joblib_speedup ({args.model}, {args.launcher} launcher, n_jobs={args.n_jobs})"
    print(verdict(name, speedup, TARGET, "x", higher_is_better=True))


if __name__ == "__main__":
    main()
