"""The result tables: the best loss per setting, and every loss per model and imbalance ratio."""

from __future__ import annotations

from lossbench.report import figures as fig
from lossbench.report import stats
from lossbench.report.document import B, Heading, Para, Table
from lossbench.report.sections.context import BASELINE, ReportContext, where
from lossbench.report.sections.formatting import fmt_axis


def glance(ctx: ReportContext) -> None:
    """Best loss per (facet, ratio) with its gain over the baseline: the one-minute answer."""
    ctx.doc.add(Heading("Best loss per setting"))
    if ctx.summary.empty:
        return
    u = ctx.units
    rows = []
    for _, best in ctx.summary[ctx.summary["best"]].iterrows():
        setting = {a: best[a] for a in ctx.axes}
        if best["loss"] == BASELINE:
            gain = "(baseline)"
        elif BASELINE in set(where(ctx.summary, setting)["loss"]):
            d = stats.paired_difference(
                where(ctx.runs, setting), ctx.column, ctx.axes, best["loss"], BASELINE
            )
            gain = f"{u.diff(d.mean_diff)} ({u.interval(*d.ci)})" if d.n else f"no paired {BASELINE} run"
        else:
            gain = f"no {BASELINE} run"
        rows.append(
            [
                *(fmt_axis(v) for v in setting.values()),
                B(str(best["loss"])),
                f"{u.value(best['mean'])} ± {u.value(best['ci_half_width'])}",
                gain,
                str(int(best["n_seeds"])),
            ]
        )
    ctx.doc.add(
        Table(
            [*ctx.axes, "best loss", f"{u.label} (95% CI)", f"vs {BASELINE}", "seeds"],
            rows,
            align_right_from=len(ctx.axes) + 1,
        )
    )


def main_tables(ctx: ReportContext) -> None:
    ctx.doc.add(Heading("Results per model and imbalance ratio"))
    u = ctx.units
    ctx.doc.add(
        Para(
            [
                f"Cells: mean test {u.label} ± 95% CI half-width over seeds, (rank within the column); "
                "the best loss of each column in bold. Rows ordered by the rank at the largest ρ."
            ]
        )
    )
    for facet_key, group in ctx.summary.groupby(ctx.facets, sort=True):
        key = facet_key if isinstance(facet_key, tuple) else (facet_key,)
        caption = " · ".join(f"{a} = {fmt_axis(v)}" for a, v in zip(ctx.facets, key, strict=True))
        ratios = sorted(group["ratio"].unique())
        order = group[group["ratio"] == ratios[-1]].sort_values("rank")["loss"].tolist()
        order += [x for x in ctx.losses if x in set(group["loss"]) and x not in order]
        rows = []
        for loss in order:
            row = [loss]
            for r in ratios:
                cell = group[(group["loss"] == loss) & (group["ratio"] == r)]
                if cell.empty:
                    row.append("–")
                    continue
                c = cell.iloc[0]
                text = f"{u.value(c['mean'])} ± {u.value(c['ci_half_width'])} ({int(c['rank'])})"
                row.append(B(text) if c["best"] else text)
            rows.append(row)
        ctx.doc.add(Table(["loss", *(f"ρ = {r:g}" for r in ratios)], rows, caption=caption))
    ctx.figure(
        fig.lines_with_bands(
            ctx.summary,
            "ratio",
            ctx.facets,
            ctx.colours,
            ctx.figures_dir / "metric_vs_ratio.png",
            ylabel=f"test {u.label}",
            xlabel="imbalance ratio ρ (log scale)",
            clip=u.range,
        ),
        f"{u.label} against the imbalance ratio",
        f"Test {u.label} against ρ, one line per loss, band = 95% CI over seeds.",
    )
    ctx.figure(
        fig.heatmaps(
            ctx.summary,
            ctx.facets,
            ctx.losses,
            ctx.figures_dir / "heatmap_loss_ratio.png",
            label=f"mean test {u.label}",
            higher=u.higher,
        ),
        "heatmap of loss by imbalance ratio",
        f"Mean test {u.label}, loss × ρ; the best loss per column is boxed in red.",
    )
