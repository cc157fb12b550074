"""The report's figures: seaborn on matplotlib Figure objects (no pyplot state), saved as PNG.

Every function draws from tables computed in :mod:`lossbench.report.stats` (the same numbers as the report's
tables and CSV) and returns the written path, or None when the data cannot support the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

DPI = 110


def palette(losses: Sequence[str]) -> dict[str, tuple]:
    """One colour per loss, the same in every figure of a report."""
    import seaborn as sns

    colours = sns.color_palette("tab10" if len(losses) <= 10 else "husl", len(losses))
    return dict(zip(losses, colours, strict=True))


def _figure(nrows: int, ncols: int, width: float, height: float):
    import logging

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # "categorical units" notes for class names
    fig = Figure(figsize=(width * ncols, height * nrows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, format="png")
    finally:
        fig.clear()
    return path


def _legend(fig, colours: dict, losses: list[str]) -> None:
    """One legend for the whole figure, every loss drawn in any panel, in the report's loss order."""
    from matplotlib.lines import Line2D

    shown = [x for x in colours if x in set(losses)]
    handles = [Line2D([], [], color=colours[x], marker="o", label=x) for x in shown]
    fig.legend(handles=handles, loc="outside right center", title="loss", frameon=False)


def _panels(table: pd.DataFrame, facet: list[str]) -> list[tuple[str, pd.DataFrame]]:
    if not facet:
        return [("", table)]
    out = []
    for key, group in table.groupby(facet, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        out.append(
            (
                " · ".join(
                    f"{a}={v:g}" if isinstance(v, float) else f"{v}" for a, v in zip(facet, key, strict=True)
                ),
                group,
            )
        )
    return out


def lines_with_bands(
    table: pd.DataFrame,
    x: str,
    facet: list[str],
    colours: dict,
    path: Path,
    *,
    ylabel: str,
    xlabel: str,
    log_x: bool = True,
    title: str | None = None,
    clip: tuple[float, float] | None = None,
) -> Path | None:
    """Mean per loss against ``x`` with its 95% CI band, one panel per facet value (from a summary table)."""
    if table.empty or table[x].nunique() < 2:
        return None
    panels = _panels(table, facet)
    ncols = min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    fig, axes = _figure(nrows, ncols, 5.2, 3.9)
    for ax, (label, group) in zip(axes.flat, panels, strict=False):
        for loss, rows in group.groupby("loss", sort=False):
            rows = rows.sort_values(x)
            # one summary row per x: a plain line (seaborn's lineplot costs ~0.1 s a call, 9 losses x panels)
            ax.plot(rows[x], rows["mean"], color=colours[loss], marker="o", label=loss)
            low, high = rows["ci_low"], rows["ci_high"]
            if clip is not None:  # a t-interval over 2-3 seeds can leave the metric's range
                low, high = low.clip(*clip), high.clip(*clip)
            ax.fill_between(rows[x], low, high, color=colours[loss], alpha=0.15, lw=0)
        if log_x:
            ax.set_xscale(
                "symlog" if (group[x] <= 0).any() else "log",
                **({"linthresh": group.loc[group[x] > 0, x].min() or 1e-4} if (group[x] <= 0).any() else {}),
            )
        ticks = sorted(group[x].unique())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set(xlabel=xlabel, ylabel=ylabel, title=label)
        ax.grid(alpha=0.3)
        if ax.get_legend():
            ax.get_legend().remove()
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    _legend(fig, colours, list(table["loss"].unique()))
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def heatmaps(
    table: pd.DataFrame, facet: list[str], order: list[str], path: Path, *, label: str, higher: bool
) -> Path | None:
    """Mean metric, loss x ratio, one heatmap per facet value; the best loss of each column boxed."""
    from matplotlib.patches import Rectangle

    if table.empty:
        return None
    panels = _panels(table, facet)
    ncols = min(len(panels), 2)
    nrows = -(-len(panels) // ncols)
    fig, axes = _figure(nrows, ncols, 1.0 + 0.95 * table["ratio"].nunique() + 0.6, 0.42 * len(order) + 1.3)
    vmin, vmax = np.nanmin(table["mean"]), np.nanmax(table["mean"])
    cmap = "viridis" if higher else "viridis_r"
    image = None
    # imshow + text rather than seaborn's heatmap (a colour bar per panel under the constrained layout cost
    # ~3 s a panel); one colour bar for the figure, as every panel shares the scale
    for ax, (title, group) in zip(axes.flat, panels, strict=False):
        grid = group.pivot_table(index="loss", columns="ratio", values="mean")
        grid = grid.reindex([o for o in order if o in grid.index])
        values = grid.to_numpy(dtype=float)
        image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
        span = (vmax - vmin) or 1.0
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                dark = (v - vmin) / span < 0.5 if higher else (v - vmin) / span > 0.5
                ax.text(
                    j, i, f"{v:.3f}", ha="center", va="center", fontsize=9, color="white" if dark else "black"
                )
        best = grid.idxmax() if higher else grid.idxmin()
        for j, loss in enumerate(best):
            if isinstance(loss, str):
                i = list(grid.index).index(loss)
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
        ax.set_xticks(range(len(grid.columns)), [f"{float(t):g}" for t in grid.columns])
        ax.set_yticks(range(len(grid.index)), list(grid.index))
        ax.set_xticks(np.arange(len(grid.columns) + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(len(grid.index) + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=0.5)
        ax.tick_params(which="minor", length=0)
        ax.set(xlabel="imbalance ratio ρ", ylabel="", title=title)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes.flat[: len(panels)]), label=label, shrink=0.9)
    return _save(fig, path)


def reliability(
    diagrams: dict[tuple[str, str], pd.DataFrame], colours: dict, path: Path, title: str
) -> Path | None:
    """Reliability diagrams (accuracy against confidence per bin, pooled over seeds), model x loss grid."""
    if not diagrams:
        return None
    models = sorted({m for m, _ in diagrams})
    losses = list(dict.fromkeys(loss for _, loss in diagrams))
    fig, axes = _figure(len(models), len(losses), 2.9, 2.9)
    for i, model in enumerate(models):
        for j, loss in enumerate(losses):
            ax = axes[i, j]
            bins = diagrams.get((model, loss))
            ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
            if bins is None:
                ax.text(0.5, 0.5, "N/A", ha="center", va="center", color="grey")
            else:
                full = bins[bins["count"] > 0]
                ax.bar(
                    full["low"],
                    full["accuracy"],
                    width=full["high"] - full["low"],
                    align="edge",
                    color=colours[loss],
                    alpha=0.75,
                    ec="white",
                    label="accuracy",
                )
                ax.plot(full["confidence"], full["accuracy"], "k.", ms=3)
            ax.set(
                xlim=(0, 1),
                ylim=(0, 1),
                title=f"{model} · {loss}",
                xlabel="confidence" if i == len(models) - 1 else "",
            )
            if j == 0:
                ax.set_ylabel("accuracy")
    fig.suptitle(title)
    return _save(fig, path)


def per_class_recall(table: pd.DataFrame, colours: dict, path: Path, title: str) -> Path | None:
    """Mean test recall per class (classes ordered head to tail by training count), one panel per model."""
    import seaborn as sns

    if table.empty:
        return None
    models = sorted(table["model"].unique())
    n_classes = table["class"].nunique()
    fig, axes = _figure(1, len(models), max(4.5, 0.45 * n_classes + 2), 3.8)
    for ax, model in zip(axes.flat, models, strict=True):
        rows = table[table["model"] == model]
        order = rows.drop_duplicates("class").sort_values("train_count", ascending=False)
        labels = [f"{c}\n(n={n})" for c, n in zip(order["class"], order["train_count"], strict=True)]
        sns.pointplot(
            data=rows,
            x="class",
            y="recall",
            hue="loss",
            order=list(order["class"]),
            ax=ax,
            palette=colours,
            errorbar=None,
            markersize=4,
            linewidth=1.2,
        )
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set(
            ylim=(-0.02, 1.02),
            xlabel="class (training count), head → tail",
            ylabel="test recall",
            title=model,
        )
        ax.grid(alpha=0.3)
        if ax.get_legend():
            ax.get_legend().remove()
    _legend(fig, colours, list(table["loss"].unique()))
    fig.suptitle(title)
    return _save(fig, path)


def critical_difference(
    ranks: pd.Series, pairwise_p: pd.DataFrame, colours: dict, path: Path, title: str
) -> Path:
    """Critical-difference diagram: mean ranks, bars joining losses no test separates (scikit-posthocs)."""
    import scikit_posthocs as sp

    fig, axes = _figure(1, 1, 7.5, 0.32 * len(ranks) + 1.4)
    ax = axes[0, 0]
    sp.critical_difference_diagram(
        ranks,
        pairwise_p,
        ax=ax,
        color_palette={k: colours[k] for k in ranks.index},
        label_fmt_left="{label} ({rank:.2f})",
        label_fmt_right="({rank:.2f}) {label}",
    )
    ax.set_title(title, fontsize=10)
    return _save(fig, path)
