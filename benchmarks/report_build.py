"""Report build time on synthetic MLflow stores of 1,000 and 10,000 runs, cloned from a real sweep.

Targets: <= 15 s at 1,000 runs, <= 60 s at 10,000 runs (``python -m lossbench.report``, a fresh process).

What it does, in one invocation:

- template: a real tiny sweep run as a user runs it (``python -m lossbench``, a fresh process, a fresh
  temporary SQLite store): logreg, torch_linear and torch_mlp x ce, focal at rho = 10 on digits (5 runs, one
  N/A job). Its FINISHED child runs (one per model) and its parent run are read back with ``MlflowClient``:
  params, tags, metrics with the epoch curves, artifacts (config.yaml, per_class_test.csv,
  reliability_test.json, confusion_matrix_test.png) and the parent's sweep_jobs.json.
- synthetic store per size: a sweep of the ``imbalance`` kind (3 models x 9 losses x rho in 1, 10, 50, 100
  [x 5 regularization strengths above 2,000 runs] x as many seeds as reach the size), written the way a sweep
  writes it. Its jobs are Hydra's own expansion of an experiment file (``lossbench.sweep.expand_jobs``); the
  parent run is made by the real ``SweepCallback.on_multirun_start`` and closed by the real
  ``Tracker.finish_parent`` (sweep_jobs.json: one status per job, in the schema the template sweep wrote:
  status, fingerprint, job description, run_id or reason). Each job's config is the composed config of its
  (model, loss) with its ratio, strength and seed set (a sample of jobs is checked against a full Hydra
  compose: same params, same fingerprint), so params, fingerprint and job description are lossbench's own;
  N/A jobs are the combinations ``lossbench.compat`` rejects, with its reason (focal, ldam, hinge, mse on
  logreg). Each runnable job is one child run cloned from its model's template: tags as ``Tracker.start`` and
  ``finish`` set them (fingerprint, sweep id, parent), params of its config plus the class counts of its ratio
  (from ``lossbench.pipeline.prepare``), metrics perturbed plausibly (a loss effect growing with log rho, a
  per-(setting, seed) effect shared by the losses, per-run noise; calibration metrics scaled), the epoch
  curves, and the artifacts (hard links where the file is identical, config.yaml written per run). Writes are
  batched: one ``create_run`` with the start tags, one ``log_batch`` with params, metrics and finish tags,
  one ``set_terminated``; ``PRAGMA synchronous=OFF`` on the generating connections only (as MLflow's own
  bulk import does; nothing of it persists in the file). ``--store-dir`` keeps the stores for next time.
- measure: ``python -m lossbench.report --experiment ... --tracking-uri ... --out ...`` in a fresh process,
  wall time, best of R; the output is checked (index.html, README.md, summary.csv with one row per setting and
  loss, comparisons.csv, the figures, the run count the report states), so a broken report cannot pass as
  fast. Then, in this process, ``build_report`` once more with timers around the real calls (load, search_runs
  pages, artifact downloads, statistics, figures, HTML/Markdown) and, at the largest size, under cProfile.

    python benchmarks/report_build.py            # 1,000 and 10,000 runs: ~30 min on 2 cores, of which
                                                 # generating the stores ~12 min (1k: ~1 min, 10k: ~11 min)
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
GENERATOR = 1  # bump when the synthetic store changes: cached stores of another version are regenerated

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
FINISH_TAGS = ("lossbench.realisation", "lossbench.device", "lossbench.probability_metrics")

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


def generate(folder: Path, grid: Grid, tmpl: Template) -> Store:
    """A synthetic sweep of ``grid`` written to a fresh SQLite store in ``folder``."""
    import numpy as np
    import yaml
    from hydra import compose, initialize_config_dir
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient
    from mlflow.utils.file_utils import local_file_uri_to_path

    import lossbench.sweep as sweep_mod
    from lossbench.compat import check_config, supported_losses
    from lossbench.config import config_dir, fingerprint, flatten, to_container
    from lossbench.errors import ConfigError
    from lossbench.pipeline import prepare
    from lossbench.tracking import (
        _MAX_ENTITIES,
        _MAX_METRICS,
        _MAX_PARAMS,
        TAG_FINGERPRINT,
        TAG_REALISATION,
        TAG_SWEEP_ID,
        Tracker,
        _param_value,
        _yaml,
        run_name,
    )

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    uri = sqlite_uri(folder)
    started = time.perf_counter()
    select = write_experiment(folder / "conf", "report_build_synthetic", grid.params(), EXPERIMENT)
    common = [*select, f"tracking.uri={uri}"]
    sweep_dir = folder / "sweep"
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        launcher = compose(
            config_name="config",
            overrides=[*common, f"hydra.sweep.dir={sweep_dir}"],
            return_hydra_config=True,
        )
        base = {
            (m, x): to_container(
                compose(config_name="config", overrides=[*common, f"model={m}", f"loss={x}"])
            )
            for m in MODELS
            for x in LOSSES
        }
        jobs = sweep_mod.expand_jobs(launcher)
        # the shortcut below (a composed config per (model, loss), ratio / strength / seed set) must give what
        # Hydra gives the job: checked on a spread of jobs
        rng = np.random.default_rng(0)
        sample = sorted(
            {0, len(jobs) - 1, *rng.choice(len(jobs), size=min(6, len(jobs)), replace=False).tolist()}
        )
        checks = {
            n: to_container(compose(config_name="config", overrides=[*jobs[n], *select[1:]])) for n in sample
        }

    def job_config(overrides: list[str]) -> dict:
        o = dict(x.split("=", 1) for x in overrides)
        c = json.loads(json.dumps(base[o["model"], o["loss"]]))  # a deep copy
        c["imbalance"]["ratio"] = float(o["imbalance.ratio"])
        if "regularization.strength" in o:
            c["regularization"]["strength"] = float(o["regularization.strength"])
        c["seed"] = int(o["seed"])
        return c

    for n, real in checks.items():
        ours = job_config(jobs[n])
        if flatten(ours) != flatten(real) or fingerprint(ours) != fingerprint(real):
            diff = {
                k: (v, flatten(real).get(k)) for k, v in flatten(ours).items() if flatten(real).get(k) != v
            }
            raise SystemExit(f"benchmark: the synthetic config of job {n} differs from Hydra's: {diff}")

    # class counts per ratio, as the pipeline computes them (seed 0); the ratio is what moves them
    counts = {}
    for r in RATIOS:
        c = json.loads(json.dumps(base["logreg", "ce"]))
        c["imbalance"]["ratio"] = float(r)
        counts[float(r)] = prepare(c).class_counts

    def dump(c: dict) -> str:
        return yaml.safe_dump({k: v for k, v in c.items() if k != "hydra"}, sort_keys=False)

    fast_yaml = all(dump(c) == _yaml(c) for c in base.values())  # config.yaml as Tracker.start writes it

    perturb = Perturb()
    statuses: list[dict] = []
    with _cwd(folder), _sqlite_no_fsync():
        sweep_mod.SweepCallback().on_multirun_start(launcher)  # the store, the experiment, the parent run
        info = sweep_mod.read_sweep(sweep_dir)
        tracker = Tracker(uri, EXPERIMENT)
        client: MlflowClient = tracker.client
        print(f"  {len(jobs)} jobs (Hydra's expansion); parent run {info['parent_run_id']}; writing runs ...")
        na: dict[tuple, str | None] = {}
        writing = last = time.perf_counter()
        written = 0
        for num, overrides in enumerate(jobs):
            c = job_config(overrides)
            fp = fingerprint(c)
            desc = sweep_mod.job_description(c)
            key = (desc["model"], desc["loss"], desc["strength"])
            if key not in na:
                try:
                    check_config(c)
                    na[key] = None
                except ConfigError as e:
                    na[key] = str(e)
            if na[key] is not None:
                statuses.append({"status": "skipped", "fingerprint": fp, "job": desc, "reason": na[key]})
                continue
            t = tmpl.runs[desc["model"]]
            tags = {
                k: v
                for k, v in t.tags.items()
                if k not in FINISH_TAGS and k not in ("mlflow.runName", TAG_FINGERPRINT)
            }
            tags.update(
                {TAG_FINGERPRINT: fp, "mlflow.parentRunId": info["parent_run_id"], TAG_SWEEP_ID: info["id"]}
            )
            run = client.create_run(tracker.experiment_id, run_name=run_name(c), tags=tags)
            run_id = run.info.run_id
            cc = counts[desc["ratio"]]
            params = [
                Param(k, _param_value(v))
                for k, v in flatten({k: v for k, v in c.items() if k != "hydra"}).items()
            ]
            params += [Param(f"class_counts.{k}", json.dumps(v)) for k, v in cc.items()]
            params.append(Param("data.class_names", t.params["data.class_names"]))
            now = int(time.time() * 1000)
            values = perturb.metrics(t.metrics, desc, cc)
            metrics = [Metric(k, float(v), now, 0) for k, v in values.items()]
            for name, history in t.curves.items():
                metrics += [Metric(name, float(v), now, step) for step, v in history]
            end_tags = [RunTag(TAG_REALISATION, supported_losses(desc["model"])[desc["loss"]])]
            end_tags += [RunTag(k, t.tags[k]) for k in FINISH_TAGS[1:] if k in t.tags]
            # one call (one SQLite transaction) for params, tags and metrics, within MLflow's limits
            first = _MAX_ENTITIES - len(params) - len(end_tags)
            if len(params) > _MAX_PARAMS:
                for i in range(0, len(params), _MAX_PARAMS):
                    client.log_batch(run_id, params=params[i : i + _MAX_PARAMS])
                params = []
                first = _MAX_ENTITIES - len(end_tags)
            client.log_batch(run_id, metrics=metrics[:first], params=params, tags=end_tags)
            for i in range(first, len(metrics), _MAX_METRICS):
                client.log_batch(run_id, metrics=metrics[i : i + _MAX_METRICS])
            art = Path(local_file_uri_to_path(run.info.artifact_uri))
            art.mkdir(parents=True, exist_ok=True)
            for src in t.artifacts.iterdir():
                if src.name == "config.yaml":
                    (art / src.name).write_text(dump(c) if fast_yaml else _yaml(c))
                elif src.is_file():
                    _link(src, art / src.name)
            client.set_terminated(run_id, "FINISHED")
            statuses.append({"status": "finished", "fingerprint": fp, "job": desc, "run_id": run_id})
            written += 1
            if time.perf_counter() - last > 15:
                last = time.perf_counter()
                elapsed = last - writing
                print(
                    f"    job {num + 1}/{len(jobs)}: {written} runs written, {written / elapsed:.0f} runs/s, "
                    f"~{(len(jobs) - num - 1) * elapsed / (num + 1):.0f} s left",
                    flush=True,
                )
        schema = {st["status"]: (list(st), list(st["job"])) for st in tmpl.statuses}
        for st in statuses:  # the template sweep wrote the same keys, in the same order
            if st["status"] in schema and (list(st), list(st["job"])) != schema[st["status"]]:
                raise SystemExit(
                    f"benchmark: status {st} differs from the real schema {schema[st['status']]}"
                )
        counts_by = {s: sum(1 for st in statuses if st["status"] == s) for s in sweep_mod.STATUSES}
        tracker.finish_parent(info["parent_run_id"], counts_by, statuses, missing=0)
    settings = {
        (st["job"]["model"], st["job"]["loss"], st["job"]["ratio"], st["job"]["strength"])
        for st in statuses
        if st["status"] == "finished"
    }
    meta = {
        **grid.key(),
        "jobs": len(jobs),
        "runs": counts_by["finished"],
        "skipped": counts_by["skipped"],
        "summary_rows": len(settings),
        "models": len(MODELS),
        "strength_axis": len(grid.strengths) > 1,
        "generated_s": time.perf_counter() - started,
        "db_mb": (folder / "mlflow.db").stat().st_size / 2**20,
    }
    (folder / "synthetic.json").write_text(json.dumps(meta, indent=1))
    return Store(folder, uri, meta)


def ensure_store(store_dir: Path, grid: Grid, template: Callable[[], Template]) -> Store:
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
    store = generate(folder, grid, template())
    m = store.meta
    print(
        f"  generated {m['runs']} runs ({m['jobs']} jobs, {m['skipped']} N/A) in {m['generated_s']:.1f} s "
        f"({m['runs'] / m['generated_s']:.0f} runs/s), store {m['db_mb']:.0f} MB"
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
        with open(out / "summary.csv", newline="") as f:
            rows = sum(1 for _ in csv.DictReader(f))
        if rows != store.meta["summary_rows"]:
            problems.append(f"summary.csv has {rows} rows, expected {store.meta['summary_rows']}")
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
    from mlflow.tracking import MlflowClient

    import lossbench.report.build as build
    import lossbench.report.document as document
    import lossbench.report.figures as figures
    import lossbench.report.load as load
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
        prof.wrap(MlflowClient, "search_runs", "mlflow search_runs (page)")
        prof.wrap(MlflowClient, "download_artifacts", "mlflow download_artifacts")
        prof.wrap(build.ReportBuilder, "__init__", "ReportBuilder() (finished, summarize, palette)")
        for name in (
            "findings",
            "glance",
            "accounting",
            "main_tables",
            "regularization",
            "significance",
            "calibration",
            "per_class",
            "na_matrix",
        ):
            prof.wrap(build.ReportBuilder, name, f"section {name}")
        prof.wrap(build, "_reliability", "build._reliability (per run)")
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
            store = ensure_store(store_dir, grid, template)
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
