"""Training curves: the mean per-epoch training loss, validation loss and validation balanced accuracy of
each loss, for the models trained by epochs (torch), read from the runs' MLflow metric histories."""

from __future__ import annotations

import pandas as pd

from lossbench.report import figures as fig
from lossbench.report.document import Heading, Para
from lossbench.report.load import load_curves
from lossbench.report.sections.context import ReportContext


def mean_curves(ctx: ReportContext, client=None) -> pd.DataFrame:
    """One row per (model, ratio, loss, curve, epoch): ``mean`` over the runs (seeds, and any other swept
    axis) that reached that epoch, and ``n_runs`` of them."""
    runs = ctx.runs[["run_id", "model", "ratio", "loss"]]
    curves = load_curves(ctx.exp, runs["run_id"], client)
    if curves.empty:
        return pd.DataFrame(columns=["model", "ratio", "loss", "curve", "step", "mean", "n_runs"])
    merged = curves.merge(runs, on="run_id")
    return (
        merged.groupby(["model", "ratio", "loss", "curve", "step"], sort=True)["value"]
        .agg(mean="mean", n_runs="count")
        .reset_index()
    )


def curves(ctx: ReportContext, client=None) -> None:
    """Only when some run logged epoch curves (sklearn models have none)."""
    table = mean_curves(ctx, client)
    if table.empty:
        return
    ctx.doc.add(Heading("Training curves"))
    models = sorted(table["model"].unique())
    others = [a for a in ctx.axes if a not in ("model", "ratio")]
    over = "seeds" + (f" and {', '.join(others)}" if others else "")
    lengths = table.groupby(["model", "ratio", "loss", "curve"])["n_runs"].nunique()
    stopped = (
        " Runs stopped at different epochs (early stopping): a later epoch averages the runs still "
        "training then."
        if (lengths > 1).any()
        else ""
    )
    ctx.doc.add(
        Para(
            [
                f"Mean per-epoch curves of the models trained by epochs ({', '.join(models)}), one line per "
                f"loss, averaged over {over}. Training and validation loss are each loss's own objective, "
                "whose scale differs from loss to loss: compare their shapes, not their levels across "
                f"losses.{stopped}"
            ]
        )
    )
    ordered = pd.Categorical(table["loss"], categories=[x for x in ctx.losses if x in set(table["loss"])])
    table = table.assign(loss=ordered).sort_values(["loss", "step"])
    table["loss"] = table["loss"].astype(str)
    ctx.figure(
        ctx.draw(
            fig.training_curves,
            table,
            ctx.colours,
            ctx.figures_dir / "training_curves.png",
            "Mean training curves per loss (epoch = one pass over the training split)",
        ),
        "mean training curves per loss",
        "One row per model and imbalance ratio ρ; columns: training loss, validation loss (log scale where "
        "the values span a decade or more), validation balanced accuracy.",
    )
