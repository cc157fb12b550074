"""Tuning: what tuning each cell on the validation split gained on test over its defaults, the knobs it
chose, and how the validation metric moved with each knob over the trials.

Written only for a tuned sweep (:mod:`lossbench.report.tuning`); every other section then compares the tuned
runs, and this one is where the default runs appear.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from lossbench.report import figures as fig
from lossbench.report.document import B, Bullets, Code, Heading, Para, Table
from lossbench.report.metric import difference_range
from lossbench.report.sections.context import ReportContext, where
from lossbench.report.sections.formatting import fmt_axis
from lossbench.report.tuning import gains, knob_keys, trial_points

TOP_GAINS = 3  # the finding names this many of the largest gains


def _budget(ctx: ReportContext) -> str:
    """``20 trials`` per cell (``18–20 trials`` when cells differ), from the trials in the store; the
    configured ``tune.trials`` when none was read."""
    t = ctx.tuning
    cells = set(t.tuned["cell"].dropna())
    counts = t.trials[t.trials["cell"].isin(cells)].groupby("cell").size() if not t.trials.empty else None
    if counts is None or counts.empty:
        configured = t.tuned.get("params.tune.trials", pd.Series(dtype=object)).dropna()
        if configured.empty:
            return "its trials"
        low = high = int(float(configured.iloc[0]))
    else:
        low, high = int(counts.min()), int(counts.max())
    n = f"{low}" if low == high else f"{low}–{high}"
    return f"{n} trial{'s' if high != 1 else ''}"


def _objective(ctx: ReportContext) -> str:
    """The validation metric the trials optimised (``tune.metric``), as ``val/<metric>``."""
    for frame in (ctx.tuning.trials, ctx.tuning.tuned):
        if "params.tune.metric" in frame and frame["params.tune.metric"].notna().any():
            return f"val/{frame['params.tune.metric'].dropna().iloc[0]}"
    return "the validation metric"


def intro(ctx: ReportContext) -> None:
    """One sentence under the report's introduction: what a tuned sweep's numbers are."""
    if ctx.tuning is None:
        return
    ctx.doc.add(
        Para(
            [
                B("Tuned:"),
                f" each loss tuned with {_budget(ctx)} per cell on the validation split (Optuna TPE, "
                f"objective {_objective(ctx)}); compared on test over {ctx.seeds} seeds. Every section "
                "compares the tuned runs; the default configs appear only under Tuning.",
            ]
        )
    )


def _own_defaults(t) -> int:
    """The default runs that are not the tuned runs as well (``default tuned``)."""
    return int((~t.default["run_id"].isin(set(t.tuned["run_id"]))).sum())


def _setting(ctx: ReportContext, row) -> str:
    return " · ".join(
        f"ρ={row[a]:g}" if a == "ratio" else fmt_axis(row[a])
        for a in ctx.axes
        if a in row and pd.notna(row[a])
    )


def _finding(ctx: ReportContext, table: pd.DataFrame) -> list:
    u = ctx.units
    kept = table[table["same_runs"] & ~table["nothing_to_tune"]]
    idle = table[table["nothing_to_tune"]]
    paired = table[(table["n_pairs"] > 0) & ~table["same_runs"]]
    if paired.empty:
        return [
            "No cell has tuned runs of their own and default runs of the same seeds (the defaults run with "
            f"tune.defaults=true): no gain to report ({len(kept)} kept their defaults, {len(idle)} had "
            "nothing to tune)."
        ]
    sign = 1 if u.higher else -1
    ranked = paired.assign(better=sign * paired["gain"]).sort_values("better", ascending=False)
    bits = []
    for _, r in ranked.head(TOP_GAINS).iterrows():
        runs = where(ctx.tuning.tuned, {"cell": r["cell"], "loss": r["loss"]})
        interval = ctx.interval(r["gain"] - r["ci_half_width"], r["gain"] + r["ci_half_width"], runs)
        bits.append(
            f"{r['loss']} on {_setting(ctx, r)} {u.diff(r['gain'])} ({interval}, {int(r['n_pairs'])} seeds)"
        )
    parts: list = [
        f"Largest gains of tuning over the defaults (test {u.label}, paired by seed): ",
        "; ".join(bits),
    ]
    low, high = ranked["gain"] - ranked["ci_half_width"], ranked["gain"] + ranked["ci_half_width"]
    # an interval that is not meaningful (a handful of test rows, zero width) separates nothing
    sure = pd.Series(
        [
            ctx.interval_note(lo, hi, where(ctx.tuning.tuned, {"cell": c})) is None
            for lo, hi, c in zip(low, high, ranked["cell"], strict=True)
        ],
        index=ranked.index,
    )
    helped = ranked[((low > 0) if u.higher else (high < 0)) & sure]
    if helped.empty:
        parts.append(f". No gain has a meaningful 95% interval excluding 0 ({ctx.seeds} seeds per cell)")
    else:
        names = ", ".join(f"{r['loss']} on {_setting(ctx, r)}" for _, r in helped.iterrows())
        parts.append(f". Gains whose 95% interval excludes 0: {names}")
    hurt = ranked[((high < 0) if u.higher else (low > 0)) & sure]  # worse, the interval excluding 0
    if not hurt.empty:
        names = ", ".join(
            f"{r['loss']} on {_setting(ctx, r)} ({u.diff(r['gain'])})" for _, r in hurt.iterrows()
        )
        parts.append(
            f". Tuning lowered the test metric, the interval excluding 0, for {names}: the trials' choice on "
            "the validation split did not carry over to test"
        )
    raised = int((sign * paired["gain"] > 0).sum())
    parts.append(f". Tuning raised the mean in {raised} of {len(paired)} cells")
    if not kept.empty:
        parts.append(f"; {len(kept)} kept their defaults (the best trial was the default config)")
    if not idle.empty:
        parts.append(f"; {len(idle)} had nothing to tune")
    parts.append(".")
    return parts


def tuning(ctx: ReportContext) -> None:
    t = ctx.tuning
    if t is None:
        return
    u = ctx.units
    table = gains(t, ctx.column, ctx.axes, difference_range(u.metric))
    ctx.tuning_rows = table
    ctx.doc.add(Heading("Tuning"))
    n_trials = len(t.trials)
    ctx.doc.add(
        Para(
            [
                f"Every cell (a loss on one setting: {', '.join(ctx.axes)}) was tuned with {_budget(ctx)} "
                f"(Optuna TPE, objective {_objective(ctx)}; the first trial at the cell's defaults where "
                "they lie in the search space), each "
                "trial trained at the cell's first seed and scored on the validation split only. The best "
                "trial's knobs then ran over every seed, "
                + (
                    "as did the cell's defaults"
                    if not t.default.empty
                    else "the defaults not (tune.defaults=false)"
                )
                + "; test saw only those. "
                f"Gain = tuned − default, test {u.label}, paired by seed, mean with its 95% Student-t "
                "interval (cut to the range a difference can take). Besides the tuned runs the other "
                f"sections count, in scope: {_own_defaults(t)} runs at the defaults and {n_trials} tuning "
                "trials (not results: no test metric). Rows: ",
                Code("tuning.csv"),
                ".",
            ]
        )
    )
    if table.empty:
        ctx.doc.add(Para(["No tuned run finished with the metric."]))
        return
    ctx.doc.add(Bullets([_finding(ctx, table)]))
    if not t.stand_ins.empty:
        left = t.stand_ins.drop_duplicates([*ctx.axes, "loss"])
        names = "; ".join(f"{r['loss']} on {_setting(ctx, r)}" for _, r in left.iterrows())
        ctx.doc.add(
            Para(
                [
                    "Compared at their defaults everywhere, as no tuned run of theirs is in scope (nothing "
                    f"to tune, or their tuning did not finish): {names}."
                ]
            )
        )
    _gain_table(ctx, table)
    _gain_figure(ctx, table)
    _knob_table(ctx, table)
    _sensitivity(ctx)


def _gain_table(ctx: ReportContext, table: pd.DataFrame) -> None:
    u = ctx.units
    rows = []
    for _, r in table.iterrows():
        runs = where(ctx.tuning.tuned, {"cell": r["cell"], "loss": r["loss"]})
        half = r["ci_half_width"]
        interval = ctx.interval(r["gain"] - half, r["gain"] + half, runs)
        gain = f"{u.diff(r['gain'])} ({interval})" if r["n_pairs"] else "no paired seeds"
        if r["same_runs"]:
            gain = "– (nothing to tune)" if r["nothing_to_tune"] else "0 (the defaults were chosen)"
        rows.append(
            [
                *(fmt_axis(r[a]) for a in ctx.axes),
                r["loss"],
                u.estimate(r["default_mean"], r["default_ci_half_width"]),
                u.estimate(r["tuned_mean"], r["tuned_ci_half_width"]),
                gain,
                str(int(r["n_pairs"])),
            ]
        )
    ctx.doc.add(
        Table(
            [*ctx.axes, "loss", f"default {u.label}", f"tuned {u.label}", "gain (95% CI)", "seeds"],
            rows,
            caption=f"Default vs tuned: mean test {u.label} ± 95% CI over seeds",
            align_right_from=len(ctx.axes) + 1,
        )
    )


def _gain_figure(ctx: ReportContext, table: pd.DataFrame) -> None:
    u = ctx.units
    table = table[~table["nothing_to_tune"]]
    drawn = table.assign(setting=[_setting(ctx, r) for _, r in table.iterrows()])
    ctx.figure(
        ctx.draw(
            fig.tuning_gains,
            drawn,
            ctx.losses,
            ctx.colours,
            ctx.figures_dir / "tuning_gain.png",
            xlabel=f"tuned − default, test {u.label}" + (" (points)" if u.points else ""),
            scale=100.0 if u.points else 1.0,
        ),
        "gain of tuning over the defaults per loss",
        f"Tuned − default test {u.label} per loss, paired by seed: dot = mean, bar = 95% CI; dashed: 0.",
    )


def _fmt_knob(value) -> str:
    if value is None:
        return "null"  # as in the yaml (LDAM's drw_start: null = no deferred re-weighting)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _knob_table(ctx: ReportContext, table: pd.DataFrame) -> None:
    own = table[~table["nothing_to_tune"]]
    if "baseline_of" in ctx.tuning.tuned:  # post-hoc baselines of CE share its cell and its knobs
        posthoc = set(ctx.tuning.tuned.loc[ctx.tuning.tuned["baseline_of"].notna(), "loss"])
        own = own[~own["loss"].isin(posthoc)]
    knobs = knob_keys(pd.DataFrame({"knobs": [json.loads(k) for k in own["knobs"]]}))
    if own.empty:
        return
    rows = []
    for _, r in own.iterrows():
        chosen = json.loads(r["knobs"])
        trial = "–" if pd.isna(r["trial"]) else str(int(r["trial"]))
        value = "–" if not np.isfinite(r["trial_value"]) else f"{r['trial_value']:.4f}"
        rows.append(
            [
                *(fmt_axis(r[a]) for a in ctx.axes),
                r["loss"],
                *(_fmt_knob(chosen[k]) if k in chosen else "–" for k in knobs),
                trial,
                value,
                str(int(r["n_trials"])),
            ]
        )
    ctx.doc.add(
        Table(
            [*ctx.axes, "loss", *knobs, "trial", _objective(ctx), "trials"],
            rows,
            caption="The knobs chosen per cell: the best trial on the validation split",
            align_right_from=len(ctx.axes) + 1,
        )
    )


def _sensitivity(ctx: ReportContext) -> None:
    t = ctx.tuning
    trials = t.trials
    if trials.empty or "tune/value" not in trials:
        return
    chosen = set(t.tuned["tuned_from"].dropna())
    label_axes = [a for a in ctx.axes if a in trials and a not in t.knob_axes]
    frames = []
    for knob in knob_keys(trials):
        points = trial_points(trials, knob)
        if points.empty:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "loss": points["loss"],
                    "knob": knob,
                    "value": points["value"].astype(float),
                    "objective": points["tune/value"].astype(float),
                    "setting": [_setting(ctx, {a: r[a] for a in label_axes}) for _, r in points.iterrows()],
                    "chosen": points["run_id"].isin(chosen),
                }
            )
        )
    if not frames:
        return
    points = pd.concat(frames, ignore_index=True)
    order = [x for x in ctx.losses if x in set(points["loss"])]
    order += sorted(set(points["loss"]) - set(order))
    objective = _objective(ctx)
    ctx.figure(
        ctx.draw(
            fig.tuning_sensitivity,
            points,
            order,
            ctx.figures_dir / "tuning_sensitivity.png",
            ylabel=objective,
        ),
        "validation metric of every tuning trial against each knob",
        f"Sensitivity: {objective} of every trial against each knob it tried, one panel per loss and knob, "
        "one colour per setting; ringed: the chosen trial of each cell. Knobs spanning more than "
        f"{fig.LOG_DECADES} decades on a log axis. Categorical knobs are not drawn.",
    )
