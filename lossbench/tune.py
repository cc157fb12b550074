"""Tuning with budget parity: every cell of a sweep chooses its own knobs with the same number of trials.

A *cell* is one job of the grid without its seed and without the values of the knobs being tuned: (data,
model, loss, imbalance, rebalance, regularization, training settings). Its knobs are the loss's own (the
``tune:`` node of ``conf/loss/<name>.yaml``) and the shared ones of ``tune.space`` (``train.lr`` for torch
models, ``regularization.strength`` where the regularization has one), each a range ``{low, high, log}`` or
a list ``{choices: [...]}``.

Per cell, one Optuna study (seeded TPE sampler; the first trial is the cell's default config when it lies in
the space) runs ``tune.trials`` trials. A trial trains the cell's config with the suggested knobs at the
cell's first seed, on the training split, early-stopped on the validation split, and is scored on the
validation split only: the test split it is handed is sealed (:class:`SealedSplit` raises on any use). The
studies live in one Optuna journal file beside the MLflow store, so an interrupted tuning resumes with the
trials it finished (a trial a killed process left running is marked failed and run again).

In MLflow each cell has a tuning parent run (child of the sweep's parent) and one child run per trial
(role ``trial``; val metrics only). The sweep then runs the chosen config of every cell over the seeds, as
ordinary runs tagged ``lossbench.variant=tuned`` with the trial they came from, next to the cell's default
config (``lossbench.variant=default``, unless ``tune.defaults=false``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from lossbench.errors import ConfigError

log = logging.getLogger("lossbench")

STORAGE_FILE = "lossbench-optuna.journal"
# the tuning's own settings: what a trial computes does not depend on them (not in the fingerprint)
SETTINGS = ("trials", "metric", "seed", "defaults", "storage", "space")


class SealedSplitTouched(RuntimeError):
    """Raised by :class:`SealedSplit`: tuning code read the test split."""


class SealedSplit:
    """Stands in for the test split during tuning: any use of it raises :class:`SealedSplitTouched`."""

    def _refuse(self, *args, **kwargs):
        raise SealedSplitTouched("the test split was used during tuning: trials may use train and val only")

    __array__ = __getitem__ = __len__ = __iter__ = __array_function__ = __array_ufunc__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __matmul__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __float__ = __int__ = __index__ = _refuse

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        self._refuse()


# --- the search space ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Knob:
    """One tuned key: a range (``low``..``high``, log-scaled when ``log``) or a list of ``choices``."""

    key: str  # dotted config key, e.g. loss.gamma, train.lr
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        return trial.suggest_float(self.key, self.low, self.high, log=self.log)

    def contains(self, value) -> bool:
        if self.choices is not None:
            return value in self.choices
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and not (self.log and value <= 0)
        )

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.key} in {list(self.choices)}"
        return f"{self.key} in [{self.low:g}, {self.high:g}]{' (log)' if self.log else ''}"


def _knob(key: str, spec, where: str) -> Knob:
    """A knob from its yaml form, checked: ``{low, high, log}`` or ``{choices: [...]}``."""
    allowed = "must be {low: number, high: number, log: true|false} or {choices: [values]}"
    if not isinstance(spec, Mapping):
        raise ConfigError(where, spec, allowed)
    spec = dict(spec)
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) - {"choices"} or not isinstance(choices, (list, tuple)) or not choices:
            raise ConfigError(where, spec, allowed)
        if not all(v is None or isinstance(v, (bool, int, float, str)) for v in choices):
            raise ConfigError(where, spec, "choices must be numbers, strings, true/false or null (Optuna's)")
        return Knob(key, choices=tuple(choices))
    if set(spec) - {"low", "high", "log"} or not {"low", "high"} <= set(spec):
        raise ConfigError(where, spec, allowed)
    low, high, log_ = spec["low"], spec["high"], spec.get("log", False)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not numeric or not all(math.isfinite(v) for v in (low, high)) or not low < high:
        raise ConfigError(where, spec, "must have numbers low < high")
    if not isinstance(log_, bool):
        raise ConfigError(f"{where}.log", log_, "must be true or false")
    if log_ and low <= 0:
        raise ConfigError(where, spec, "a log-scaled range needs low > 0")
    return Knob(key, low=float(low), high=float(high), log=log_)


def _lookup(c: Mapping, dotted: str):
    node = c
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None, False
        node = node[part]
    return node, True


def _assign(c: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = c
    for part in parents:
        node = node[part]
    node[leaf] = value


def loss_space(cfg) -> dict:
    """The loss's own search space: the ``tune:`` node of its yaml (``loss.tune``), from the composed config
    (the plain config drops it: it is not a loss parameter)."""
    from omegaconf import OmegaConf

    loss = cfg.get("loss") if isinstance(cfg, Mapping) or hasattr(cfg, "get") else None
    space = loss.get("tune") if loss is not None else None
    if space is None:
        return {}
    return OmegaConf.to_container(space, resolve=True) if OmegaConf.is_config(space) else dict(space)


def knobs_for(c: Mapping, own: Mapping) -> list[Knob]:
    """The knobs of a cell: the loss's own (``own``, from :func:`loss_space`) and the shared ``tune.space``
    keys that apply (``train.*``: torch models only; a log-scaled knob whose value is 0 is off, and tuning
    does not switch it on)."""
    from lossbench.models import MODELS

    loss = c["loss"]["name"]
    knobs = []
    for name, spec in (own or {}).items():
        where = f"loss.tune.{name}"
        if name == "name" or name not in c["loss"]:
            raise ConfigError(
                where,
                spec,
                f"loss '{loss}' has no parameter '{name}' to tune (its parameters: "
                f"{', '.join(k for k in c['loss'] if k != 'name') or 'none'})",
            )
        knobs.append(_knob(f"loss.{name}", spec, where))
    backend = MODELS[c["model"]["name"]].backend
    for key, spec in shared_space(c["tune"].get("space")).items():
        where = f"tune.space.{key}"
        value, present = _lookup(c, key)
        if key.split(".")[0] in ("tune", "tracking", "report", "seed", "loss"):
            raise ConfigError(
                where,
                spec,
                "must name a key of the run's config (e.g. train.lr, regularization.strength); the loss's "
                "own knobs go in the tune: node of conf/loss/<name>.yaml",
            )
        if not present:
            continue  # a key of other models or regularizations (cells() refuses one that no job has)
        knob = _knob(key, spec, where)
        if key.startswith("train.") and backend != "torch":
            continue  # scikit-learn models have no training settings
        if knob.log and isinstance(value, (int, float)) and value <= 0:
            continue  # off (e.g. weight decay 0 under dropout)
        knobs.append(knob)
    return knobs


def _is_spec(node) -> bool:
    return isinstance(node, Mapping) and bool({"low", "high", "choices"} & set(node))


def shared_space(space, prefix: str = "") -> dict:
    """``tune.space`` as dotted key -> spec: nested mappings down to the first node with low/high/choices;
    a null drops a knob."""
    flat = {}
    for key, node in (space or {}).items():
        dotted = f"{prefix}{key}"
        if node is None:
            continue
        if _is_spec(node) or not isinstance(node, Mapping):
            flat[dotted] = node
        else:
            flat.update(shared_space(node, dotted + "."))
    return flat


# --- settings -------------------------------------------------------------------------------------------


def settings(c: Mapping) -> dict:
    """``tune.*`` checked; raises ConfigError naming the key."""
    from lossbench.metrics import metric_info
    from lossbench.validate import number

    t = c.get("tune") or {}
    unknown = sorted(set(t) - set(SETTINGS))
    if unknown:
        key = unknown[0]
        raise ConfigError(f"tune.{key}", t[key], f"is not a tuning setting ({', '.join(SETTINGS)})")
    number(c, "tune.trials", low=0, integer=True)
    number(c, "tune.seed", low=0, integer=True)
    if not isinstance(t.get("defaults"), bool):
        raise ConfigError("tune.defaults", t.get("defaults"), "must be true or false")
    metric = t.get("metric")
    try:
        info = metric_info(f"val/{metric}")
    except (KeyError, ValueError) as e:
        raise ConfigError("tune.metric", metric, f"must be a validation metric name ({e})") from e
    if t.get("storage") is not None and not isinstance(t.get("storage"), str):
        raise ConfigError("tune.storage", t.get("storage"), "must be a file path or null")
    space = t.get("space") or {}
    if not isinstance(space, Mapping):
        raise ConfigError("tune.space", space, "must map config keys to ranges or choices")
    return {**t, "higher": bool(info.higher_is_better)}


def storage_path(c: Mapping, uri: str) -> Path:
    """Where the studies are kept: ``tune.storage``, else beside a SQLite store's file (``experiments/``
    for any other store)."""
    configured = c["tune"].get("storage")
    if configured:
        return Path(configured).expanduser()
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).expanduser().resolve().parent / STORAGE_FILE
    return Path("experiments") / STORAGE_FILE


# --- cells ----------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """The jobs of one configuration without its seed, and what tuning it needs."""

    id: str
    knobs: list[Knob]
    jobs: list = field(default_factory=list)  # lossbench.sweep.plan.Job, default config, one per seed

    @property
    def base(self) -> dict:
        return self.jobs[0].c

    @property
    def seed(self) -> int:
        """The seed the trials train at: the cell's first."""
        return min(int(j.c["seed"]) for j in self.jobs)

    def label(self) -> str:
        from lossbench.data import dataset_label

        c = self.base
        return (
            f"data={dataset_label(c['data'])} model={c['model']['name']} "
            f"loss={c['loss']['name']} ratio={float(c['imbalance']['ratio']):g}"
        )


def cell_id(c: Mapping, knobs: list[Knob], t: Mapping) -> str:
    """What identifies a study: the config without seed and knob values, and what the tuning searches."""
    from lossbench.config import fingerprint

    body = copy.deepcopy(dict(c))
    body["seed"] = None
    for knob in knobs:
        _assign(body, knob.key, None)
    searched = {
        "knobs": [knob.describe() for knob in knobs],
        "metric": t["metric"],
        "seed": int(t["seed"]),
    }
    blob = json.dumps([fingerprint(body), searched], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cells(jobs: list) -> list[Cell]:
    """The runnable jobs grouped into cells (N/A jobs have none). Refuses a knob that the grid also sweeps."""
    t = settings(jobs[0].c)
    found: dict[str, Cell] = {}
    for job in jobs:
        if job.status is not None:
            continue
        knobs = knobs_for(job.c, loss_space(job.cfg))
        cid = cell_id(job.c, knobs, t)
        cell = found.setdefault(cid, Cell(cid, knobs))
        cell.jobs.append(job)
    runnable = [j for j in jobs if j.status is None]
    for key, spec in shared_space(t.get("space")).items():
        if runnable and not any(_lookup(j.c, key)[1] for j in runnable):
            raise ConfigError(
                f"tune.space.{key}",
                spec,
                "names a key that no job of this sweep has (e.g. train.lr, regularization.strength)",
            )
    for cell in found.values():
        seeds = [int(j.c["seed"]) for j in cell.jobs]
        if len(set(seeds)) != len(seeds):
            values: dict[str, list[str]] = {}
            for j in cell.jobs:
                for o in j.overrides:
                    key, _, value = o.partition("=")
                    if key in {k.key for k in cell.knobs} and value not in values.setdefault(key, []):
                        values[key].append(value)
            key = next(iter(values), cell.knobs[0].key if cell.knobs else "tune.space")
            raise ConfigError(
                key,
                ",".join(values.get(key, [])) or "swept",
                "it is swept and tuned at once (tune.space, or the tune: node of the loss's yaml), so the "
                "sweep would run the same cell twice",
                "Sweep it or tune it: drop it from the grid, or from the search space ("
                + (
                    f"~{key.replace('loss.', 'loss.tune.', 1)}"
                    if key.startswith("loss.")
                    else f"tune.space.{key}=null"
                )
                + ").",
            )
    return list(found.values())


# --- trials ---------------------------------------------------------------------------------------------


def trial_config(cell: Cell, values: Mapping, workers: int = 1) -> dict:
    """The cell's config at its trial seed with the knob values set (floats stay floats)."""
    from lossbench.config import to_container
    from lossbench.runtime import torch_threads

    c = copy.deepcopy(cell.base)
    c["seed"] = cell.seed
    for key, value in values.items():
        _assign(c, key, value)
    train = c.get("train")
    if isinstance(train, dict) and train.get("threads", "auto") == "auto":
        train["threads"] = torch_threads("auto", workers)
    return to_container(c)


def validation_score(c: dict, metric: str) -> tuple[dict, object]:
    """Train ``c`` and score it on the validation split only (the test split sealed). Returns the val
    metrics and the fit."""
    from lossbench.pipeline import build, prepare, validation_metrics

    prepared = prepare(c)
    sealed = replace(prepared, X_test=SealedSplit(), y_test=SealedSplit())
    model = build(sealed)
    fit = model.fit(sealed.X_fit, sealed.y_fit, sealed.X_val, sealed.y_val)
    return validation_metrics(sealed, model), fit


def _sampler_seed(cid: str, seed: int) -> int:
    return int(hashlib.sha256(f"{cid}:{seed}".encode()).hexdigest()[:8], 16)


def _storage(path: Path):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class Chosen:
    """A cell's choice: the best trial's knob values (empty: the cell has no knobs)."""

    cell: str
    values: dict
    trial: int | None = None
    trial_run: str | None = None
    value: float | None = None
    trials: int = 0


def tune_cell(cell: Cell, ctx: dict) -> Chosen:
    """Run the cell's study up to ``tune.trials`` complete trials (resuming a stored one); its choice."""
    import optuna
    from optuna.trial import TrialState

    from lossbench.data import dataset_label
    from lossbench.sweep.jobs import clock
    from lossbench.tracking import (
        TAG_CELL,
        TAG_FINGERPRINT,
        TAG_KNOBS,
        TAG_ROLE,
        TAG_SWEEP_ID,
        TAG_TRIAL,
    )

    _quiet_optuna()
    ctx = {**ctx, "cell_started": time.time()}
    t, tracker = ctx["settings"], ctx["tracker"]()
    budget = int(t["trials"])
    if not cell.knobs or budget == 0:
        _cells_done(ctx, trained=False)
        return Chosen(cell.id, {})
    direction = "maximize" if t["higher"] else "minimize"
    sampler = optuna.samplers.TPESampler(
        seed=_sampler_seed(cell.id, int(t["seed"])), n_startup_trials=max(3, budget // 4)
    )
    study = optuna.create_study(
        study_name=f"{ctx['experiment']}/{cell.id}",
        storage=_storage(ctx["storage"]),
        sampler=sampler,
        direction=direction,
        load_if_exists=True,
    )
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # left by a killed process: complete when its MLflow run was (killed between the two writes), else
        # failed, and tried again
        value = tracker.trial_value(stale.user_attrs.get("mlflow_run_id"))
        if value is None:
            study.tell(stale.number, state=TrialState.FAIL)
        else:
            study.tell(stale.number, value)
    complete = lambda: study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))  # noqa: E731
    done = len(complete())
    where = f"[cell {ctx['num']}/{ctx['cells']}] {cell.label()}"
    parent = None
    if done < budget:
        if not study.trials:
            defaults = {k.key: (k, _lookup(cell.base, k.key)[0]) for k in cell.knobs}
            start = {key: value for key, (knob, value) in defaults.items() if knob.contains(value)}
            if start:
                study.enqueue_trial(start)  # the first trial: the cell's defaults (those in the space)
        parent = tracker.start_parent(
            name=f"tune-{cell.base['model']['name']}-{cell.base['loss']['name']}-"
            f"rho{float(cell.base['imbalance']['ratio']):g}",
            tags={
                TAG_ROLE: "tuning",
                TAG_CELL: cell.id,
                TAG_SWEEP_ID: ctx["sweep_id"],
                "mlflow.parentRunId": ctx["parent"],
            },
            params={
                "model.name": cell.base["model"]["name"],
                "loss.name": cell.base["loss"]["name"],
                "imbalance.ratio": float(cell.base["imbalance"]["ratio"]),
                "data.label": dataset_label(cell.base["data"]),
                "tune.trials": budget,
                "tune.metric": t["metric"],
                "tune.seed": int(t["seed"]),
                "tune.space": json.dumps([k.describe() for k in cell.knobs]),
                "tune.trial_seed": cell.seed,
            },
        )
        names = ", ".join(k.key for k in cell.knobs)
        log.info("%s: tuning %s with %d trials (%d stored)", where, names, budget, done)
        attempts, began = 0, time.time()
        while done < budget and attempts < 3 * budget:
            attempts += 1
            trial = study.ask()
            values = {k.key: k.suggest(trial) for k in cell.knobs}
            c = trial_config(cell, values, ctx.get("workers", 1))
            from lossbench.config import fingerprint
            from lossbench.tracking import run_name

            # named apart from the final runs in the MLflow UI (tracking.* is not in the fingerprint)
            c["tracking"] = {**c["tracking"], "run_name": f"trial{trial.number}-{run_name(c)}"}

            run_id = tracker.start(
                c,
                parent_run_id=parent,
                extra_tags={
                    TAG_ROLE: "trial",
                    TAG_CELL: cell.id,
                    TAG_TRIAL: str(trial.number),
                    TAG_KNOBS: json.dumps(values),
                    TAG_SWEEP_ID: ctx["sweep_id"],
                    # not the fingerprint of a final run: a trial never resumes one
                    TAG_FINGERPRINT: f"trial-{fingerprint(c)}",
                },
            )
            trial.set_user_attr("mlflow_run_id", run_id)
            try:
                metrics, fit = validation_score(c, t["metric"])
            except ConfigError as e:  # a knob combination this config refuses: a failed trial
                tracker.fail(run_id, c, e)
                study.tell(trial, state=TrialState.FAIL)
                log.warning("%s trial %d failed: %s", where, trial.number, e)
                continue
            if f"val/{t['metric']}" not in metrics:
                from lossbench.errors import CommandError

                raise CommandError(
                    f"tune.metric={t['metric']!r} is invalid: model '{c['model']['name']}' gives no "
                    "probabilities to compute it from; tune on a metric of its predictions (e.g. "
                    "balanced_accuracy)"
                )
            value = float(metrics[f"val/{t['metric']}"])
            tracker.finish_trial(run_id, metrics, fit, value)
            if not math.isfinite(value):
                study.tell(trial, state=TrialState.FAIL)
                log.warning("%s trial %d: val %s is %s: failed", where, trial.number, t["metric"], value)
                continue
            study.tell(trial, value)
            done += 1
            best = study.best_trial
            rate = (time.time() - began) / attempts
            log.info(
                "%s trial %d/%d: val %s %.4f (best %.4f, trial %d), ETA %s for this cell",
                where,
                done,
                budget,
                t["metric"].replace("_", " "),
                value,
                best.value,
                best.number,
                clock(rate * (budget - done)),
            )
        if done < budget:
            log.warning("%s: only %d of %d trials completed after %d tries", where, done, budget, attempts)
    finished = complete()
    if not finished:
        log.warning("%s: no trial completed: the cell runs its defaults%s", where, _cells_done(ctx, False))
        return Chosen(cell.id, {}, trials=0)
    best = study.best_trial
    chosen = Chosen(
        cell.id,
        {k.key: best.params[k.key] for k in cell.knobs if k.key in best.params},
        trial=best.number,
        trial_run=best.user_attrs.get("mlflow_run_id"),
        value=float(best.value),
        trials=len(finished),
    )
    if parent is not None:
        tracker.finish_tuning(parent, chosen, complete=done >= budget)
    log.info(
        "%s: chose trial %d (val %s %.4f): %s%s",
        where,
        chosen.trial,
        t["metric"].replace("_", " "),
        chosen.value,
        ", ".join(f"{k}={_shown(v)}" for k, v in chosen.values.items()),
        _cells_done(ctx, trained=parent is not None),
    )
    return chosen


def _cells_done(ctx: dict, trained: bool) -> str:
    """`` · cells: 12/56 done, 3:10 elapsed, ETA 8:00``: the tuning's progress over all cells, from a ledger
    in the sweep folder that every cell appends to (:class:`lossbench.sweep.jobs.Progress`), right with any
    number of worker processes."""
    from lossbench.sweep.jobs import Progress

    if not ctx.get("dir"):
        return ""
    info = {"dir": ctx["dir"], "total": ctx["cells"], "started": ctx["started"]}
    info["workers"] = ctx.get("workers")
    text = Progress(info, started=ctx.get("cell_started")).done(trained)
    return text.replace(" · ", " · cells: ", 1)


def _shown(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _override(key: str, value) -> str:
    """A ``key=value`` override Hydra reads back as the same value (floats round-trip with repr)."""
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if isinstance(value, float):
        return f"{key}={value!r}"
    if isinstance(value, int):
        return f"{key}={value}"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"{key}='{text}'"


def tuned_overrides(job, chosen: Chosen) -> list[str]:
    """The job's overrides with the cell's chosen knob values appended (they win over earlier ones)."""
    return [*job.overrides, *(_override(k, v) for k, v in chosen.values.items())]


def _worker(cell: Cell, ctx: dict) -> Chosen:
    """A cell's tuning in a pool worker, logging to stdout as the launching process and the jobs do."""
    import sys

    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    try:
        return tune_cell(cell, ctx)
    except KeyboardInterrupt:  # Ctrl-C reaches the workers too: end this one rather than take the next cell
        import os

        os._exit(130)


def tune_all(cells_: list[Cell], ctx: dict, workers: int) -> dict[str, Chosen]:
    """Every cell's study, in this process or over ``workers`` processes (one cell at a time each). The pool
    is its own (spawned processes, closed at the end), not the launcher's reusable one: a worker that grew
    during the trials is then not restarted under the final runs."""
    todo = [(cell, {**ctx, "num": num + 1, "cells": len(cells_)}) for num, cell in enumerate(cells_)]
    if workers <= 1 or len(cells_) <= 1:
        return {cell.id: tune_cell(cell, c) for cell, c in todo}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    n = min(workers, len(cells_))
    pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))
    try:
        results = list(pool.map(_worker, *zip(*todo, strict=True)))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # the cells not started are not started
        raise
    pool.shutdown()
    return {chosen.cell: chosen for chosen in results}
