"""Regularization: the metric against the regularization strength, and the best strength per setting."""

from __future__ import annotations

from lossbench.report import figures as fig
from lossbench.report import stats
from lossbench.report.document import Heading, Table
from lossbench.report.sections.context import ReportContext
from lossbench.report.sections.formatting import fmt_axis


def regularization(ctx: ReportContext) -> None:
    """Only when regularization or its strength was swept."""
    if not any(a in ctx.axes for a in ("regularization", "strength")):
        return
    ctx.doc.add(Heading("Regularization"))
    u = ctx.units
    axes = [a for a in ctx.axes if a not in ("strength",)]
    table = stats.summarize(ctx.runs, ctx.column, u.higher, [*axes, "strength"], u.range)
    facets = [a for a in axes if a not in ("ratio",)] + (["ratio"] if ctx.runs["ratio"].nunique() > 1 else [])
    ctx.figure(
        ctx.draw(
            fig.lines_with_bands,
            table,
            "strength",
            facets,
            ctx.colours,
            ctx.figures_dir / "regularization.png",
            ylabel=f"test {u.label}",
            xlabel="regularization strength λ (symlog)",
            clip=u.range,
        ),
        "metric against regularization strength",
        "Test metric against the regularization strength, one panel per model and regularizer; 0 = none.",
    )
    best = table.loc[
        table.groupby([*axes])["mean"].idxmax() if u.higher else table.groupby(axes)["mean"].idxmin()
    ]
    rows = [
        [
            *(fmt_axis(r[a]) for a in axes),
            f"{r['strength']:g}",
            u.estimate(r["mean"], r["ci_half_width"]),
        ]
        for _, r in best.iterrows()
    ]
    ctx.doc.add(
        Table(
            [*axes, "best λ", u.label],
            rows,
            caption="Best strength per setting",
            align_right_from=len(axes),
        )
    )
