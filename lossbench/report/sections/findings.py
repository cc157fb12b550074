"""Findings: the plain-sentence answer that opens the report, written once the numbers behind it exist."""

from __future__ import annotations

import numpy as np

from lossbench.report import stats
from lossbench.report.document import B, Bullets, Heading, Para
from lossbench.report.load import finished
from lossbench.report.sections.class_counts import scarce_finding
from lossbench.report.sections.context import (
    BASELINE,
    MIN_BLOCKS_FOR_TEST,
    MIN_SEEDS_FOR_CLAIM,
    ReportContext,
    where,
)
from lossbench.report.sections.formatting import fmt_ratios, p_is


def regimes(ratios: list[float]) -> list[tuple[str, list[float]]]:
    """Balanced (rho = 1), moderate and high imbalance (the upper half of the imbalanced ratios)."""
    ratios = sorted(set(ratios))
    out = []
    if 1.0 in ratios:
        out.append(("balanced (ρ = 1)", [1.0]))
    imbalanced = [r for r in ratios if r > 1]
    if len(imbalanced) >= 2:
        cut = float(np.median(imbalanced))
        high = [r for r in imbalanced if r >= cut]
        low = [r for r in imbalanced if r < cut]
        if low:
            out.append((f"moderate imbalance (ρ = {fmt_ratios(low)})", low))
        out.append((f"high imbalance (ρ ≥ {min(high):g})", high))
    elif imbalanced:
        out.append((f"imbalance ρ = {imbalanced[0]:g}", imbalanced))
    return out


def findings(ctx: ReportContext) -> None:
    ctx.doc.add(Heading("Findings"))
    if ctx.runs.empty:
        ctx.doc.add(Para(["No finished run logged this metric, so there is nothing to compare yet."]))
        return
    largest = max(ctx.ratios)
    items: list = list(_recommendations(ctx, largest))
    # regimes: pooled over models and ratios, tested
    for name, ratios in regimes(ctx.ratios):
        sentence = _regime_finding(ctx, name, ratios)
        if sentence:
            items.append(sentence)
    calib = _calibration_finding(ctx, largest)
    if calib:
        items.append(calib)
    scarce = scarce_finding(ctx)
    if scarce:
        items.append(scarce)
    if ctx.seeds < MIN_SEEDS_FOR_CLAIM:
        items.append(
            [
                B("Caution:"),
                " " + f"each setting has only {ctx.seeds} seed{'s' if ctx.seeds != 1 else ''}. Per-setting "
                "intervals rest on few paired differences and are wide; treat single-setting claims as "
                "indicative. The pooled tests above combine seeds and ratios"
                + (
                    "; comparisons with fewer than "
                    f"{MIN_BLOCKS_FOR_TEST} pairs are called inconclusive, as the signed-rank test "
                    "cannot reach "
                    "p < 0.05 there."
                ),
            ]
        )
    ctx.doc.add(Bullets(items))


def _recommendations(ctx: ReportContext, largest: float):
    """The loss to use at the largest ratio, one sentence per facet (model, ...): a loss is recommended only
    when every other loss's paired difference from it (over seeds) has a 95% interval excluding 0; otherwise
    the sentence says there is no clear winner and names the losses tied with the best."""
    u = ctx.units
    for facet_key, group in ctx.summary[ctx.summary["ratio"] == largest].groupby(ctx.facets, sort=True):
        facet = dict(
            zip(ctx.facets, facet_key if isinstance(facet_key, tuple) else (facet_key,), strict=True)
        )
        ranked = group.sort_values(["rank", "loss"])
        best = ranked.iloc[0]
        at = " · ".join(f"{k}={v:g}" if isinstance(v, float) else str(v) for k, v in facet.items())
        runs = where(ctx.runs, {**facet, "ratio": largest})
        estimate = f"{u.label} {u.estimate(best['mean'], best['ci_half_width'])}"
        gain = ""
        if best["loss"] != BASELINE and BASELINE in set(ranked["loss"]):
            d = stats.paired_difference(runs, ctx.column, ctx.axes, best["loss"], BASELINE)
            if d.n:
                gain = f", {u.diff(d.mean_diff)} over {BASELINE} ({u.interval(*d.ci)}, {d.n} seeds)"
        gaps = [
            (other, stats.paired_difference(runs, ctx.column, ctx.axes, best["loss"], other))
            for other in ranked["loss"].iloc[1:]
        ]
        tied = [(other, d) for other, d in gaps if not d.interval_excludes_zero]
        if not tied:
            parts = [f"At the largest imbalance (ρ = {largest:g}) on {at}, use ", B(str(best["loss"])), ": "]
            parts.append(estimate + gain)
            if gaps:
                second, d = gaps[0]
                parts.append(
                    f"; ahead of the runner-up {second} by {u.diff(d.mean_diff)} "
                    f"({u.interval(*d.ci)}, excluding 0)"
                )
            yield [*parts, "."]
            continue
        names = [str(best["loss"]), *(other for other, _ in tied)]
        runner, d = tied[0]
        gap = f"{u.diff(d.mean_diff)}, {u.interval(*d.ci)}" if d.n else f"no paired runs with {best['loss']}"
        yield [
            f"At the largest imbalance (ρ = {largest:g}) on {at}: ",
            B("no clear winner"),
            f". Tied with the best ({len(names)} losses): ",
            B(", ".join(names)),
            f". {best['loss']} has the highest mean ({estimate}{gain}), but for each of the others named "
            f"the paired difference from it over seeds has no 95% interval excluding 0 (runner-up {runner}: "
            f"{gap}).",
        ]


def _regime_finding(ctx: ReportContext, name: str, ratios: list[float]):
    u = ctx.units
    runs = ctx.runs[ctx.runs["ratio"].isin(ratios)]
    wide = stats.blocks(runs, ctx.column, ctx.axes)
    comps = ctx.against_baseline(wide, name)
    if not comps:
        return None
    best = max(comps, key=lambda c: c.mean_diff if u.higher else -c.mean_diff)
    models = ", ".join(sorted(runs["model"].unique()))
    parts = [
        f"{name[0].upper()}{name[1:]}, pooled over {models} and seeds ({best.n} paired runs, "
        f"{len(comps) + 1} losses available on every model): "
    ]
    if not u.better(best.mean_diff):
        parts += [
            B(BASELINE),
            " is not beaten on average; the closest is ",
            B(best.loss),
            f" at {u.diff(best.mean_diff)}",
        ]
    else:
        parts += [
            B(best.loss),
            f" gains the most over {BASELINE}: {u.diff(best.mean_diff)} ({u.interval(*best.ci)})",
        ]
    if best.n < MIN_BLOCKS_FOR_TEST:
        parts.append(f"; only {best.n} pairs: inconclusive")
    else:
        verdict = "significant" if best.significant else "not significant"
        parts.append(
            f"; Wilcoxon signed-rank {p_is(best.p_holm)} after Holm correction over "
            f"{len(comps)} comparisons: {verdict}"
        )
    beat = [c.loss for c in comps if c.significant and u.better(c.mean_diff)]
    worse = [c.loss for c in comps if c.significant and not u.better(c.mean_diff)]
    if beat:
        parts.append(f". Significantly better than {BASELINE}: {', '.join(beat)}")
    if worse:
        parts.append(f". Significantly worse: {', '.join(worse)}")
    return [*parts, "."]


def _calibration_finding(ctx: ReportContext, largest: float):
    if "test/ece" not in ctx.exp.runs:
        return None
    ece = finished(ctx.exp.runs, "test/ece")
    ece = ece[ece["ratio"] == largest]
    if ece.empty:
        return None
    parts = [f"Calibration at ρ = {largest:g} (test ECE, lower is better): "]
    bits = []
    for model, group in ece.groupby("model"):
        means = group.groupby("loss")["test/ece"].mean().sort_values()
        text = f"on {model} {means.index[0]} is best calibrated (ECE {means.iloc[0]:.3f})"
        if BASELINE in means and means.index[0] != BASELINE:
            text += f", {BASELINE} {means[BASELINE]:.3f}"
        bits.append(text)
    return [*parts, "; ".join(bits), "."]
