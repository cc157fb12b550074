"""Tuned sweeps in the report: which runs the sections compare, and what tuning gained over the defaults.

A tuned sweep (``tune.trials > 0``, :mod:`lossbench.tune`) runs every cell (a job without its seed) over the
seeds twice: at its default config (``variant`` "default") and at the knobs of its best trial on the
validation split (``variant`` "tuned"); once when the best trial was the defaults or the cell had nothing to
tune (``variant`` "default tuned": the same runs on both sides). The report restates every section on the
tuned runs; the defaults meet them only in the Tuning section, paired by seed (same split, same test set).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lossbench.report import stats
from lossbench.report.load import AXES, Experiment, finished, is_variant

CELL_AXES = [a for a in AXES if a != "seed"]


@dataclass
class Tuned:
    """The runs of a tuned sweep, split by variant (every status); ``cell`` set on every row."""

    default: pd.DataFrame  # the cells' default configs over the seeds
    tuned: pd.DataFrame  # the cells' chosen configs over the seeds
    compared: pd.DataFrame  # what the report's sections compare: tuned runs, and stand_ins
    # default runs with no tuned run of their cell (a cell with nothing to tune, or whose tuned runs are not
    # in scope): compared as they are, and named in the Tuning section
    stand_ins: pd.DataFrame
    untuned_cells: list[str]  # the cells of the stand-ins (those that have one)
    knob_axes: list[str]  # axes the tuning chose (regularization strength): restated to the defaults'
    trials: pd.DataFrame  # Experiment.trials

    def experiment(self, exp: Experiment) -> Experiment:
        """``exp`` with the compared runs as its runs."""
        return dataclasses.replace(exp, runs=self.compared)


def knob_keys(runs: pd.DataFrame) -> list[str]:
    """The knobs (dotted config keys) any run of ``runs`` was tuned on, in first-seen order."""
    keys: dict[str, None] = {}
    for knobs in runs.get("knobs", pd.Series(dtype=object)):
        if isinstance(knobs, dict):
            keys.update(dict.fromkeys(knobs))
    return list(keys)


def _key(runs: pd.DataFrame, axes: list[str]) -> pd.Series:
    """One string per run naming its setting on ``axes`` (NaN and None alike)."""
    if runs.empty:
        return pd.Series([], index=runs.index, dtype=object)
    cols = [
        runs[a].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
        for a in axes
    ]
    return pd.concat(cols, axis=1).agg("\x1f".join, axis=1) if cols else pd.Series("", index=runs.index)


def split(exp: Experiment) -> Tuned | None:
    """The tuned sweep's runs by variant, or None when no run in scope is a tuned one (the report is then as
    it always was). A default run without a cell tag gets the cell of the tuned runs with the same setting
    on every axis but the seed and the tuned knobs."""
    runs = exp.runs
    if runs.empty or "variant" not in runs or not is_variant(runs, "tuned").any():
        return None
    is_tuned = is_variant(runs, "tuned")
    tuned, default = runs[is_tuned].copy(), runs[is_variant(runs, "default")].copy()
    knobs = set(knob_keys(tuned))
    knob_axes = [a for a in CELL_AXES if AXES[a] in knobs]
    by = [a for a in CELL_AXES if a not in knob_axes and a in runs]
    cells = dict(zip(_key(tuned, by), tuned["cell"], strict=True))
    default["cell"] = default["cell"].fillna(_key(default, by).map(cells))
    # NaN: no tuned run of its setting; a "default tuned" run is in tuned already
    stand_in = ~default["cell"].isin(set(tuned["cell"].dropna())) & ~is_tuned[default.index]
    untuned = sorted(set(default.loc[stand_in, "cell"].dropna()))
    # a tuned knob that is also an axis (regularization.strength) is no setting of its own: the tuned runs
    # stand in the default's place (their values are in the Tuning section)
    for axis in knob_axes:
        first = default.dropna(subset=["cell"]).drop_duplicates("cell").set_index("cell")[axis]
        tuned[axis] = tuned["cell"].map(first).fillna(tuned[axis])
    compared = pd.concat([tuned, default[stand_in]])
    return Tuned(
        default=default.reset_index(drop=True),
        tuned=tuned.reset_index(drop=True),
        compared=compared.reset_index(drop=True),
        stand_ins=default[stand_in].reset_index(drop=True),
        untuned_cells=untuned,
        knob_axes=knob_axes,
        trials=exp.trials,
    )


def _chosen(tuned: pd.DataFrame, trials: pd.DataFrame) -> dict:
    """The chosen trial of the cell (from its tuned runs): knobs, trial number, its objective value."""
    knobs = next((k for k in tuned["knobs"] if isinstance(k, dict)), None)
    run = next((r for r in tuned["tuned_from"] if isinstance(r, str) and r), None)
    row = trials[trials["run_id"] == run] if run is not None and not trials.empty else trials.iloc[0:0]
    if knobs is None and not row.empty and isinstance(row["knobs"].iloc[0], dict):
        knobs = row["knobs"].iloc[0]
    cell = tuned["cell"].iloc[0]
    n_trials = int((trials["cell"] == cell).sum()) if not trials.empty else 0
    value = float(row["tune/value"].iloc[0]) if not row.empty and "tune/value" in row else math.nan
    trial = int(row["trial"].iloc[0]) if not row.empty and pd.notna(row["trial"].iloc[0]) else None
    return {
        "knobs": knobs or {},
        "trial": trial,
        "trial_run": run,
        "trial_value": value,
        "n_trials": n_trials,
    }


def gains(
    tuned: Tuned, column: str, axes: list[str], bounds: tuple[float, float] | None = None
) -> pd.DataFrame:
    """One row per tuned cell and loss (tuning.csv): the mean test metric at the defaults and tuned (each
    over its own finished seeds), the gain = tuned − default over the seeds both have (paired), its 95%
    t-interval cut to ``bounds`` (the range a difference can take), and the chosen trial."""
    from lossbench.baselines import comparable

    metric = column.rsplit("/", 1)[-1]  # ce_temperature: calibration only
    t_runs = comparable(finished(tuned.tuned, column), metric)
    d_runs = comparable(finished(tuned.default, column), metric)
    rows = []
    for (cell, loss), group in t_runs.groupby(["cell", "loss"], sort=False, dropna=False):
        base = d_runs[(d_runs["cell"] == cell) & (d_runs["loss"] == loss)]
        t_mean, t_half = stats.t_interval(group[column])
        d_mean, d_half = stats.t_interval(base[column])
        pairs = pd.concat(
            [group.groupby("seed")[column].mean(), base.groupby("seed")[column].mean()],
            axis=1,
            keys=["tuned", "default"],
        ).dropna()
        diff = (pairs["tuned"] - pairs["default"]).to_numpy(dtype=float)
        g_mean, g_half = stats.t_interval(diff)
        low, high, clipped = stats.clip_interval(g_mean - g_half, g_mean + g_half, bounds)
        chosen = _chosen(
            tuned.tuned[(tuned.tuned["cell"] == cell) & (tuned.tuned["loss"] == loss)], tuned.trials
        )
        rows.append(
            {
                **{a: group[a].iloc[0] for a in dict.fromkeys(["data", *axes])},
                "loss": loss,
                "cell": cell,
                "n_default": int(base[column].notna().sum()),
                "default_mean": d_mean,
                "default_ci_half_width": d_half,
                "n_tuned": int(group[column].notna().sum()),
                "tuned_mean": t_mean,
                "tuned_ci_half_width": t_half,
                "n_pairs": int(diff.size),
                "gain": g_mean,
                "ci_low": low,
                "ci_high": high,
                "ci_half_width": g_half,
                "ci_clipped": clipped,
                "trial": chosen["trial"],
                "trial_value": chosen["trial_value"],
                "n_trials": chosen["n_trials"],
                "knobs": json.dumps(chosen["knobs"], sort_keys=True),
                # the same runs on both sides: the defaults were chosen, or there was nothing to tune
                "same_runs": bool(len(group)) and set(group["run_id"]) == set(base["run_id"]),
                "nothing_to_tune": not chosen["knobs"],
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["trial"] = table["trial"].astype("Int64")
    return table.sort_values([*dict.fromkeys(["data", *axes]), "loss"], kind="stable").reset_index(drop=True)


def trial_points(trials: pd.DataFrame, knob: str) -> pd.DataFrame:
    """The trials that tried ``knob`` with a finite objective: their knob value (``value``) and objective."""
    if trials.empty:
        return pd.DataFrame(columns=["value", "tune/value"])
    values = trials["knobs"].map(lambda k: k.get(knob) if isinstance(k, dict) else None)
    out = trials.assign(value=pd.to_numeric(values, errors="coerce"))
    out = out[out["value"].notna() & np.isfinite(pd.to_numeric(out["tune/value"], errors="coerce"))]
    return out
