"""Per-class recall at the largest ratio: where the minority classes gain or lose."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lossbench.report import figures as fig
from lossbench.report.document import Heading, Para, Table
from lossbench.report.sections.context import BASELINE, ReportContext

TOP_K = 3  # losses shown per model besides the baseline


def shown_losses(ctx: ReportContext, largest: float) -> dict[str, list[str]]:
    """Per model: the baseline, then the TOP_K best-ranked other losses at ``largest`` (mean rank over the
    model's settings at that ratio, e.g. over regularizers when several were swept)."""
    top = ctx.summary[ctx.summary["ratio"] == largest]
    out = {}
    for model, group in top.groupby("model", sort=True):
        ranked = group.groupby("loss")["rank"].mean().sort_values(kind="stable").index
        others = [x for x in ranked if x != BASELINE][:TOP_K]
        out[model] = ([BASELINE] if BASELINE in set(group["loss"]) else []) + others
    return out


def per_class(ctx: ReportContext) -> None:
    largest = max(ctx.ratios)
    ctx.doc.add(Heading(f"Per-class recall at ρ = {largest:g}"))
    shown = shown_losses(ctx, largest)
    table = _recalls(ctx, largest, shown)
    if table.empty:
        ctx.doc.add(Para(["No per-class recall was logged."]))
        return
    ctx.doc.add(
        Para(
            [
                f"Shown for each model: {BASELINE} (the baseline) and the {TOP_K} best-ranked other losses "
                f"at ρ = {largest:g} by mean test {ctx.units.label} — ",
                "; ".join(
                    f"{model}: {', '.join(x for x in losses if x != BASELINE)}"
                    for model, losses in shown.items()
                ),
                ".",
            ]
        )
    )
    table = table.groupby(["model", "loss", "class"], as_index=False).agg(
        recall=("recall", "mean"), train_count=("train_count", "mean")
    )
    table["train_count"] = table["train_count"].round().astype(int)
    ctx.figure(
        ctx.draw(
            fig.per_class_recall,
            table,
            ctx.colours,
            ctx.figures_dir / "per_class_recall.png",
            f"Test recall per class at ρ = {largest:g} (mean over seeds)",
        ),
        "per-class recall",
        "Classes ordered from the most to the least frequent in training.",
    )
    for model, group in table.groupby("model"):
        wide = group.pivot_table(
            index=["class", "train_count"], columns="loss", values="recall"
        ).reset_index()
        wide = wide.sort_values("train_count", ascending=False)
        losses = [x for x in shown.get(model, []) if x in wide.columns]
        ctx.doc.add(
            Table(
                ["class", "training count", *losses],
                [
                    [str(r["class"]), str(r["train_count"]), *(f"{r[x]:.3f}" for x in losses)]
                    for _, r in wide.iterrows()
                ],
                caption=f"{model}: mean test recall per class",
            )
        )


def _recalls(ctx: ReportContext, largest: float, shown: dict[str, list[str]]) -> pd.DataFrame:
    """One row per run and class at ``largest`` for the losses ``shown`` per model: model, loss, class,
    train_count, recall."""
    runs = ctx.runs[ctx.runs["ratio"] == largest]
    pairs = zip(runs["model"], runs["loss"], strict=True)
    runs = runs[[loss in shown.get(model, ()) for model, loss in pairs]]
    rows = []
    for _, r in runs.iterrows():
        names, counts = r["class_names"], r["train_counts"]
        if not isinstance(names, list) or not isinstance(counts, list):
            continue
        for k, (name, count) in enumerate(zip(names, counts, strict=False)):
            value = r.get(f"test/recall_class_{k}")
            if value is not None and np.isfinite(value):
                rows.append(
                    {
                        "model": r["model"],
                        "loss": r["loss"],
                        "class": str(name),
                        "train_count": count,
                        "recall": float(value),
                    }
                )
    return pd.DataFrame(rows)
