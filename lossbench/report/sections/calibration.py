"""Calibration: test ECE against the imbalance ratio, and reliability diagrams at the largest ratio."""

from __future__ import annotations

from lossbench.report import figures as fig
from lossbench.report import stats
from lossbench.report.document import Heading, Para, Table
from lossbench.report.load import finished, mlflow_runs
from lossbench.report.metric import metric_range
from lossbench.report.sections.context import ReportContext


def calibration(ctx: ReportContext, client) -> None:
    """``client``: the MLflow client the reliability bins (run artifacts) are read with."""
    ctx.doc.add(Heading("Calibration"))
    ece_runs = finished(ctx.exp.runs, "test/ece")
    if ece_runs.empty:
        ctx.doc.add(Para(["No run logged probabilities, so there is no calibration to show."]))
        return
    table = stats.summarize(ece_runs, "test/ece", False, ctx.axes, metric_range("ece"))
    ctx.figure(
        ctx.draw(
            fig.lines_with_bands,
            table,
            "ratio",
            ctx.facets,
            ctx.colours,
            ctx.figures_dir / "ece_vs_ratio.png",
            ylabel="test ECE (lower is better)",
            xlabel="imbalance ratio ρ (log scale)",
            clip=metric_range("ece"),
            robust=True,
        ),
        "ECE against the imbalance ratio",
        "Expected calibration error (15 bins) against ρ; band = 95% CI over seeds. Where a panel's means "
        "split, at a gap wider than half their whole span, into a bulk and fewer far values, its y axis "
        "spans the bulk, and each mean off the axis is marked at the edge with a triangle and named with "
        "its value.",
    )
    largest = max(ctx.ratios)
    _table(ctx, ece_runs, largest)
    main = ctx.main_losses()
    chosen = ece_runs[(ece_runs["ratio"] == largest) & ece_runs["loss"].isin(main)]
    chosen = mlflow_runs(chosen)  # a post-hoc baseline has no reliability bins of its own (its CE run has)
    diagrams = {}
    for (model, loss), group in chosen.groupby(["model", "loss"]):
        bins = [
            b
            for b in (
                _reliability(client, r, uri)
                for r, uri in zip(group["run_id"], group["artifact_uri"], strict=True)
            )
            if b
        ]
        if bins:
            diagrams[(model, loss)] = stats.pooled_reliability(bins)
    ordered = {k: diagrams[k] for loss in main for k in sorted(diagrams) if k[1] == loss}
    ctx.figure(
        ctx.draw(
            fig.reliability,
            ordered,
            ctx.colours,
            ctx.figures_dir / "reliability.png",
            f"Reliability at ρ = {largest:g}, pooled over seeds",
        ),
        "reliability diagrams",
        "Accuracy per confidence bin against the diagonal of perfect calibration; "
        "bars under the diagonal are over-confident. Losses shown: "
        f"{', '.join(x for x in main if any(k[1] == x for k in ordered))}; one panel per model and loss "
        "with reliability data at this ρ (none where the loss is N/A on the model).",
    )


CALIBRATION_COLUMNS = (("test/ece", "ECE"), ("test/log_loss", "log loss"), ("test/brier", "Brier"))


def _table(ctx: ReportContext, ece_runs, largest: float) -> None:
    """Per model at the largest ratio: mean test ECE, log loss and Brier of each loss, CE + temperature
    scaling (ce_temperature) among them when the CE runs logged it (lossbench.baselines)."""
    import numpy as np

    from lossbench.baselines import CALIBRATION_ONLY

    at = ece_runs[ece_runs["ratio"] == largest]
    if at.empty:
        return
    order = [*ctx.losses, *(x for x in CALIBRATION_ONLY if x not in ctx.losses)]
    for model, group in at.groupby("model", sort=True):
        losses = [x for x in order if x in set(group["loss"])]
        rows = []
        for loss in losses:
            runs = group[group["loss"] == loss]
            cells = []
            for column, _ in CALIBRATION_COLUMNS:
                values = runs[column].astype(float) if column in runs else None
                ok = values is not None and values.notna().any()
                cells.append(f"{values.mean():.3f}" if ok else "–")
            rows.append([loss, *cells, str(len(runs))])
        caption = f"{model}: test calibration at ρ = {largest:g}, mean over seeds (lower is better)"
        key = "baseline/ce_temperature/temperature"
        temps = group.loc[group["loss"].isin(CALIBRATION_ONLY), key] if key in group else group.iloc[0:0]
        temps = temps.astype(float).dropna()
        if len(temps):
            t_low, t_high = float(np.min(temps)), float(np.max(temps))
            fitted = f"{t_low:.2f}" if t_low == t_high else f"{t_low:.2f}–{t_high:.2f}"
            caption += f"; ce_temperature's T fitted on the val split: {fitted}"
        ctx.doc.add(Table(["loss", *(name for _, name in CALIBRATION_COLUMNS), "seeds"], rows, caption))


def _reliability(client, run_id: str, artifact_uri: str | None) -> dict | None:
    from lossbench.report.load import read_json_artifact
    from lossbench.tracking import RELIABILITY_ARTIFACT

    return read_json_artifact(client, run_id, artifact_uri, RELIABILITY_ARTIFACT)
