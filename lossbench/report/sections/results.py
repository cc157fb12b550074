"""The result tables: the best loss per setting, and every loss per model and imbalance ratio."""

from __future__ import annotations

from lossbench.report import figures as fig
from lossbench.report import stats
from lossbench.report.document import B, Heading, Para, Table
from lossbench.report.sections.context import BASELINE, MIN_TEST_PER_CLASS, ReportContext, where
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
            gain = (
                f"{u.diff(d.mean_diff)} ({ctx.interval(*d.ci, where(ctx.runs, setting))})"
                if d.n
                else f"no paired {BASELINE} run"
            )
        else:
            gain = f"no {BASELINE} run"
        rows.append(
            [
                *(_axis_cell(ctx, a, v) for a, v in setting.items()),
                B(str(best["loss"])),
                u.estimate(best["mean"], best["ci_half_width"]),
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


def _axis_cell(ctx: ReportContext, axis: str, value) -> str:
    """A setting's value in a table; rho = 1 says when it is the data's natural imbalance, not balance."""
    if axis == "ratio" and value == 1.0 and ctx.natural_text():
        return f"1: {ctx.natural_text()}"
    return fmt_axis(value)


def _small_test_note(ctx: ReportContext) -> list:
    """A warning for the intervals of the tables when the test split has a handful of rows per class."""
    rows, per_class = ctx.test_size(ctx.runs)
    if not (per_class < MIN_TEST_PER_CLASS):  # NaN (not logged): no note
        return []
    return [
        " ",
        B("The intervals here are not a measure of certainty:"),
        f" every seed is scored on a test split of as few as {rows:.0f} rows ({per_class:.0f} of the "
        f"smallest class; fewer than {MIN_TEST_PER_CLASS} per class), so seeds agreeing (even a ± 0.000) "
        "says little about how the loss does on new data. Cells marked † rest on such a split: they give "
        "the mean over seeds and no interval.",
    ]


def main_tables(ctx: ReportContext) -> None:
    ctx.doc.add(Heading("Results per model and imbalance ratio"))
    u = ctx.units
    ctx.doc.add(
        Para(
            [
                f"Cells: mean test {u.label} ± 95% CI half-width over seeds, (rank within the column); "
                "where that interval would reach past the metric's range it is shown cut to the range, as "
                "(low–high). The best loss of each column in bold. Rows ordered by the rank at the largest "
                "ρ. Cost: the median wall time of one fit (training, early stopping included) over the "
                "model's runs of the loss at every ρ and seed.",
                *_small_test_note(ctx),
            ]
        )
    )
    for facet_key, group in ctx.summary.groupby(ctx.facets, sort=True):
        key = facet_key if isinstance(facet_key, tuple) else (facet_key,)
        caption = " · ".join(f"{a} = {fmt_axis(v)}" for a, v in zip(ctx.facets, key, strict=True))
        ratios = sorted(group["ratio"].unique())
        order = group[group["ratio"] == ratios[-1]].sort_values("rank")["loss"].tolist()
        order += [x for x in ctx.losses if x in set(group["loss"]) and x not in order]
        facet_runs = where(ctx.runs, dict(zip(ctx.facets, key, strict=True)))
        cost = _median_fit_seconds(facet_runs)
        # per ratio: whether its test split has too few rows of some class for an interval to mean much
        fewest = {r: ctx.test_size(facet_runs[facet_runs["ratio"] == r])[1] for r in ratios}
        tiny = {r: fewest[r] < MIN_TEST_PER_CLASS for r in ratios}
        rows = []
        for loss in order:
            row = [loss]
            for r in ratios:
                cell = group[(group["loss"] == loss) & (group["ratio"] == r)]
                if cell.empty:
                    row.append("–")
                    continue
                c = cell.iloc[0]
                estimate = f"{u.value(c['mean'])}†" if tiny[r] else u.estimate(c["mean"], c["ci_half_width"])
                text = f"{estimate} ({int(c['rank'])})"
                row.append(B(text) if c["best"] else text)
            row.append(_seconds(cost.get(loss)))
            rows.append(row)
        header = ["loss", *(ctx.ratio_label(r) for r in ratios), "median fit (s)"]
        ctx.doc.add(Table(header, rows, caption=caption))
    _metric_vs_ratio(ctx)
    ctx.figure(
        ctx.draw(
            fig.heatmaps,
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


OVERLAID_LOSSES = 4  # up to this many losses share one panel per facet; more get one small panel each
SMALL_MULTIPLES_MAX = 45  # panels; past it (many facets: a swept regularization) one panel per facet with
HIGHLIGHTED = 3  # the best-ranked few in colour, the rest grey


def _metric_vs_ratio(ctx: ReportContext) -> None:
    u = ctx.units
    path = ctx.figures_dir / "metric_vs_ratio.png"
    common = dict(ylabel=f"test {u.label}", xlabel="imbalance ratio ρ (log scale)", clip=u.range)
    has_baseline = BASELINE in set(ctx.summary["loss"])
    n_panels = len(ctx.summary.drop_duplicates([*ctx.facets, "loss"]))
    if ctx.summary["loss"].nunique() <= OVERLAID_LOSSES:
        drawn = ctx.draw(fig.lines_with_bands, ctx.summary, "ratio", ctx.facets, ctx.colours, path, **common)
        caption = f"Test {u.label} against ρ, one line per loss, band = 95% CI over seeds."
    elif n_panels <= SMALL_MULTIPLES_MAX:
        drawn = ctx.draw(
            fig.small_multiples,
            ctx.summary,
            "ratio",
            ctx.facets,
            ctx.losses,
            ctx.colours,
            path,
            reference=BASELINE,
            **common,
        )
        caption = (
            f"Test {u.label} against ρ, one panel per loss and "
            f"{' · '.join(ctx.facets) or 'setting'}, band = 95% CI over seeds; "
            + (f"the dashed grey line in each panel is {BASELINE}, the baseline. " if has_baseline else "")
            + "All panels share the y axis. Losses ordered by mean rank over all settings."
        )
    else:
        drawn = ctx.draw(
            fig.lines_with_bands,
            ctx.summary,
            "ratio",
            ctx.facets,
            ctx.colours,
            path,
            **common,
            highlight=HIGHLIGHTED,
            reference=BASELINE if has_baseline else None,
        )
        caption = (
            f"Test {u.label} against ρ, one panel per {' · '.join(ctx.facets)}; in colour with its 95% CI "
            f"band: the {HIGHLIGHTED} best-ranked losses of the panel at the largest ρ"
            + (f" and {BASELINE}, the baseline" if has_baseline else "")
            + "; thin grey lines: the other losses."
        )
    ctx.figure(drawn, f"{u.label} against the imbalance ratio", caption)


def _median_fit_seconds(runs) -> dict[str, float]:
    if "train/fit_seconds" not in runs:
        return {}
    return runs.groupby("loss")["train/fit_seconds"].median().dropna().to_dict()


def _seconds(value: float | None) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"
