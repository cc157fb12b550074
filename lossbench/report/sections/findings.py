"""Findings: the plain-sentence answer that opens the report, written once the numbers behind it exist."""

from __future__ import annotations

import numpy as np

from lossbench.baselines import CALIBRATION_ONLY
from lossbench.report import stats
from lossbench.report.document import B, Bullets, Heading, Para
from lossbench.report.load import BASELINES, finished
from lossbench.report.sections.accounting import fmt_reasons, unfinished_ratios
from lossbench.report.sections.class_counts import scarce_finding
from lossbench.report.sections.context import (
    BASELINE,
    MIN_SEEDS_FOR_CLAIM,
    MIN_TEST_PER_CLASS,
    ReportContext,
    where,
)
from lossbench.report.sections.formatting import fmt_axis, fmt_ratios, p_is


def regimes(ratios: list[float], natural: str | None = None) -> list[tuple[str, list[float]]]:
    """Rho = 1, moderate and high imbalance (the upper half of the imbalanced ratios). Rho = 1 keeps the
    data's own class counts: "balanced" only when they are, else ``natural`` names it (``natural (9.2 : 1)``,
    :meth:`ReportContext.natural_text`)."""
    ratios = sorted(set(ratios))
    out = []
    if 1.0 in ratios:
        out.append((f"{natural} training split, ρ = 1" if natural else "balanced (ρ = 1)", [1.0]))
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
    items: list = []
    missing = _unfinished_finding(ctx)
    if missing:
        items.append(missing)
    items += list(_recommendations(ctx, largest))
    # regimes: pooled over models and ratios, tested
    for name, ratios in regimes(ctx.ratios, ctx.natural_text()):
        sentence = _regime_finding(ctx, name, ratios)
        if sentence:
            items.append(sentence)
    cheap = _cheap_fix_finding(ctx, largest)
    if cheap:
        items.append(cheap)
    calib = _calibration_finding(ctx, largest)
    if calib:
        items.append(calib)
    scarce = scarce_finding(ctx)
    if scarce:
        items.append(scarce)
    small = _small_test_finding(ctx)
    if small:
        items.append(small)
    if ctx.seeds < MIN_SEEDS_FOR_CLAIM:
        items.append(
            [
                B("Caution:"),
                " " + f"each setting has only {ctx.seeds} seed{'s' if ctx.seeds != 1 else ''}. Per-setting "
                "intervals rest on few paired differences and are wide; treat single-setting claims as "
                "indicative. The pooled tests above combine seeds and ratios; where no outcome of the pairs "
                "could reach p < 0.05 after Holm correction, the verdict is “too few pairs” with the "
                "smallest attainable p, not “not significant”.",
            ]
        )
    ctx.doc.add(Bullets(items))


def _unfinished_finding(ctx: ReportContext):
    """The swept ratios with no finished run, and why (the refusals and failures the sweep recorded): the
    recommendations below speak of the largest ratio that has results, which is then not the largest swept."""
    missing = unfinished_ratios(ctx)
    if not missing:
        return None
    bits = []
    for ratio, info in missing.items():
        text = f"ρ = {ratio:g}: {info['text']}"
        if info["reasons"]:
            text += f" ({fmt_reasons(info['reasons'])})"
        bits.append(text)
    done = max(ctx.ratios)
    many = len(missing) != 1
    return [
        B("Swept but not run:"),
        f" {len(missing)} swept ratio{'s have' if many else ' has'} no finished runs — "
        + "; ".join(bits)
        + f". The largest ratio with results is ρ = {done:g}.",
    ]


def _small_test_finding(ctx: ReportContext):
    """Settings whose test split has fewer than MIN_TEST_PER_CLASS rows of some class: a test recall there
    moves in steps of 100/n points, and intervals over seeds rest on the same handful of rows."""
    runs = ctx.runs
    if "test_min_class" not in runs or runs["test_min_class"].isna().all():
        return None
    small = runs[runs["test_min_class"] < MIN_TEST_PER_CLASS]
    if small.empty:
        return None
    split_axes = [a for a in ctx.axes if a not in ("model", "ratio")]
    bits = []
    for key, group in small.groupby(["test_rows", "test_min_class", *split_axes], sort=True, dropna=False):
        rows, fewest = int(key[0]), int(key[1])
        where_ = ", ".join(f"{a} = {fmt_axis(v)}" for a, v in zip(split_axes, key[2:], strict=True))
        ratios = fmt_ratios(group["ratio"].unique())
        models = ", ".join(sorted(group["model"].unique()))
        bits.append(
            f"{where_ + ' · ' if where_ else ''}ρ = {ratios} ({models}): {rows} test rows, "
            f"{fewest} of the smallest class"
        )
    return [
        B("Small test split:"),
        " " + "; ".join(bits) + f" — fewer than {MIN_TEST_PER_CLASS} test rows per class. One test row of a "
        "class moves its recall by 100/n points, and every seed is scored on these same few rows: intervals "
        "over seeds there are reported as not meaningful, and differences are indicative only.",
    ]


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
                gain = f", {u.diff(d.mean_diff)} over {BASELINE} ({ctx.interval(*d.ci, runs)}, {d.n} seeds)"
        gaps = [
            (other, stats.paired_difference(runs, ctx.column, ctx.axes, best["loss"], other))
            for other in ranked["loss"].iloc[1:]
        ]
        tied = [(other, d) for other, d in gaps if not d.interval_excludes_zero]
        # an interval that is not meaningful (few test rows, zero width) cannot separate the losses
        tied += [(o, d) for o, d in gaps if d.interval_excludes_zero and ctx.interval_note(*d.ci, runs)]
        tied = sorted(tied, key=lambda t: list(ranked["loss"]).index(t[0]))
        regime = _largest_text(ctx, largest)
        if not tied:
            parts = [f"At {regime} on {at}, use ", B(str(best["loss"])), ": "]
            parts.append(estimate + gain)
            if gaps:
                second, d = gaps[0]
                parts.append(
                    f"; ahead of the runner-up {second} by {u.diff(d.mean_diff)} "
                    f"({ctx.interval(*d.ci, runs)}, excluding 0)"
                )
            yield [*parts, "."]
            continue
        names = [str(best["loss"]), *(other for other, _ in tied)]
        runner, d = tied[0]
        gap = (
            f"{u.diff(d.mean_diff)}, {ctx.interval(*d.ci, runs)}"
            if d.n
            else f"no paired runs with {best['loss']}"
        )
        yield [
            f"At {regime} on {at}: ",
            B("no clear winner"),
            f". Tied with the best ({len(names)} losses): ",
            B(", ".join(names)),
            f". {best['loss']} has the highest mean ({estimate}{gain}), but for each of the others named "
            f"the paired difference from it over seeds has no meaningful 95% interval excluding 0 (runner-up "
            f"{runner}: {gap}).",
        ]


def _largest_text(ctx: ReportContext, largest: float) -> str:
    """How the recommendations name the largest ratio with results: ``the largest imbalance (ρ = 100)``;
    ``the largest ratio with finished runs (ρ = 3)`` when a larger swept one has none; the natural counts
    when only rho = 1 is left."""
    label = ctx.ratio_label(largest)
    if unfinished_ratios(ctx):
        return f"the largest ratio with finished runs ({label})"
    if largest == 1.0:
        return f"the only ratio ({label})"
    return f"the largest imbalance ({label})"


def _regime_finding(ctx: ReportContext, name: str, ratios: list[float]):
    u = ctx.units
    runs = ctx.runs[ctx.runs["ratio"].isin(ratios)]
    wide = stats.blocks(runs, ctx.column, ctx.axes)
    comps = ctx.against_baseline(wide, name, runs)
    if not comps:
        return None
    best = max(comps, key=lambda c: c.mean_diff if u.higher else -c.mean_diff)
    models = ", ".join(sorted(runs["model"].unique()))
    datasets = sorted(runs["data"].dropna().unique()) if "data" in runs else []
    if len(datasets) > 1:  # each (dataset, model, ratio, seed) is one paired block: say the datasets are in
        models = f"{len(datasets)} datasets ({', '.join(datasets)}), {models}"
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
            f" gains the most over {BASELINE}: {u.diff(best.mean_diff)} ({ctx.interval(*best.ci, runs)})",
        ]
    verdict = "significant" if best.significant else ctx.verdict(best)
    parts.append(
        f"; Wilcoxon signed-rank {p_is(best.p_holm)} after Holm correction over "
        f"{len(comps)} comparisons: {verdict}; {ctx.bayes_text(best)}"
    )
    beat = [c.loss for c in comps if c.significant and u.better(c.mean_diff)]
    worse = [c.loss for c in comps if c.significant and not u.better(c.mean_diff)]
    if beat:
        parts.append(f". Significantly better than {BASELINE}: {', '.join(beat)}")
    if worse:
        parts.append(f". Significantly worse: {', '.join(worse)}")
    return [*parts, "."]


CHEAP_FIX = "ce_posthoc_la"


def _cheap_fix_finding(ctx: ReportContext, largest: float):
    """At the largest ratio, per facet (model, ...): the special losses that do not beat CE + post-hoc
    logit adjustment (a paired difference over seeds whose meaningful 95% interval lies above 0 beats it),
    with their difference from it, and the ones that do. None without the baseline (lossbench.baselines)."""
    u = ctx.units
    top = ctx.summary[ctx.summary["ratio"] == largest]
    if top.empty or CHEAP_FIX not in set(top["loss"]):
        return None
    bits = []
    for facet_key, group in top.groupby(ctx.facets, sort=True):
        if CHEAP_FIX not in set(group["loss"]):
            continue
        facet = dict(
            zip(ctx.facets, facet_key if isinstance(facet_key, tuple) else (facet_key,), strict=True)
        )
        at = " · ".join(f"{k}={v:g}" if isinstance(v, float) else str(v) for k, v in facet.items())
        runs = where(ctx.runs, {**facet, "ratio": largest})
        beaten, not_beaten = [], []
        for loss in group.sort_values(["rank", "loss"])["loss"]:
            if loss == BASELINE or loss in BASELINES:
                continue
            d = stats.paired_difference(runs, ctx.column, ctx.axes, loss, CHEAP_FIX)
            if not d.n:
                continue
            beats = d.interval_excludes_zero and u.better(d.mean_diff) and not ctx.interval_note(*d.ci, runs)
            # e.g. logit_adjusted on a scikit-learn model is the same post-hoc fix: say so
            posthoc = set(runs.loc[runs["loss"] == loss, "realisation"].dropna()) == {"post-hoc"}
            note = "; on this model it is itself realised post hoc" if posthoc else ""
            text = f"{loss} {u.diff(d.mean_diff)} ({ctx.interval(*d.ci, runs)}{note})"
            (beaten if beats else not_beaten).append(text)
        if not beaten and not not_beaten:
            continue
        parts = []
        if not_beaten:
            parts.append(f"{', '.join(not_beaten)} do{'es' if len(not_beaten) == 1 else ''} not beat it")
        if beaten:
            parts.append(f"{', '.join(beaten)} beat{'s' if len(beaten) == 1 else ''} it")
        parts[0] = f"on {at}, {parts[0]}"
        bits.append("; ".join(parts))
    if not bits:
        return None
    return [
        B("The cheap fix:"),
        f" at {ctx.ratio_label(largest)}, CE with post-hoc logit adjustment ({CHEAP_FIX}: the CE model's "
        "predictions shifted by the training prior, no retraining) against each special loss, paired over "
        f"seeds ({u.label}, loss minus {CHEAP_FIX}) — " + "; ".join(bits) + ".",
    ]


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
        for other in (BASELINE, *CALIBRATION_ONLY):  # CE, and CE + temperature scaling: the cheap fix
            if other in means and means.index[0] != other:
                text += f", {other} {means[other]:.3f}"
        bits.append(text)
    return [*parts, "; ".join(bits), "."]
