"""Classes with very few training examples: which settings have them, how many, and the fewest."""

from __future__ import annotations

import pandas as pd

from lossbench.report.document import B
from lossbench.report.sections.context import ReportContext
from lossbench.report.sections.formatting import fmt_axis

MIN_TRAIN_SAMPLES = 5  # fewer training examples of a class than this: its recall says little about the loss


def scarce_classes(ctx: ReportContext) -> pd.DataFrame:
    """One row per setting (the report's setting axes) where some class has fewer than MIN_TRAIN_SAMPLES
    training examples in some run: ``n_classes``, ``n_scarce`` (most such classes in one run),
    ``n_scarce_min`` (fewest in one run: seeds can draw differently), ``fewest`` (the smallest count)."""
    rows = []
    for _, r in ctx.runs.iterrows():
        counts = r.get("train_counts")
        if not isinstance(counts, list) or not counts:
            continue
        counts = [int(c) for c in counts]
        rows.append(
            {
                **{a: r[a] for a in ctx.axes},
                "n_classes": len(counts),
                "scarce": sum(c < MIN_TRAIN_SAMPLES for c in counts),
                "fewest": min(counts),
            }
        )
    columns = [*ctx.axes, "n_classes", "n_scarce", "n_scarce_min", "fewest"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = (
        pd.DataFrame(rows)
        .groupby(ctx.axes, dropna=False, sort=True)
        .agg(
            n_classes=("n_classes", "max"),
            n_scarce=("scarce", "max"),
            n_scarce_min=("scarce", "min"),
            fewest=("fewest", "min"),
        )
        .reset_index()
    )
    return table[table["n_scarce"] > 0].reset_index(drop=True)[columns]


def scarce_finding(ctx: ReportContext) -> list | None:
    """The finding that names the settings with scarce classes; None when there are none. Settings that
    differ only in the model (they share their training split) are named together."""
    table = scarce_classes(ctx)
    if table.empty:
        return None
    split_axes = [a for a in ctx.axes if a != "model"]
    bits = []
    same = [*split_axes, "n_classes", "n_scarce", "n_scarce_min", "fewest"]
    for _, group in table.groupby(same, sort=True):
        first = group.iloc[0]
        where = ", ".join(
            f"{'ρ' if a == 'ratio' else a} = {fmt_axis(first[a])}" for a in split_axes if a == "ratio"
        )
        others = ", ".join(f"{a} = {fmt_axis(first[a])}" for a in split_axes if a != "ratio")
        models = ", ".join(str(m) for m in sorted(group["model"].unique()))
        n = int(first["n_scarce"])
        many = f"{n}" if n == int(first["n_scarce_min"]) else f"up to {n}"
        fewest = int(first["fewest"])
        bits.append(
            f"at {where}{' · ' + others if others else ''} ({models}): {many} of {int(first['n_classes'])} "
            f"classes have fewer than {MIN_TRAIN_SAMPLES} training samples (fewest: {fewest} "
            f"sample{'s' if fewest != 1 else ''})"
        )
    return [
        B("Few training samples:"),
        " " + "; ".join(bits) + ". Test recall on those classes, and the balanced metrics that average it, "
        f"come from classes seen at most {MIN_TRAIN_SAMPLES - 1} times in training.",
    ]
