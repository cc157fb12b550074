"""Across datasets: mean ranks, Friedman, Nemenyi CD and wins against the baseline (Demšar 2006).

Written only when the runs in scope cover 2 or more datasets. The unit is one setting: a model at one ρ
(and one value of every other setting axis that varies), so each dataset contributes one score per loss,
the mean over seeds; ρ values are not pooled (a loss's rank can change with the imbalance).
"""

from __future__ import annotations

import numpy as np

from lossbench.report import figures as fig
from lossbench.report.across import ALPHA, MIN_DATASETS, AcrossDatasets, across_datasets, win_tie_loss
from lossbench.report.document import B, Bullets, Heading, Para, Table
from lossbench.report.sections.context import BASELINE, ReportContext, where
from lossbench.report.sections.formatting import fmt_axis, fmt_p, p_is, safe_name

MAX_DIAGRAMS = 6  # more settings than this: critical-difference diagrams at the largest ρ only


def datasets(ctx: ReportContext) -> None:
    if ctx.runs.empty or "data" not in ctx.runs or ctx.runs["data"].nunique() < 2:
        return
    u = ctx.units
    by = [a for a in ctx.axes if a != "data"]
    results = across_datasets(ctx.runs, ctx.column, u.higher, by)
    ctx.doc.add(Heading("Across datasets"))
    if not results:
        ctx.doc.add(Para(["No setting has finished runs on 2 or more datasets."]))
        return
    records = {id(r): _records(ctx, r) for r in results}
    ctx.doc.add(Bullets([_sentence(ctx, r, records[id(r)]) for r in results]))
    ctx.doc.add(
        Para(
            [
                "Datasets are the repeated measures here (Demšar 2006), one setting at a time: a model at "
                f"one ρ{_other_axes(by)}, ρ values not pooled. Each dataset's score of a loss is the mean "
                f"over seeds of test {u.label}; within a dataset the losses are ranked (1 = best, ties get "
                "average ranks) and the ranks averaged over datasets. The Friedman test (scipy; the "
                "Iman–Davenport F beside it) asks whether the mean ranks differ at all; with N datasets and "
                "k losses its p cannot fall below χ²-sf(N(k − 1), k − 1), so with fewer than "
                f"{MIN_DATASETS} datasets, or when that floor is not below 0.05, the verdict is “too few "
                "datasets”, not “not significant”. The Nemenyi critical difference "
                f"(α = {ALPHA:g}) joins the losses whose mean ranks are closer than CD. Against "
                f"{BASELINE}: a win (loss) on a dataset when the paired difference over seeds has a 95% "
                "t-interval above (below) 0 in the metric's better direction, a tie when the interval "
                "contains 0 or there is only one paired seed.",
            ]
        )
    )
    largest = {}
    for r in results:
        key = tuple((a, v) for a, v in r.setting.items() if a != "ratio")
        largest[key] = max(largest.get(key, -np.inf), r.setting.get("ratio", -np.inf))
    for r in results:
        key = tuple((a, v) for a, v in r.setting.items() if a != "ratio")
        diagram = len(results) <= MAX_DIAGRAMS or r.setting.get("ratio", -np.inf) == largest[key]
        _setting(ctx, r, records[id(r)], diagram)
    if len(results) > MAX_DIAGRAMS:
        ctx.doc.add(
            Para([f"{len(results)} settings: critical-difference diagrams are drawn at the largest ρ only."])
        )


def _other_axes(by: list[str]) -> str:
    others = [a for a in by if a not in ("model", "ratio")]
    return f" and one value of {', '.join(others)}" if others else ""


def _where_text(ctx: ReportContext, r: AcrossDatasets) -> str:
    bits = []
    for axis, value in r.setting.items():
        bits.append(ctx.ratio_label(value) if axis == "ratio" else f"{axis} = {fmt_axis(value)}")
    return " · ".join(bits)


def _records(ctx: ReportContext, r: AcrossDatasets):
    if BASELINE not in r.losses:
        return []
    runs = where(ctx.runs, r.setting)
    runs = runs[runs["data"].isin(r.scores.index) & runs["loss"].isin(r.losses)]
    return win_tie_loss(runs, ctx.column, ctx.units.higher, ctx.axes, BASELINE, list(r.scores.index))


def _friedman_text(r: AcrossDatasets) -> str:
    n, k = r.n_datasets, len(r.losses)
    if k < 3:
        return f"no Friedman test: it needs at least 3 losses ({k} here)"
    if not r.tested:
        floor = f"; the smallest p it could give is {fmt_p(r.min_p)}" if np.isfinite(r.min_p) else ""
        return (
            f"too few datasets for the Friedman test to be meaningful (N = {n}, k = {k} losses{floor}, "
            f"so it cannot reject equal ranks at α = {ALPHA:g})"
        )
    verdict = "rejects equal mean ranks" if r.rejects else "does not reject equal mean ranks"
    text = (
        f"the Friedman test over N = {n} datasets and k = {k} losses {verdict} (χ² = {r.statistic:.2f}, "
        f"{p_is(r.p_value)}); Iman–Davenport F = {r.iman_davenport:.2f}, {p_is(r.iman_davenport_p)}"
    )
    if (r.iman_davenport_p < ALPHA) != r.rejects:  # the F form is less conservative (Demšar 2006)
        text += ", which would " + ("reject" if r.iman_davenport_p < ALPHA else "not reject")
    return text


def _sentence(ctx: ReportContext, r: AcrossDatasets, records) -> list:
    best_rank = r.mean_ranks.iloc[0]
    tied = [x for x in r.losses if abs(r.mean_ranks[x] - best_rank) < 1e-9]
    names = ", ".join(tied)
    lead = f"On {_where_text(ctx, r)}, over {r.n_datasets} datasets ({', '.join(map(str, r.scores.index))}): "
    parts: list = [lead, "best mean rank ", B(names)]
    parts.append(
        f" ({best_rank:.2f} of {len(r.losses)} losses{', tied' if len(tied) > 1 else ''}); "
        + _friedman_text(r)
    )
    if records:
        wtl = "; ".join(f"{x.loss} {x.wins}/{x.ties}/{x.losses}" for x in records)
        parts.append(f". Wins/ties/losses against {BASELINE} over datasets: {wtl}")
    if r.left_out:
        parts.append(f". Left out for missing runs: {', '.join(r.left_out)}")
    return [*parts, "."]


def _setting(ctx: ReportContext, r: AcrossDatasets, records, diagram: bool) -> None:
    u = ctx.units
    where_ = _where_text(ctx, r)
    ctx.doc.add(Heading(where_, level=3))
    rows = []
    for data in r.scores.index:
        cells = [f"{u.value(r.scores.loc[data, x])} ({r.ranks.loc[data, x]:g})" for x in r.losses]
        rows.append([str(data), *cells])
    rows.append([B("mean rank"), *(B(f"{r.mean_ranks[x]:.2f}") for x in r.losses)])
    ctx.doc.add(
        Table(
            ["dataset", *r.losses],
            rows,
            caption=f"{where_}: mean test {u.label} over seeds per dataset (rank within the dataset)",
        )
    )
    if np.isfinite(r.cd):
        ctx.doc.add(
            Para(
                [
                    f"{_friedman_text(r)[0].upper()}{_friedman_text(r)[1:]}. Nemenyi CD = {r.cd:.2f} "
                    f"(α = {ALPHA:g}, k = {len(r.losses)}, N = {r.n_datasets})."
                ]
            )
        )
    if records:
        rows = [
            [
                x.loss,
                ", ".join(f"{d}: {o}" for d, o in x.outcomes.items()),
                str(x.wins),
                str(x.ties),
                str(x.losses),
            ]
            for x in records
        ]
        ctx.doc.add(
            Table(
                ["loss", "per dataset", "wins", "ties", "losses"],
                rows,
                caption=f"{where_}: each loss against {BASELINE} over datasets",
                align_right_from=2,
            )
        )
    if diagram and r.nemenyi_p is not None and len(r.losses) >= 2:
        name = "_".join(safe_name(fmt_axis(v)) for v in r.setting.values())
        path = ctx.draw(
            fig.critical_difference,
            r.mean_ranks,
            r.nemenyi_p,
            ctx.colours,
            ctx.figures_dir / f"cd_datasets_{name}.png",
            f"{where_}: mean rank over {r.n_datasets} datasets (1 = best), Nemenyi CD = {r.cd:.2f}",
        )
        ctx.figure(
            path,
            f"critical difference diagram over datasets for {where_}",
            f"Mean ranks over datasets; bars join losses whose mean ranks differ by less than the Nemenyi "
            f"CD = {r.cd:.2f} (α = {ALPHA:g}).",
        )
