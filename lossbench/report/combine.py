"""One report over several MLflow experiments: ``--experiment a --experiment b`` or a glob (``'bench*'``).

Each experiment is loaded as :func:`lossbench.report.load.load_experiment` loads one (its latest sweep by
default, or every run with ``--all``) and their runs are put together: a sweep over other datasets in its
own experiment joins the comparison across datasets. Runs of the same setting, loss and seed in two
experiments are both kept (their metric is averaged where a table needs one value).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import pandas as pd

from lossbench.errors import ConfigError
from lossbench.report.load import Experiment, load_experiment

GLOB_CHARS = "*?["


@dataclass
class Combined(Experiment):
    """Several experiments as one: ``name`` joins their names, ``names`` lists them."""

    names: list[str] = field(default_factory=list)


def is_glob(name: str) -> bool:
    return any(c in name for c in GLOB_CHARS)


def store_experiments(uri: str) -> list[str]:
    """The names of the store's active experiments (read-only SQL on a SQLite store, else MLflow's client)."""
    from lossbench.store import query

    rows = query(uri, "SELECT name FROM experiments WHERE lifecycle_stage = 'active' ORDER BY name")
    if rows is not None:
        return [str(r[0]) for r in rows]
    from lossbench.report.load import LazyClient

    return sorted(e.name for e in LazyClient(uri).search_experiments())


def resolve(patterns: list[str], uri: str | None = None) -> list[str]:
    """The experiment names ``patterns`` stand for, in the order given, each once: a plain name as it is
    (loading it says when there is no such experiment), a glob (``*``, ``?``, ``[...]``) as the store's
    experiment names it matches, sorted; a glob that matches none is an error naming the experiments."""
    from lossbench.tracking import tracking_uri

    names: list[str] = []
    known = None
    for pattern in patterns:
        if not is_glob(pattern):
            names.append(pattern)
            continue
        if known is None:
            known = store_experiments(tracking_uri(uri))
        if pattern in known:  # a name that has glob characters in it is itself first
            names.append(pattern)
            continue
        matched = [n for n in known if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise ConfigError(
                "--experiment",
                pattern,
                "matches no experiment in the store",
                f"Experiments there: {', '.join(known) or 'none'}.",
            )
        names += matched
    return list(dict.fromkeys(names))


def default_name(names: list[str]) -> str:
    """What names the report's default folder: ``reports/<first>/`` for one experiment,
    ``reports/<first>-and-<n - 1>-more/`` for several (made one safe folder name by lossbench.paths)."""
    if len(names) == 1:
        return names[0]
    return f"{names[0]}-and-{len(names) - 1}-more"


def load_experiments(
    names: list[str], tracking_uri_: str | None = None, *, scope: str = "latest"
) -> Experiment:
    """One experiment as :func:`load_experiment` loads it; several as one :class:`Combined`."""
    if len(names) == 1:
        return load_experiment(names[0], tracking_uri_, scope=scope)
    if scope not in ("latest", "all"):
        raise ConfigError(
            "--sweep",
            scope,
            "a sweep id names a sweep of one experiment",
            "With several experiments, report their latest sweeps (the default) or every run (--all).",
        )
    parts = [load_experiment(n, tracking_uri_, scope=scope) for n in names]
    frames = [p.runs for p in parts if not p.runs.empty]
    runs = pd.concat(frames, ignore_index=True) if frames else parts[0].runs
    sweeps = sorted((s for p in parts for s in p.sweeps), key=lambda s: s.start_time, reverse=True)
    curve_keys = {k: v for p in parts for k, v in p.curve_keys.items()}
    trials = [p.trials for p in parts if not p.trials.empty]
    return Combined(
        name=" + ".join(names),
        uri=parts[0].uri,
        runs=runs.reset_index(drop=True),
        sweeps=sweeps,
        scope=scope,
        curve_keys=curve_keys,
        trials=pd.concat(trials, ignore_index=True) if trials else parts[0].trials,
        names=list(names),
    )
