"""Significance across settings: Friedman per model, each loss against the baseline, critical differences."""

from __future__ import annotations

from lossbench.report import figures as fig
from lossbench.report import stats
from lossbench.report.document import B, Heading, Para, Table
from lossbench.report.sections.context import BASELINE, ReportContext
from lossbench.report.sections.formatting import fmt_p, p_is, safe_name


def significance(ctx: ReportContext) -> None:
    ctx.doc.add(Heading("Significance across settings"))
    ctx.doc.add(
        Para(
            [
                "Blocks are (setting, seed) pairs, where runs share the data split and test set. "
                "Friedman tests whether the losses differ at all; pairwise two-sided Wilcoxon "
                "signed-rank tests with Holm correction say which pairs differ (Benavoli et al. 2016 "
                "prefer them to mean-rank post-hoc tests). Where no outcome of the pairs could reach "
                "p < 0.05 after Holm correction, the verdict is “too few pairs” with the smallest "
                "attainable p. Next to it, baycomp's Bayesian signed-rank test (Benavoli et al. 2017; "
                "seeded Monte Carlo) gives the probabilities that the loss is better than the baseline, "
                "practically equivalent (within the region of practical equivalence, ROPE), or worse. In "
                "the critical-difference diagrams, losses joined by a bar are not significantly different."
            ]
        )
    )
    for model in sorted(ctx.runs["model"].unique()):
        _model(ctx, model)


def _model(ctx: ReportContext, model: str) -> None:
    u = ctx.units
    runs = ctx.runs[ctx.runs["model"] == model]
    wide = stats.blocks(runs, ctx.column, ctx.axes)
    ctx.doc.add(Heading(f"{model}", level=3))
    result = stats.friedman(wide, u.higher)
    if result is None:
        ctx.doc.add(Para(["Too few complete blocks or losses for a Friedman test."]))
        return
    verdict = "the losses differ" if result.p_value < stats.ALPHA else "no evidence that the losses differ"
    ctx.doc.add(
        Para(
            [
                f"Friedman χ² = {result.statistic:.2f} over {result.n_blocks} blocks and "
                f"{len(result.losses)} losses, {p_is(result.p_value)}: {verdict}."
            ]
        )
    )
    comps = ctx.against_baseline(wide, f"model={model}, all ratios", runs)
    rows = []
    for c in sorted(comps, key=lambda c: -c.mean_diff if u.higher else c.mean_diff):
        better, same, worse = ctx.bayes_probs(c)
        rows.append(
            [
                c.loss,
                str(c.n),
                u.diff(c.mean_diff),
                ctx.interval(*c.ci, runs).removeprefix("95% CI "),
                fmt_p(c.p_raw),
                B(fmt_p(c.p_holm)) if c.significant else fmt_p(c.p_holm),
                ctx.verdict(c).removeprefix("significant: "),
                f"{better:.2f} / {same:.2f} / {worse:.2f}",
            ]
        )
    if rows:
        ctx.doc.add(
            Table(
                [
                    "loss",
                    "pairs",
                    f"mean vs {BASELINE}",
                    "95% CI",
                    "p",
                    "p (Holm)",
                    "verdict",
                    f"Bayes P(better / equivalent / worse), ROPE {ctx.rope_text()}",
                ],
                rows,
                caption=f"{model}: each loss against {BASELINE}, all settings pooled",
            )
        )
    path = ctx.draw(
        fig.critical_difference,
        result.mean_ranks,
        result.pairwise_p,
        ctx.colours,
        ctx.figures_dir / f"critical_difference_{safe_name(model)}.png",
        f"{model}: mean rank of test {u.label} over {result.n_blocks} blocks (1 = best)",
    )
    ctx.figure(
        path,
        f"critical difference diagram for {model}",
        "Mean ranks; bars join losses that pairwise Wilcoxon-Holm tests (α = 0.05) cannot separate.",
    )
