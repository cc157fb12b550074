"""Report build time on synthetic MLflow stores of 1,000 and 10,000 runs, cloned from a real sweep.

Targets: <= 15 s at 1,000 runs, <= 60 s at 10,000 runs (``python -m lossbench.report``, a fresh process).

What it does, in one invocation:

- template: a real tiny sweep run as a user runs it (``python -m lossbench``, a fresh process, a fresh
  temporary SQLite store): logreg, torch_linear and torch_mlp x ce, focal at rho = 10 on digits (5 runs, one
  N/A job). Its FINISHED child runs (one per model) and its parent run are read back with ``MlflowClient``:
  params, tags, metrics with the epoch curves, artifacts (config.yaml, per_class_test.csv,
  reliability_test.json, confusion_matrix_test.png) and the parent's sweep_jobs.json.
- synthetic store per size: a sweep of the ``imbalance`` kind (3 models x 9 losses x rho in 1, 10, 50, 100
  [x 5 regularization strengths above 2,000 runs] x as many seeds as reach the size), recorded by the real
  sweeper: ``lossbench.sweep.run.run_sweep`` on an experiment file, with a launcher that writes each job's
  run from its model's template instead of training it. So the grid, every job's composed and checked
  config, the N/A jobs (the combinations ``lossbench.compat`` rejects, with its reason: focal, ldam, hinge,
  mse on logreg), the parent run, the job status files and sweep_jobs.json are the sweeper's own. Each
  runnable job is one child run created and logged by the real ``Tracker.start`` and ``Tracker.finish``:
  its config as the CLI makes it (``train.threads`` resolved), so tags (fingerprint, sweep id, parent),
  params and config.yaml are lossbench's own; the class counts of its split (``lossbench.pipeline.prepare``);
  metrics perturbed plausibly (a loss effect growing with log rho, a per-(setting, seed) effect shared by the
  losses, per-run noise; calibration metrics scaled) and the template's epoch curves; the template's other
  artifacts as hard links. One synthetic run per model is checked against its template run (the same param,
  tag, metric, curve and artifact names), and sweep_jobs.json against the template sweep's (the same keys
  in the same order). ``PRAGMA synchronous=OFF`` on the generating connections only (as MLflow's own bulk
  import does; nothing of it persists in the file). ``--store-dir`` keeps the stores for next time.
- measure: ``python -m lossbench.report --experiment ... --tracking-uri ... --out ...`` in a fresh process,
  wall time, best of R; the output is checked (index.html, README.md, summary.csv with one row per setting and
  loss and one per CE row for each post-hoc baseline the report ranks, comparisons.csv, the figures, the run
  count the report states), so a broken report cannot pass as fast. Then, in this process, ``build_report``
  once more with timers around the real calls (load: the store read in place or through search_runs pages,
  the JSON artifacts read in place or downloaded; statistics, figures, HTML/Markdown) and, at the largest
  size, under cProfile.

    python benchmarks/report_build.py            # 1,000 and 10,000 runs: generating the stores is most of it
                                                 # (200 runs on 2 cores: ~20 s of the sweeper's plan, then
                                                 # ~0.12 s a run written)
    python benchmarks/report_build.py --quick    # a 200-run store only (~2 min)
    python benchmarks/report_build.py --store-dir /tmp/stores   # keep the stores; the next run reuses them
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import io
import json
import math
import os
import pstats
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    REPO,
    Profiler,
    check_sweep,
    clean_env,
    has_config_key,
    machine_line,
    run_sweep,
    sqlite_uri,
    sweep_runs,
    table,
    verdict,
    write_experiment,
)

TARGETS_S = {1000: 15.0, 10000: 60.0}
EXPERIMENT = "bench_report_build"
TEMPLATE_EXPERIMENT = "bench_report_template"
GENERATOR = 2  # bump when the synthetic store changes: cached stores of another version are regenerated

MODELS = ("logreg", "torch_linear", "torch_mlp")
LOSSES = (
    "ce",
    "weighted_ce",
    "class_balanced",
    "focal",
    "label_smoothing",
    "logit_adjusted",
    "ldam",
    "hinge",
    "mse",
)
RATIOS = (1, 10, 50, 100)
STRENGTHS = (0.0001, 0.0003, 0.001, 0.003, 0.01)  # l2: must be > 0
MANY_RUNS = 2000  # above this size the synthetic sweep also sweeps regularization.strength
TEMPLATE_RATIO = 10.0

# plausible effects (metric points) used to perturb the template metrics: gain per decade of rho
LOSS_GAIN = {
    "ce": 0.0,
    "weighted_ce": 0.022,
    "class_balanced": 0.026,
    "focal": 0.006,
    "label_smoothing": 0.002,
    "logit_adjusted": 0.03,
    "ldam": 0.02,
    "hinge": -0.012,
    "mse": -0.02,
}
LOSS_CALIBRATION = {  # log-factor on ECE
    "ce": 0.0,
    "weighted_ce": 0.25,
    "class_balanced": 0.3,
    "focal": -0.2,
    "label_smoothing": 0.35,
    "logit_adjusted": 0.1,
    "ldam": 0.4,
    "hinge": 0.6,
    "mse": 0.2,
}
CALIBRATION = ("ece", "adaptive_ece")
PROPER = ("brier", "log_loss")


def _higher_is_better(name: str) -> bool:
    """What lossbench.metrics says of a metric's direction (False for a name it does not know)."""
    from lossbench.metrics import METRICS

    spec = METRICS.get("recall_class_<k>" if name.startswith("recall_class_") else name)
    return spec is not None and spec.higher_is_better


def target_for(n: int) -> float:
    """The target of a store of n runs: 15 s up to 1,000 runs, 60 s up to 10,000, pro rata beyond."""
    if n <= 1000:
        return TARGETS_S[1000]
    if n <= 10000:
        return TARGETS_S[10000]
    return TARGETS_S[10000] * n / 10000


# ------------------------------------------------------------------------------------------------ template
@dataclass
class TemplateRun:
    model: str
    run_id: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]  # latest values, curves excluded
    curves: dict[str, list[tuple[int, float]]]  # curve/<name> -> [(step, value)]
    artifacts: Path  # a folder with the run's artifacts


@dataclass
class Template:
    runs: dict[str, TemplateRun]  # by model
    statuses: list[dict]  # the parent's sweep_jobs.json


def template_sweep(folder: Path, extra: list[str]) -> Template:
    """A real tiny sweep (or the one already in ``folder``), read back with MlflowClient."""
    from mlflow.tracking import MlflowClient

    uri = sqlite_uri(folder)
    done = folder / "template_done"
    if not done.is_file():
        if folder.exists():
            shutil.rmtree(folder)
        select = write_experiment(
            folder / "conf",
            "report_build_template",
            {"model": ",".join(MODELS), "loss": "ce,focal", "imbalance.ratio": "10", "seed": "0"},
            TEMPLATE_EXPERIMENT,
        )
        overrides = [*select, f"tracking.uri={uri}", f"hydra.sweep.dir={folder / 'sweep'}", *extra]
        print("  template sweep: python -m lossbench " + " ".join(overrides))
        sweep = run_sweep(overrides, folder)
        check_sweep(sweep, uri, TEMPLATE_EXPERIMENT, finished=len(MODELS) + 2)
        print(f"  template sweep done in {sweep.wall:.1f} s")
    parents, children = sweep_runs(uri, TEMPLATE_EXPERIMENT)
    client = MlflowClient(tracking_uri=uri)
    runs = {}
    for r in children:
        model = r.data.params.get("model.name")
        if r.info.status != "FINISHED" or r.data.params.get("loss.name") != "ce" or model in runs:
            continue
        dst = folder / "artifacts" / model
        if dst.exists():
            shutil.rmtree(dst)
        dst.mkdir(parents=True)
        client.download_artifacts(r.info.run_id, "", str(dst))
        curves = {
            k: [(m.step, m.value) for m in client.get_metric_history(r.info.run_id, k)]
            for k in r.data.metrics
            if k.startswith("curve/")
        }
        runs[model] = TemplateRun(
            model,
            r.info.run_id,
            dict(r.data.params),
            dict(r.data.tags),
            {k: v for k, v in r.data.metrics.items() if not k.startswith("curve/")},
            {k: sorted(v) for k, v in curves.items()},
            dst,
        )
    missing = [m for m in MODELS if m not in runs]
    parent = next((p for p in parents if p.data.tags.get("lossbench.role") == "sweep"), None)
    if missing or parent is None:
        raise SystemExit(f"benchmark: the template sweep in {folder} lacks runs of {missing} or its parent")
    with tempfile.TemporaryDirectory() as tmp:
        statuses = json.loads(
            Path(client.download_artifacts(parent.info.run_id, "sweep_jobs.json", tmp)).read_text()
        )
    done.write_text("ok\n")
    return Template(runs, statuses)


# ----------------------------------------------------------------------------------------- synthetic grid
@dataclass
class Grid:
    size: int  # the nominal number of runs asked for
    strengths: tuple[float, ...]
    seeds: int

    @classmethod
    def for_size(cls, n: int, strengths: int | None) -> Grid:
        from lossbench.compat import realisation

        k = strengths if strengths is not None else (len(STRENGTHS) if n > MANY_RUNS else 1)
        chosen = (0.001,) if k == 1 else STRENGTHS[:k]
        runnable = sum(1 for m in MODELS for x in LOSSES if realisation(m, x, "l2", data="digits"))
        per_seed = runnable * len(RATIOS) * len(chosen)
        return cls(n, chosen, max(1, round(n / per_seed)))

    def params(self) -> dict[str, str]:
        """``hydra.sweeper.params`` of the synthetic experiment, in the order Hydra expands them."""
        out = {
            "model": ",".join(MODELS),
            "loss": ",".join(LOSSES),
            "imbalance.ratio": ",".join(str(r) for r in RATIOS),
        }
        if len(self.strengths) > 1:
            out["regularization.strength"] = ",".join(f"{s:g}" for s in self.strengths)
        out["seed"] = ",".join(str(s) for s in range(self.seeds))
        return out

    def key(self) -> dict:
        return {"generator": GENERATOR, "size": self.size, "params": self.params()}

    def describe(self) -> str:
        parts = [f"{len(MODELS)} models", f"{len(LOSSES)} losses", f"{len(RATIOS)} ratios"]
        if len(self.strengths) > 1:
            parts.append(f"{len(self.strengths)} strengths")
        return " x ".join([*parts, f"{self.seeds} seeds"])


@dataclass
class Store:
    folder: Path
    uri: str
    meta: dict = field(default_factory=dict)


@contextlib.contextmanager
def _cwd(folder: Path):
    """Run in ``folder``, as a user's sweep runs in its working folder (MLflow puts mlruns/ there)."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _sqlite_no_fsync():
    """``PRAGMA synchronous=OFF`` on every SQLite connection this process opens meanwhile: a per-connection
    setting (the file is unchanged), what MLflow's own bulk import (mlflow.store.fs2db) does."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def pragma(dbapi_conn, _record) -> None:
        if type(dbapi_conn).__module__.startswith("sqlite3"):
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.close()

    event.listen(Engine, "connect", pragma)
    try:
        yield
    finally:
        event.remove(Engine, "connect", pragma)


class Perturb:
    """Deterministic, plausible metric values for one job from its model's template metrics."""

    def __init__(self, seed: int = 20240601) -> None:
        import numpy as np

        self.rng = np.random.default_rng(seed)
        self._shared: dict[tuple, float] = {}

    def _draw(self, key: tuple, sd: float) -> float:
        if key not in self._shared:
            self._shared[key] = float(self.rng.normal(0.0, sd))
        return self._shared[key]

    def metrics(self, tmpl: dict[str, float], job: dict, counts: dict[str, list[int]]) -> dict[str, float]:
        model, loss, ratio, strength, seed = (job[k] for k in ("model", "loss", "ratio", "strength", "seed"))
        decades = math.log10(ratio)
        # template: ce at rho = 10; shift = effect(loss, rho) - effect(ce, 10) + shared and per-run noise
        effect = -0.045 * decades + LOSS_GAIN[loss] * decades
        shift = effect + 0.045
        shift -= 0.004 * abs(math.log10(strength / 0.001))  # the default strength is best, a little
        shift += self._draw(("setting", model, loss, ratio, strength), 0.004)
        block = self._draw(("block", model, ratio, strength, seed), 0.012)  # same split: shared by losses
        calib = LOSS_CALIBRATION[loss] + 0.15 * (decades - 1)
        out: dict[str, float] = {}
        train = counts.get("train") or []
        for key, value in tmpl.items():
            split, _, name = key.partition("/")
            if split in ("test", "val"):
                noise = float(self.rng.normal(0.0, 0.006))
                if _higher_is_better(name):
                    k = int(name.rsplit("_", 1)[1]) if name.startswith("recall_class_") else None
                    scale = 1.5 if name == "minority_recall" else 1.0
                    if k is not None and len(train) > 1:  # tail classes (few training samples) move most
                        scale = 0.3 + 1.7 * k / (len(train) - 1)
                    low = -1.0 if name == "mcc" else 0.0
                    out[key] = min(1.0, max(low, value + scale * (shift + block) + noise))
                elif name in CALIBRATION:
                    out[key] = max(0.0, value * math.exp(calib + float(self.rng.normal(0.0, 0.15))))
                elif name in PROPER:
                    out[key] = max(
                        0.0, value * math.exp(-4 * (shift + block) + float(self.rng.normal(0, 0.05)))
                    )
                else:
                    out[key] = value
            elif key == "train/fit_seconds":
                size = sum(train) / tmpl["train/n_train"] if train and tmpl.get("train/n_train") else 1.0
                out[key] = value * size * math.exp(float(self.rng.normal(0, 0.2)))
            elif key in ("train/n_train", "train/n_fit") and train:
                out[key] = float(sum(train))
            elif key == "train/imbalance_ratio" and train:
                out[key] = max(train) / max(min(train), 1)
            else:
                out[key] = value
        return out


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


class _TemplateWriter:
    """A launcher for the real sweeper (:func:`lossbench.sweep.run.run_sweep`) that writes each job's run
    from its model's template instead of training it: the job's config as the CLI makes it from the config
    the sweeper composed; the run created and logged by the real ``Tracker.start`` and ``Tracker.finish``
    (tags, params, metrics, curves, class counts, config.yaml); the template's other artifacts linked in;
    and the job's status file written by the real ``lossbench.sweep.jobs.write_status``. The writes are made
    at once, in this thread, as a sweep's jobs make them."""

    def __init__(self, master, tmpl: Template) -> None:
        self.master = master  # run_sweep points its hydra.sweep.dir at the folder it claims
        self.tmpl = tmpl
        self.configs: dict[tuple, object] = {}
        self.perturb = Perturb()
        self.counts: dict[str, dict[str, list[int]]] = {}  # class counts per split (ratio, seed)
        self.planned_at: float | None = None
        self._layout_checked = False

    def runs_in_process(self) -> bool:
        return True

    def use_configs(self, configs: dict[tuple, object]) -> None:
        self.configs = dict(configs)

    def launch(self, job_overrides, initial_job_idx: int) -> list:
        from omegaconf import OmegaConf

        from lossbench.artifacts import CONFIG_ARTIFACT
        from lossbench.cli import _resolve_threads
        from lossbench.compat import check_config
        from lossbench.config import fingerprint, to_container
        from lossbench.pipeline import RunResult, prepare, split_key
        from lossbench.sweep.jobs import job_description, read_sweep, write_status
        from lossbench.tracking import TAG_PROBA, TAG_SWEEP_ID, Tracker

        self.planned_at = time.perf_counter()
        sweep_dir = Path(str(self.master.hydra.sweep.dir))
        info = read_sweep(sweep_dir)
        tracker = Tracker(info["uri"], info["experiment"])
        location = tracker.client.get_experiment(tracker.experiment_id).artifact_location
        print(
            f"  {len(job_overrides)} jobs to write (the sweeper's plan); parent run {info['parent_run_id']}"
        )
        writing = last = time.perf_counter()
        for i, overrides in enumerate(job_overrides):
            cfg, num = self.configs.pop(tuple(overrides)), initial_job_idx + i
            c = to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))
            _resolve_threads(c, False)  # train.threads=auto as at n_jobs 1
            desc = job_description(c)
            t = self.tmpl.runs[desc["model"]]
            key = split_key(c)
            if key not in self.counts:
                self.counts[key] = prepare(c).class_counts
            counts = self.counts[key]
            values = self.perturb.metrics(t.metrics, desc, counts)
            train = {k.removeprefix("train/"): v for k, v in values.items() if k.startswith("train/")}
            result = RunResult(
                metrics={k: v for k, v in values.items() if not k.startswith("train/")},
                curves={k.removeprefix("curve/"): [v for _, v in h] for k, h in t.curves.items()},
                class_counts=counts,
                class_names=json.loads(t.params["data.class_names"]),
                realisation=check_config(c),
                info={**train, "device": t.tags["lossbench.device"], "has_proba": TAG_PROBA not in t.tags},
            )
            run_id = tracker.start(
                c, parent_run_id=info["parent_run_id"], extra_tags={TAG_SWEEP_ID: info["id"]}
            )
            art = self._artifact_dir(tracker, location, run_id)
            for src in t.artifacts.iterdir():  # no predictions here: Tracker.finish writes config.yaml only
                if src.is_file() and src.name != CONFIG_ARTIFACT:
                    _link(src, art / src.name)
            tracker.finish(run_id, c, result)
            write_status(
                sweep_dir / str(num), "finished", fingerprint=fingerprint(c), job=desc, run_id=run_id
            )
            if time.perf_counter() - last > 15:
                last = time.perf_counter()
                elapsed = last - writing
                print(
                    f"    job {i + 1}/{len(job_overrides)}: {(i + 1) / elapsed:.0f} runs/s, "
                    f"~{(len(job_overrides) - i - 1) * elapsed / (i + 1):.0f} s left",
                    flush=True,
                )
        return []

    def _artifact_dir(self, tracker, location: str, run_id: str) -> Path:
        """The run's local artifact folder: MLflow's layout under the experiment's artifact location, checked
        against the run's own artifact URI on the first run."""
        from mlflow.utils.file_utils import local_file_uri_to_path

        uri = f"{location}/{run_id}/artifacts"
        if not self._layout_checked:
            actual = tracker.client.get_run(run_id).info.artifact_uri
            if actual != uri:
                raise SystemExit(f"benchmark: run artifacts at {actual}, not {uri}: MLflow's layout changed")
            self._layout_checked = True
        path = Path(local_file_uri_to_path(uri))
        path.mkdir(parents=True, exist_ok=True)
        return path


def generate(folder: Path, grid: Grid, tmpl: Template, extra: list[str]) -> Store:
    """A synthetic sweep of ``grid`` written to a fresh SQLite store in ``folder`` by the real sweeper
    (grid, plan, N/A jobs, parent run, counting, sweep_jobs.json) with :class:`_TemplateWriter` for its
    launcher."""
    from types import SimpleNamespace

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from mlflow.tracking import MlflowClient

    from lossbench.config import config_dir
    from lossbench.store import local_artifact_dir, query
    from lossbench.sweep.jobs import STATUSES
    from lossbench.sweep.run import exit_code, run_sweep
    from lossbench.tracking import SWEEP_JOBS_ARTIFACT, TAG_ROLE

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    uri = sqlite_uri(folder)
    started = time.perf_counter()
    select = write_experiment(folder / "conf", "report_build_synthetic", grid.params(), EXPERIMENT)
    overrides = [*select, f"tracking.uri={uri}", *extra, f"hydra.sweep.dir={folder / 'sweep'}"]
    with (
        initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"),
        _cwd(folder),
        _sqlite_no_fsync(),
    ):
        master = compose(config_name="config", overrides=overrides, return_hydra_config=True)
        writer = _TemplateWriter(master, tmpl)
        sweeper = SimpleNamespace(
            config=master,
            launcher=writer,
            hydra_context=SimpleNamespace(config_loader=GlobalHydra.instance().config_loader()),
            params=master.hydra.sweeper.params,
        )
        run_sweep(sweeper, list(master.hydra.overrides.task))
    if exit_code():
        raise SystemExit(
            f"benchmark: the synthetic sweep in {folder} did not finish (exit code {exit_code()})"
        )
    plan_s = (writer.planned_at or started) - started

    # read back what the sweep recorded; it must look like what the template sweep recorded
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    (parent,) = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_ROLE}` = 'sweep'")
    statuses = json.loads((local_artifact_dir(parent.info.artifact_uri) / SWEEP_JOBS_ARTIFACT).read_text())
    schema = {st["status"]: (list(st), list(st["job"])) for st in tmpl.statuses}
    for st in statuses:  # the template sweep wrote the same keys, in the same order
        if st["status"] in schema and (list(st), list(st["job"])) != schema[st["status"]]:
            raise SystemExit(f"benchmark: status {st} differs from the real schema {schema[st['status']]}")
    sample = {}  # one ce run per model, as the template runs are
    for st in statuses:
        if st["status"] == "finished" and st["job"]["loss"] == "ce":
            sample.setdefault(st["job"]["model"], st["run_id"])
    for model, run_id in sample.items():
        r, t = client.get_run(run_id), tmpl.runs[model]
        steps = {k: [m.step for m in client.get_metric_history(run_id, k)] for k in t.curves}
        for what, ours, theirs in (
            ("params", set(r.data.params), set(t.params)),
            ("tags", set(r.data.tags), set(t.tags)),
            ("metrics", set(r.data.metrics), set(t.metrics) | set(t.curves)),
            (
                "curve steps",
                {(k, tuple(v)) for k, v in steps.items()},
                {(k, tuple(step for step, _ in v)) for k, v in t.curves.items()},
            ),
            (
                "artifacts",
                {p.name for p in local_artifact_dir(r.info.artifact_uri).iterdir()},
                {p.name for p in t.artifacts.iterdir()},
            ),
        ):
            if ours != theirs:
                raise SystemExit(
                    f"benchmark: a synthetic {model} run's {what} differ from the template run's: "
                    f"only synthetic {sorted(ours - theirs)}, only template {sorted(theirs - ours)}"
                )
    counts_by = {s: sum(1 for st in statuses if st["status"] == s) for s in STATUSES}
    stored = query(
        uri,
        "SELECT COUNT(*) FROM runs WHERE experiment_id = ? AND status = 'FINISHED' AND run_uuid != ?",
        (int(experiment_id), parent.info.run_id),
    )
    if stored is None or stored[0][0] != counts_by["finished"] or set(sample) != set(MODELS):
        raise SystemExit(f"benchmark: sweep_jobs.json counts {counts_by}, the store {stored} FINISHED runs")
    settings = {
        (st["job"]["model"], st["job"]["loss"], st["job"]["ratio"], st["job"]["strength"])
        for st in statuses
        if st["status"] == "finished"
    }
    meta = {
        **grid.key(),
        "jobs": len(statuses),
        "runs": counts_by["finished"],
        "skipped": counts_by["skipped"],
        "summary_rows": len(settings),
        "models": len(MODELS),
        "strength_axis": len(grid.strengths) > 1,
        "plan_s": plan_s,
        "generated_s": time.perf_counter() - started,
        "db_mb": (folder / "mlflow.db").stat().st_size / 2**20,
    }
    (folder / "synthetic.json").write_text(json.dumps(meta, indent=1))
    return Store(folder, uri, meta)


def ensure_store(store_dir: Path, grid: Grid, template: Callable[[], Template], extra: list[str]) -> Store:
    """The cached store of ``grid`` when ``store_dir`` holds a complete one, else a freshly generated one."""
    folder = store_dir / f"runs{grid.size}-strengths{len(grid.strengths)}"
    marker = folder / "synthetic.json"
    if marker.is_file():
        meta = json.loads(marker.read_text())
        if all(meta.get(k) == v for k, v in grid.key().items()):
            print(
                f"  reusing {folder} ({meta['runs']} runs, generated in {meta['generated_s']:.0f} s earlier)"
            )
            return Store(folder, sqlite_uri(folder), {**meta, "reused": True})
    print(f"  generating {grid.describe()} into {folder} ...")
    store = generate(folder, grid, template(), extra)
    m = store.meta
    print(
        f"  generated {m['runs']} runs ({m['jobs']} jobs, {m['skipped']} N/A) in {m['generated_s']:.1f} s "
        f"({m['runs'] / m['generated_s']:.0f} runs/s; the sweeper's plan of every job {m['plan_s']:.1f} s), "
        f"store {m['db_mb']:.0f} MB"
    )
    return store


# ------------------------------------------------------------------------------------------------ measure
def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Build:
    wall: float
    cpu: float  # user + system seconds of the process
    load_before: str
    load_after: str
    log_tail: str


def report_subprocess(store: Store, out: Path, work: Path) -> Build:
    """``python -m lossbench.report`` as a user runs it: a fresh process, wall time from start to exit."""
    if out.exists():
        shutil.rmtree(out)
    work.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "lossbench.report",
        "--experiment",
        EXPERIMENT,
        "--tracking-uri",
        store.uri,
        "--out",
        str(out),
    ]
    before, usage = _load(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(command, cwd=work, env=clean_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
    if proc.returncode != 0:
        raise SystemExit(
            f"benchmark: the report failed (exit status {proc.returncode}):\n  {' '.join(command)}\n"
            + "\n".join((proc.stderr + proc.stdout).splitlines()[-25:])
        )
    return Build(
        wall, cpu, before, _load(), proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    )


def check_report(out: Path, store: Store) -> str:
    """Exit when the report is incomplete or wrong for this store; else a one-line description."""
    problems = []
    for name in ("index.html", "README.md", "summary.csv", "comparisons.csv"):
        if not (out / name).is_file() or (out / name).stat().st_size == 0:
            problems.append(f"{name} missing or empty")
    rows = comparisons = 0
    if (out / "summary.csv").is_file():
        from lossbench.baselines import BASELINES, CALIBRATION_ONLY

        with open(out / "summary.csv", newline="") as f:
            table_ = list(csv.DictReader(f))
        rows = len(table_)
        # one row per setting and loss, plus one per setting with a CE run for each post-hoc baseline ranked
        # by the report's metric (the calibration-only ones are not)
        losses = [r for r in table_ if r["loss"] not in BASELINES]
        if len(losses) != store.meta["summary_rows"]:
            problems.append(f"summary.csv has {len(losses)} loss rows, expected {store.meta['summary_rows']}")
        ranked = sorted(set(BASELINES) - set(CALIBRATION_ONLY))
        setting = [k for k in table_[0] if k in ("model", "ratio", "strength")] if table_ else []
        ce = sorted(tuple(r[k] for k in setting) for r in losses if r["loss"] == "ce")
        for name in ranked:
            theirs = sorted(tuple(r[k] for k in setting) for r in table_ if r["loss"] == name)
            if theirs != ce:
                problems.append(
                    f"summary.csv has {len(theirs)} {name} rows, expected {len(ce)} (one per CE row)"
                )
        if rows != len(losses) + len(ce) * len(ranked):
            problems.append(f"summary.csv has {rows} rows, expected {len(losses) + len(ce) * len(ranked)}")
    if (out / "comparisons.csv").is_file():
        with open(out / "comparisons.csv", newline="") as f:
            comparisons = sum(1 for _ in csv.DictReader(f))
        if comparisons == 0:
            problems.append("comparisons.csv has no rows")
    figures = sorted(p.name for p in (out / "figures").glob("*.png")) if (out / "figures").is_dir() else []
    wanted = {"metric_vs_ratio.png", "heatmap_loss_ratio.png", "ece_vs_ratio.png", "reliability.png"}
    wanted |= {"per_class_recall.png"} | {f"critical_difference_{m}.png" for m in MODELS}
    if store.meta.get("strength_axis"):
        wanted.add("regularization.png")
    if wanted - set(figures):
        problems.append(f"figures missing: {sorted(wanted - set(figures))}")
    html = (out / "index.html").read_text(encoding="utf-8") if (out / "index.html").is_file() else ""
    stated = re.search(r"(\d+) finished runs with the metric", html)
    if not stated or int(stated.group(1)) != store.meta["runs"]:
        problems.append(
            f"index.html states {stated.group(1) if stated else 'no'} runs, expected {store.meta['runs']}"
        )
    if "N/A" not in html:
        problems.append("index.html shows no N/A cell")
    if problems:
        raise SystemExit(f"benchmark: the report in {out} is wrong: " + "; ".join(problems))
    return (
        f"{rows} summary rows, {comparisons} comparisons, {len(figures)} figures, {len(html) >> 10} KiB HTML"
    )


def _imports() -> float:
    """Import what a report build imports, once, so the breakdown does not charge it to the first caller."""
    start = time.perf_counter()
    import matplotlib.backends.backend_agg  # noqa: F401
    import mlflow.tracking  # noqa: F401
    import pandas  # noqa: F401
    import scikit_posthocs  # noqa: F401
    import scipy.stats  # noqa: F401
    import seaborn  # noqa: F401
    import statsmodels.stats.multitest  # noqa: F401

    import lossbench.report.build  # noqa: F401

    return time.perf_counter() - start


def breakdown(store: Store, out: Path) -> tuple[Profiler, float]:
    """build_report in this process with timers around the real calls; returns the profiler and the total."""
    import gc

    import pandas as pd
    import statsmodels.stats.multitest

    import lossbench.report.build as build
    import lossbench.report.document as document
    import lossbench.report.figures as figures
    import lossbench.report.load as load
    import lossbench.report.sections.calibration as calibration
    import lossbench.report.stats as stats

    with Profiler() as prof:
        prof.wrap(build, "build_report")
        prof.wrap(build, "load_experiment", "load.load_experiment")
        # names missing from the version measured are skipped (_read_sqlite, read_json_artifact: newer ones)
        for name in (
            "_client",
            "_experiment_id",
            "_search_all",
            "_read_sqlite",
            "_frame",
            "_sweeps",
            "_statuses",
        ):
            prof.wrap(load, name, f"load.{name}")
        prof.wrap(load, "read_json_artifact", "load.read_json_artifact")
        prof.wrap(load, "_row", "load._row (per run)")
        # MLflow's client is only made (load._client) when the store cannot be read in place: search_runs
        # pages (load._search_all, own time), artifact downloads (load.read_json_artifact, own time)
        prof.wrap(build.ReportBuilder, "__init__", "ReportBuilder() (finished, summarize, palette)")
        for name in (
            "intro",
            "findings",
            "glance",
            "accounting",
            "main_tables",
            "regularization",
            "significance",
            "calibration",
            "per_class",
            "na_matrix",
            "files",
        ):
            prof.wrap(build.ReportBuilder, name, f"section {name}")
        prof.wrap(calibration, "_reliability", "calibration._reliability (per run)")
        for name in (
            "summarize",
            "blocks",
            "against_baseline",
            "paired_difference",
            "friedman",
            "pairwise_signed_rank",
            "signed_rank_p",
            "pooled_reliability",
        ):
            prof.wrap(stats, name, f"stats.{name}")
        prof.wrap(statsmodels.stats.multitest, "multipletests", "statsmodels multipletests")
        prof.wrap(gc, "collect", "gc.collect")
        for name in (
            "lines_with_bands",
            "heatmaps",
            "reliability",
            "per_class_recall",
            "critical_difference",
        ):
            prof.wrap(figures, name, f"figures.{name}")
        prof.wrap(figures, "_save", "savefig (PNG)")
        prof.wrap(document, "to_html", "document.to_html")
        prof.wrap(document, "to_markdown", "document.to_markdown")
        prof.wrap(pd.DataFrame, "to_csv", "DataFrame.to_csv")
        start = time.perf_counter()
        build.build_report(EXPERIMENT, tracking_uri=store.uri, out=out)
        total = time.perf_counter() - start
    return prof, total


def top_own(prof: Profiler, n: int) -> list[list[str]]:
    """The calls with the most own time (total minus the timed calls inside), summed over call paths."""
    own: dict[str, float] = {}
    calls: dict[str, int] = {}
    for path, total in prof.total.items():
        children = sum(t for p, t in prof.total.items() if p.rpartition("/")[0] == path)
        label = path.rpartition("/")[2]
        own[label] = own.get(label, 0.0) + total - children
        calls[label] = calls.get(label, 0) + prof.calls[path]
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:n]
    return [[label, str(calls[label]), f"{seconds:.2f}"] for label, seconds in ranked]


def cprofile_build(store: Store, out: Path, n: int) -> str:
    """build_report under cProfile: the top functions by own time and the lossbench ones by cumulative."""
    import lossbench.report.build as build

    profiler = cProfile.Profile()
    profiler.enable()
    build.build_report(EXPERIMENT, tracking_uri=store.uri, out=out)
    profiler.disable()
    text = io.StringIO()
    st = pstats.Stats(profiler, stream=text)
    st.sort_stats("tottime").print_stats(n)
    st.sort_stats("cumulative").print_stats(r"lossbench/report", n)
    lines = [ln for ln in text.getvalue().splitlines() if ln.strip()]
    site = re.compile(r"\S*/(site-packages|lib/python3\.\d+)/")
    return "\n".join(site.sub("", ln.replace(str(REPO) + "/", "")) for ln in lines)


# ---------------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 200-run store only, once, no cProfile")
    parser.add_argument("--sizes", help="comma-separated store sizes in runs (default 1000,10000; quick 200)")
    parser.add_argument(
        "--repeats", type=int, help="best of this many report builds (default 3 up to 2,000 runs, else 1)"
    )
    parser.add_argument(
        "--strengths",
        type=int,
        choices=range(1, len(STRENGTHS) + 1),
        help=f"regularization strengths swept (default 1 up to {MANY_RUNS} runs, else {len(STRENGTHS)}); "
        "the rest of the size is seeds",
    )
    parser.add_argument("--store-dir", type=Path, help="keep the generated stores here and reuse them")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the in-process timers and cProfile")
    parser.add_argument(
        "--no-cprofile", action="store_true", help="skip the cProfile build at the largest size"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in (args.sizes or ("200" if args.quick else "1000,10000")).split(",")]
    extra = ["report.enabled=false"] if has_config_key("report.enabled") else []

    print("report_build: python -m lossbench.report on synthetic MLflow stores cloned from a real sweep")
    print(machine_line())
    grids = [Grid.for_size(n, args.strengths) for n in sizes]
    with tempfile.TemporaryDirectory(prefix="lossbench-bench-") as tmp:
        root = Path(tmp)
        store_dir = args.store_dir.resolve() if args.store_dir else root / "stores"
        store_dir.mkdir(parents=True, exist_ok=True)
        cached: list[Template] = []

        def template() -> Template:
            if not cached:
                cached.append(template_sweep(store_dir / "template", extra))
            return cached[0]

        results = []
        import_s = None
        profile_text = None
        for grid in grids:
            print(f"\nsize {grid.size}: {grid.describe()}")
            store = ensure_store(store_dir, grid, template, extra)
            repeats = args.repeats or (1 if args.quick or grid.size > MANY_RUNS else 3)
            builds = []
            for rep in range(repeats):
                out = root / f"report-{grid.size}"
                b = report_subprocess(store, out, root / "work")
                what = check_report(out, store)
                builds.append(b)
                print(
                    f"  python -m lossbench.report ({rep + 1}/{repeats}): {b.wall:6.2f} s, cpu {b.cpu:.1f} s "
                    f"[load {b.load_before} -> {b.load_after}]  {what}"
                )
            row = {"grid": grid, "store": store, "builds": builds}
            if not args.no_breakdown:
                if import_s is None:
                    import_s = _imports()
                out = root / f"report-{grid.size}-inprocess"
                before = _load()
                prof, total = breakdown(store, out)
                check_report(out, store)
                row.update(prof=prof, inproc=total, inproc_load=(before, _load()))
                print(f"  in-process build_report with timers: {total:.2f} s  [load {before} -> {_load()}]")
                if grid is grids[-1] and not (args.quick or args.no_cprofile):
                    print("  in-process build_report under cProfile ...")
                    profile_text = cprofile_build(store, root / f"report-{grid.size}-cprofile", 25)
            results.append(row)

    rows = []
    for r in results:
        m = r["store"].meta
        best = min(r["builds"], key=lambda b: b.wall)
        target = target_for(m["size"])
        rows.append(
            [
                f"{m['runs']} runs ({m['jobs']} jobs, {m['skipped']} N/A)",
                f"{m['generated_s']:.0f}" + (" (cached)" if m.get("reused") else ""),
                f"{best.wall:.2f}",
                f"{best.cpu:.1f}",
                f"{len(r['builds'])}",
                f"{r['inproc']:.2f}" if "inproc" in r else "",
                f"{target:g}",
                f"{best.wall / target:.2f}",
                best.load_before,
            ]
        )
    print()
    print(
        table(
            "Report build: python -m lossbench.report in a fresh process, best of R (in-process: "
            "build_report alone, imports done, with timers)",
            [
                "store",
                "generate (s)",
                "report (s)",
                "cpu (s)",
                "R",
                "in-process (s)",
                "target (s)",
                "ratio",
                "load avg at start",
            ],
            rows,
        )
    )
    for r in results:
        if "prof" not in r:
            continue
        m = r["store"].meta
        print()
        print(
            table(
                f"In-process breakdown at {m['runs']} runs: build_report with timers, {r['inproc']:.2f} s "
                f"(own = total minus the timed calls inside; imports before: {import_s:.2f} s)",
                ["call", "calls", "total ms", "own ms"],
                r["prof"].rows(per=1),
            )
        )
        print()
        print(
            table(f"Top own time at {m['runs']} runs (s)", ["call", "calls", "own s"], top_own(r["prof"], 12))
        )
    if profile_text:
        print()
        print(f"cProfile of build_report at {results[-1]['store'].meta['runs']} runs (paths shortened):")
        print(profile_text)
    print()
    for r in results:
        m, best = r["store"].meta, min(b.wall for b in r["builds"])
        name = f"report_build ({m['runs']} runs" + (", target of 1,000 runs)" if m["size"] < 1000 else ")")
        print(verdict(name, best, target_for(m["size"]), " s", higher_is_better=False))


if __name__ == "__main__":
    main()
