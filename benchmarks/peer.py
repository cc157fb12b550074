"""lossbench against the peer: the same sweep written by hand with stock Hydra and MLflow.

Target: peer wall time / lossbench wall time >= 2.5x.

The peer is a standalone script this benchmark writes into a temporary folder, the way a practitioner writes
the sweep by hand: a ``@hydra.main`` app with its own tiny YAML config, run as a fresh process with stock
Hydra multirun (the basic sweeper and basic launcher, ``hydra.job.chdir=false``). Each job sets the tracking
URI (a fresh SQLite store) and the experiment, opens ``mlflow.start_run()``, logs the job's config as params,
fits what a lossbench ``model=logreg loss=ce`` job fits (scikit-learn's digits, the stratified 60/15/25
train/val/test split of seed s and s+1, the training split made long-tailed at ratio rho with lossbench's
exponential profile, the test split trimmed to equal class counts, pixels scaled to [0, 1] (lossbench treats
digits as 8x8 images), ``LogisticRegression`` (lbfgs) with lossbench's default L2 strength 1e-3 mapped to
C = 1/(1e-3 n_train), max_iter 1000, tol 1e-4) and logs 5 test metrics (accuracy, balanced accuracy, macro
F1, log loss, ECE).

lossbench runs the same grid as a user runs it: ``python -m lossbench -m model=logreg loss=ce
seed=range(S) imbalance.ratio=...`` (a fresh process, its own temporary folder and fresh SQLite store, its
defaults otherwise: the end-of-sweep report included). Each of its runs logs every lossbench metric (val and
test), the whole config as params and its artifacts (config, per-class CSV, confusion matrix PNG,
reliability bins); the peer's runs log 5 metrics and no artifacts. That is intended: the comparison is the
whole sweep a user gets from each.

Each side is timed as a whole command (process start to exit, imports included), the two alternating over
the repeats (the order flips every repeat), after one untimed warm-up of the file cache. After each run the
stores are read back with ``MlflowClient.search_runs``: the peer must have N FINISHED runs, lossbench N
FINISHED child runs and one parent. The peer's and lossbench's test balanced accuracies are compared per
(seed, ratio) as a check that both fitted the same models (they agree exactly).

    python benchmarks/peer.py                 # 96 jobs: 8 seeds x 12 ratios, 2 repeats (a few minutes)
    python benchmarks/peer.py --quick         # 12 jobs: 2 seeds x 6 ratios, once (under a minute)
    python benchmarks/peer.py --jobs 48 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import (
    Sweep,
    check_sweep,
    clean_env,
    machine_line,
    run_command,
    run_sweep,
    sqlite_uri,
    sweep_runs,
    table,
)

TARGET = 2.5
RATIOS = (
    1,
    2,
    3,
    5,
    8,
    10,
    15,
    20,
    30,
    50,
    70,
    100,
)  # imbalance ratios; n_jobs picks an evenly spread subset
STRENGTH = 0.001  # lossbench's default regularization (conf/regularization/l2.yaml)
LB_EXPERIMENT = "bench_peer"
PEER_EXPERIMENT = "peer"

PEER_CONFIG = """\
# the peer's config: one job of the sweep
seed: 0
ratio: 10.0       # n_max / n_min of the long-tailed training split
strength: {strength}   # L2: mean loss + strength/2 ||w||^2
max_iter: 1000
tol: 0.0001
test_size: 0.25
val_size: 0.15
"""

PEER_APP = '''\
"""Logistic regression on long-tailed digits, one MLflow run per Hydra job."""

import hydra
import mlflow
import numpy as np
from omegaconf import DictConfig, OmegaConf
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss
from sklearn.model_selection import train_test_split


def long_tailed(y, ratio, seed):
    """Positions into y that keep floor(n_max * ratio^(-k/(C-1))) rows of class k (n_max: smallest class)."""
    n_classes = int(y.max()) + 1
    counts = np.bincount(y, minlength=n_classes)
    if ratio != 1:
        n_max = counts.min()
        decay = ratio ** (-np.arange(n_classes) / (n_classes - 1))
        counts = np.floor(n_max * decay + 1e-9).astype(int)
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(y == k))[:n] for k, n in enumerate(counts)]
    return np.sort(np.concatenate(keep))


def equal_classes(y, seed):
    """Positions into y that keep the smallest class count of every class."""
    n_classes = int(y.max()) + 1
    n = np.bincount(y, minlength=n_classes).min()
    rng = np.random.default_rng([seed, 1])
    keep = [rng.permutation(np.flatnonzero(y == k))[:n] for k in range(n_classes)]
    return np.sort(np.concatenate(keep))


def ece(y, proba, n_bins=15):
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    which = np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], confidence)
    gap = 0.0
    for b in range(n_bins):
        in_bin = which == b
        if in_bin.any():
            gap += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(gap)


@hydra.main(version_base=None, config_path="conf", config_name="peer")
def main(cfg: DictConfig) -> None:
    mlflow.set_tracking_uri({uri!r})
    mlflow.set_experiment({experiment!r})
    with mlflow.start_run():
        mlflow.log_params(OmegaConf.to_container(cfg, resolve=True))

        X, y = load_digits(return_X_y=True)
        rows = np.arange(len(y))
        rest, test = train_test_split(rows, test_size=cfg.test_size, stratify=y, random_state=cfg.seed)
        train, _val = train_test_split(
            rest,
            test_size=cfg.val_size / (1 - cfg.test_size),
            stratify=y[rest],
            random_state=cfg.seed + 1,
        )
        train, test = np.sort(train), np.sort(test)
        train = train[long_tailed(y[train], float(cfg.ratio), cfg.seed)]
        test = test[equal_classes(y[test], cfg.seed)]

        X = X / 16.0  # pixel counts 0..16 -> [0, 1]
        model = LogisticRegression(
            C=1.0 / (cfg.strength * len(train)), max_iter=cfg.max_iter, tol=cfg.tol, random_state=cfg.seed
        )
        model.fit(X[train], y[train])

        X_test, y_test = X[test], y[test]
        pred, proba = model.predict(X_test), model.predict_proba(X_test)
        mlflow.log_metrics(
            {{
                "accuracy": accuracy_score(y_test, pred),
                "balanced_accuracy": balanced_accuracy_score(y_test, pred),
                "macro_f1": f1_score(y_test, pred, average="macro"),
                "log_loss": log_loss(y_test, proba, labels=np.arange(10)),
                "ece": ece(y_test, proba),
            }}
        )


if __name__ == "__main__":
    main()
'''

# imported by both sides (and lossbench's own modules): read once, untimed, so neither pays the cold cache
WARM_UP = "import hydra, mlflow, sklearn.linear_model, sklearn.metrics, mlflow.tracking, lossbench.cli"


def grid(jobs: int) -> tuple[int, list[int]]:
    """(seeds, ratios) with seeds x len(ratios) = jobs: the most ratios (at most 12) that leave >= 2 seeds."""
    k = max(d for d in range(1, min(len(RATIOS), max(jobs // 2, 1)) + 1) if jobs % d == 0)
    picks = [round(i * (len(RATIOS) - 1) / (k - 1)) for i in range(k)] if k > 1 else [RATIOS.index(10)]
    return jobs // k, [RATIOS[i] for i in picks]


def write_peer(folder: Path, uri: str) -> Path:
    """The peer's app and config in ``folder``; returns the app's path."""
    (folder / "conf").mkdir(parents=True)
    (folder / "conf" / "peer.yaml").write_text(PEER_CONFIG.format(strength=STRENGTH))
    app = folder / "peer_app.py"
    app.write_text(PEER_APP.format(uri=uri, experiment=PEER_EXPERIMENT))
    return app


def run_peer(folder: Path, seeds: int, ratios: list[int]) -> tuple[Sweep, list]:
    uri = sqlite_uri(folder)
    app = write_peer(folder, uri)
    command = [
        sys.executable,
        app.name,
        "-m",
        f"seed=range({seeds})",
        "ratio=" + ",".join(map(str, ratios)),
        "hydra.job.chdir=false",
        f"hydra.sweep.dir={folder / 'multirun'}",
    ]
    sweep = run_command(command, folder)
    runs, children = sweep_runs(uri, PEER_EXPERIMENT)  # no parent runs here: every run is a job's
    done = [r for r in runs + children if r.info.status == "FINISHED"]
    if sweep.returncode != 0 or len(done) != seeds * len(ratios) or children:
        tail = "\n".join(sweep.stderr.splitlines()[-25:])
        raise SystemExit(
            f"benchmark: the peer left {len(done)} FINISHED runs of {seeds * len(ratios)} "
            f"(and {len(children)} nested; exit status {sweep.returncode}) from:\n"
            f"  {' '.join(command)}\n{tail}"
        )
    return sweep, done


def lossbench_overrides(folder: Path, seeds: int, ratios: list[int]) -> list[str]:
    return [
        "-m",
        "model=logreg",
        "loss=ce",
        f"seed=range({seeds})",
        "imbalance.ratio=" + ",".join(map(str, ratios)),
        f"tracking.uri={sqlite_uri(folder)}",
        f"tracking.experiment={LB_EXPERIMENT}",
        f"hydra.sweep.dir={folder / 'sweep'}",
    ]


def run_lossbench(folder: Path, seeds: int, ratios: list[int]) -> tuple[Sweep, list, list]:
    uri = sqlite_uri(folder)
    sweep = run_sweep(lossbench_overrides(folder, seeds, ratios), folder)
    done = check_sweep(sweep, uri, LB_EXPERIMENT, finished=seeds * len(ratios))
    parents, children = sweep_runs(uri, LB_EXPERIMENT)
    if len(children) != len(done) or len(done) != seeds * len(ratios) or len(parents) != 1:
        raise SystemExit(
            f"benchmark: lossbench left {len(parents)} parent and {len(children)} child runs "
            f"({len(done)} FINISHED); expected 1 parent and {seeds * len(ratios)} FINISHED children"
        )
    return sweep, done, parents


def phases(sweep: Sweep, runs: list, parent=None) -> dict[str, float]:
    """From MLflow's timestamps: seconds from process start to the first run's creation, ms per job from the
    first run's creation to the last run's end, and seconds from the last run's end to the process exit; for
    lossbench also its mean fit time and parent run closed -> exit (the end-of-sweep report, interpreter
    exit)."""
    first = min(r.info.start_time for r in runs) / 1e3
    last = max(r.info.end_time for r in runs) / 1e3
    out = {
        "start-up: process start -> first run created": first - sweep.started_at,
        "jobs: first run created -> last run ended, ms per job": 1e3 * (last - first) / len(runs),
    }
    fits = [r.data.metrics["train/fit_seconds"] for r in runs if "train/fit_seconds" in r.data.metrics]
    if fits:  # lossbench's runs time their fit; the peer's fit is the same one (same data, same estimator)
        out["  of which the fit (lossbench's train/fit_seconds), ms per job"] = 1e3 * statistics.mean(fits)
    out["tail: last run ended -> process exit"] = sweep.ended_at - last
    if parent is not None and parent.info.end_time:
        out["  of which parent run closed -> exit (report, interpreter exit)"] = (
            sweep.ended_at - parent.info.end_time / 1e3
        )
    return out


def agreement(peer_runs: list, lb_runs: list) -> tuple[int, float, float]:
    """(pairs compared, mean and max |difference|) of test balanced accuracy per (seed, ratio)."""
    peer = {
        (int(r.data.params["seed"]), float(r.data.params["ratio"])): r.data.metrics["balanced_accuracy"]
        for r in peer_runs
    }
    lb = {
        (int(r.data.params["seed"]), float(r.data.params["imbalance.ratio"])): r.data.metrics[
            "test/balanced_accuracy"
        ]
        for r in lb_runs
    }
    diffs = [abs(peer[k] - lb[k]) for k in peer.keys() & lb.keys()]
    return len(diffs), (statistics.mean(diffs) if diffs else float("nan")), max(diffs, default=float("nan"))


def logged(lb_run, uri: str) -> str:
    """What one lossbench run logged: metric, param and artifact counts."""
    from mlflow.tracking import MlflowClient

    artifacts = MlflowClient(tracking_uri=uri).list_artifacts(lb_run.info.run_id)
    return (
        f"{len(lb_run.data.metrics)} metrics, {len(lb_run.data.params)} params, "
        f"{len(artifacts)} artifacts:\n  {', '.join(a.path for a in artifacts)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 jobs (2 seeds x 6 ratios), once")
    parser.add_argument("--jobs", type=int, help="jobs per sweep (default 96; quick: 12)")
    parser.add_argument(
        "--repeats", type=int, help="timed runs of each side, alternating (default 2; quick: 1)"
    )
    args = parser.parse_args()
    jobs = args.jobs or (12 if args.quick else 96)
    repeats = args.repeats or (1 if args.quick else 2)
    if jobs < 1 or repeats < 1:
        parser.error("--jobs and --repeats must be >= 1")
    seeds, ratios = grid(jobs)

    print(
        f"peer: a hand-written stock Hydra + MLflow sweep vs python -m lossbench, {jobs} jobs of logreg + CE "
        f"on digits ({seeds} seeds x imbalance ratios {ratios}), fresh SQLite stores, {repeats} repeat(s)"
    )
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="lossbench-bench-") as tmp:
        root = Path(tmp)
        shown = " ".join(lossbench_overrides(root / "lossbench-0", seeds, ratios)).replace(str(root), "<tmp>")
        print(f"lossbench: python -m lossbench {shown}")
        print(
            f"peer:      python peer_app.py -m seed=range({seeds}) ratio={','.join(map(str, ratios))} "
            f"hydra.job.chdir=false hydra.sweep.dir=<tmp>/multirun"
        )
        subprocess.run([sys.executable, "-c", WARM_UP], env=clean_env(), check=True, cwd=root)
        walls: dict[str, list[float]] = {"peer": [], "lossbench": []}
        timing: dict[str, list[dict[str, float]]] = {"peer": [], "lossbench": []}
        rows: list[list[str]] = []
        for rep in range(repeats):
            for side in ("peer", "lossbench") if rep % 2 == 0 else ("lossbench", "peer"):
                folder = root / f"{side}-{rep}"
                folder.mkdir()
                if side == "peer":
                    sweep, peer_runs = run_peer(folder, seeds, ratios)
                    timing[side].append(phases(sweep, peer_runs))
                    runs = f"{len(peer_runs)} FINISHED"
                else:
                    sweep, lb_runs, parents = run_lossbench(folder, seeds, ratios)
                    timing[side].append(phases(sweep, lb_runs, parents[0]))
                    runs = f"{len(lb_runs)} FINISHED + 1 parent"
                    if rep == 0:
                        lb_logged = logged(lb_runs[0], sqlite_uri(folder))
                walls[side].append(sweep.wall)
                rows.append(
                    [f"{side}, repeat {rep + 1}", f"{sweep.wall:.2f}", f"{1e3 * sweep.wall / jobs:.0f}", runs]
                )
                print(f"  {side:<9} repeat {rep + 1}: {sweep.wall:7.2f} s  ({runs})")
        pairs, mean_diff, max_diff = agreement(peer_runs, lb_runs)

    peer_wall, lb_wall = statistics.median(walls["peer"]), statistics.median(walls["lossbench"])
    for side, wall in (("peer", peer_wall), ("lossbench", lb_wall)):
        rows.append([f"{side}, median", f"{wall:.2f}", f"{1e3 * wall / jobs:.0f}", ""])
    ratio = peer_wall / lb_wall
    rows.append(["peer / lossbench", f"{ratio:.2f}x", "", ""])
    rows.append(["target", f">= {TARGET:g}x", "", ""])
    print()
    print(table(f"wall time of {jobs} jobs, process start to exit", ["", "seconds", "ms/job", "runs"], rows))

    # lossbench's rows are a superset of the peer's, in order
    keys = list(dict.fromkeys(k for side in ("lossbench", "peer") for t in timing[side] for k in t))
    split_rows = [
        [
            key,
            *(
                f"{statistics.median(t[key] for t in timing[side]):.{0 if 'ms per' in key else 2}f}"
                if all(key in t for t in timing[side])
                else ""
                for side in ("peer", "lossbench")
            ),
        ]
        for key in keys
    ]
    print()
    print(
        table(
            "where the time goes (seconds unless marked, median over repeats; MLflow timestamps)",
            ["", "peer", "lossbench"],
            split_rows,
        )
    )
    print()
    print("logged per run: peer 5 metrics (test accuracy, balanced accuracy, macro F1, log loss, ECE),")
    print(f"  7 params, no artifacts; lossbench {lb_logged}")
    print("  (intended: each side as a user gets it; lossbench also builds its end-of-sweep report)")
    print(
        f"same fits: test balanced accuracy, peer vs lossbench, over {pairs} (seed, ratio) pairs: "
        f"mean |diff| {mean_diff:.4f}, max {max_diff:.4f}"
        + ("" if max_diff <= 1e-6 else "  (WARNING: the two sides did not fit the same models)")
    )
    print()
    r = ratio / TARGET
    verdict = "PASS" if r >= 1 else "FAIL"
    print(f"RESULT peer: {ratio:.2f}x vs target {TARGET:g}x -> measured/target = {r:.2f} ({verdict})")


if __name__ == "__main__":
    main()
