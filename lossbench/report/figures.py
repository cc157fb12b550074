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


def _save(fig, path: Path, notes: Sequence[str] = ()) -> Path:
    """Write the PNG; its text chunks name the panels drawn (``Panels``: the titles of the visible axes) and
    any ``notes`` (``Notes``), so what a figure shows can be checked without looking at it."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    panels = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    metadata = {"Panels": json.dumps(panels), "Notes": json.dumps(list(notes))}
    try:
        fig.savefig(path, format="png", metadata=metadata)
    finally:
        fig.clear()
    return path


def _legend(fig, colours: dict, losses: list[str], other: str | None = None) -> None:
    """One legend for the whole figure, every loss drawn in any panel, in the report's loss order; ``other``
    labels the thin grey lines of the losses not drawn in colour."""
    from matplotlib.lines import Line2D

    shown = [x for x in colours if x in set(losses)]
    handles = [Line2D([], [], color=colours[x], marker="o", label=x) for x in shown]
    if other:
        handles.append(Line2D([], [], color="0.75", lw=0.9, label=other))
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
    robust: bool = False,
    highlight: int | None = None,
    reference: str | None = None,
) -> Path | None:
    """Mean per loss against ``x`` with its 95% CI band, one panel per facet value (from a summary table).

    ``robust``: the y axis spans the bulk of the means (:func:`bulk_limits`); a loss whose means fall off it
    is marked at the axis edge with its name and values, so one far-off loss cannot squeeze the others.
    ``highlight``: in each panel only the ``highlight`` best-ranked losses at the largest ``x`` (the
    table's ``rank``) and ``reference`` are drawn in colour with their bands; the others are thin grey
    lines (the PNG's notes list the coloured ones per panel)."""
    if table.empty or table[x].nunique() < 2:
        return None
    panels = _panels(table, facet)
    ncols = min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    fig, axes = _figure(nrows, ncols, 5.2, 3.9)
    notes: list[str] = []
    coloured: list[str] = []
    for ax, (label, group) in zip(axes.flat, panels, strict=False):
        shown = set(group["loss"])
        if highlight is not None:
            last = group[group[x] == group[x].max()].sort_values(["rank", "loss"])
            shown = {*[v for v in last["loss"] if v != reference][:highlight], reference}
            notes.append(f"{label}: " + ", ".join(v for v in last["loss"] if v in shown))
        coloured += [v for v in group["loss"].unique() if v in shown]
        for loss, rows in group.groupby("loss", sort=False):
            rows = rows.sort_values(x)
            if loss not in shown:
                ax.plot(rows[x], rows["mean"], color="0.75", lw=0.9, zorder=1)
                continue
            # one summary row per x: a plain line (seaborn's lineplot costs ~0.1 s a call, 9 losses x panels)
            ax.plot(rows[x], rows["mean"], color=colours[loss], marker="o", label=loss, zorder=3)
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
        if robust:
            notes += _off_scale(ax, group, x, colours, clip, label)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    _legend(fig, colours, coloured, other="other losses" if highlight is not None else None)
    if title:
        fig.suptitle(title)
    return _save(fig, path, notes)


FAR_GAP = 0.5  # a gap between sorted values wider than this share of their whole span splits off far values


def bulk_limits(values, clip: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """Fences around the bulk of ``values`` when a few lie far from it, else None.

    Far means: the widest gap between consecutive sorted values is more than FAR_GAP of their whole span,
    and the values on the far side of it are fewer than those on the near side (the bulk). The fence on the
    far side is the middle of the gap; the other is the range's end (``clip``) or unbounded. Quantile rules
    (Tukey's fences, the MAD) fail both ways here: with a quarter of the values off they see no outlier, and
    with a tight bulk they cut ordinary spread."""
    v = np.sort(np.asarray(values, dtype=float))
    v = v[np.isfinite(v)]
    if v.size < 3 or v[-1] == v[0]:
        return None
    gaps = np.diff(v)
    i = int(np.argmax(gaps))
    if gaps[i] <= FAR_GAP * (v[-1] - v[0]):
        return None
    below, above = i + 1, v.size - i - 1  # how many values lie under and over the gap
    if below == above:
        return None  # two groups of equal size: no bulk to favour
    middle = float(v[i] + gaps[i] / 2)
    low, high = clip if clip is not None else (-np.inf, np.inf)
    return (float(low), middle) if below > above else (middle, float(high))


def _off_scale(ax, group: pd.DataFrame, x: str, colours: dict, clip, label: str) -> list[str]:
    """Set the panel's y axis to the bulk of its means and mark the means beyond it at the edge: a triangle
    at each such x, and the loss's name and values in its colour. Returns one note per loss off the axis."""
    fences = bulk_limits(group["mean"], clip)
    if fences is None:
        return []
    inside = group[group["mean"].between(*fences)]
    # the bands of the bulk are shown up to the fences: over 2-3 seeds they can be as wide as the range
    low = max(np.nanmin(np.r_[inside["mean"], inside["ci_low"]]), fences[0])
    high = min(np.nanmax(np.r_[inside["mean"], inside["ci_high"]]), fences[1])
    pad = 0.08 * ((high - low) or 1.0)
    bottom, top = low - pad, high + pad * 3  # room at the top for the labels
    ax.set_ylim(bottom, top)
    notes, row = [], 0
    for loss, rows in group.groupby("loss", sort=False):
        off = rows[(rows["mean"] > top) | (rows["mean"] < bottom)].sort_values(x)
        if off.empty:
            continue
        above = bool((off["mean"] > top).any())
        edge = top if above else bottom
        ax.plot(
            off[x],
            [edge] * len(off),
            ls="none",
            marker="^" if above else "v",
            ms=9,
            color=colours[loss],
            clip_on=False,
            zorder=5,
        )
        values = ", ".join(f"{v:.2f}" for v in off["mean"])
        text = f"{'↑' if above else '↓'} {loss} off scale: {values}"
        ax.text(
            0.02,
            (0.97 - 0.08 * row) if above else (0.03 + 0.08 * row),
            text,
            transform=ax.transAxes,
            ha="left",
            va="top" if above else "bottom",
            fontsize=8,
            color=colours[loss],
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 1},
        )
        row += 1
        notes.append(f"{label}: {loss} {values}" if label else f"{loss} {values}")
    return notes


def small_multiples(
    table: pd.DataFrame,
    x: str,
    facet: list[str],
    order: list[str],
    colours: dict,
    path: Path,
    *,
    reference: str,
    ylabel: str,
    xlabel: str,
    clip: tuple[float, float] | None = None,
    ncols: int = 5,
) -> Path | None:
    """One small panel per (facet value, loss): the loss's mean against ``x`` with its 95% CI band, and the
    ``reference`` loss (the baseline) as a grey line in every other panel of its facet. Every facet value
    starts a new row; all panels share one y axis, so heights compare across panels."""
    if table.empty or table[x].nunique() < 2:
        return None
    facets = _panels(table, facet)
    cells = []  # (row, column, facet label, loss, rows of the loss, rows of the reference)
    row = 0
    for label, group in facets:
        losses = [loss for loss in order if loss in set(group["loss"])]
        ref = group[group["loss"] == reference].sort_values(x)
        for i, loss in enumerate(losses):
            cells.append((row + i // ncols, i % ncols, label, loss, group[group["loss"] == loss], ref))
        row += -(-len(losses) // ncols)
    width = min(ncols, max(c[1] for c in cells) + 1)
    fig, axes = _figure(row, width, 2.7, 2.3)
    used = set()
    low = np.nanmin(np.r_[table["mean"], table["ci_low"]])
    high = np.nanmax(np.r_[table["mean"], table["ci_high"]])
    if clip is not None:
        low, high = max(low, clip[0]), min(high, clip[1])
    pad = 0.05 * ((high - low) or 1.0)
    for r, c, label, loss, rows, ref in cells:
        ax = axes[r, c]
        used.add((r, c))
        if loss != reference and not ref.empty:
            ax.plot(ref[x], ref["mean"], color="0.55", lw=1.4, ls="--", label=reference)
        rows = rows.sort_values(x)
        lo, hi = rows["ci_low"], rows["ci_high"]
        if clip is not None:
            lo, hi = lo.clip(*clip), hi.clip(*clip)
        ax.fill_between(rows[x], lo, hi, color=colours[loss], alpha=0.2, lw=0)
        ax.plot(rows[x], rows["mean"], color=colours[loss], marker="o", ms=3.5, lw=1.6)
        ax.set_xscale("log" if (rows[x] > 0).all() else "linear")
        ticks = sorted(table[x].unique())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=7)
        ax.minorticks_off()
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylim(low - pad, high + pad)
        ax.set_title(f"{label} · {loss}" if label else loss, fontsize=9)
        ax.set_xlabel(xlabel if r == row - 1 or (r + 1, c) not in {(a, b) for a, b, *_ in cells} else "")
        ax.set_ylabel(ylabel if c == 0 else "", fontsize=8)
        ax.grid(alpha=0.3)
    for (r, c), ax in np.ndenumerate(axes):
        if (r, c) not in used:
            ax.set_visible(False)
    from matplotlib.lines import Line2D

    fig.legend(
        handles=[Line2D([], [], color="0.55", ls="--", label=f"{reference} (reference)")],
        loc="outside upper center",
        frameon=False,
    )
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
    """Reliability diagrams (accuracy against confidence per bin, pooled over seeds): one row per model, one
    panel per loss that has data on it (a loss N/A on a model gets no panel), in the order given."""
    if not diagrams:
        return None
    models = sorted({m for m, _ in diagrams})
    rows = {m: [loss for mm, loss in diagrams if mm == m] for m in models}
    ncols = max(len(v) for v in rows.values())
    fig, axes = _figure(len(models), ncols, 2.9, 2.9)
    for i, model in enumerate(models):
        for j in range(ncols):
            ax = axes[i, j]
            if j >= len(rows[model]):
                ax.set_visible(False)
                continue
            loss = rows[model][j]
            full = diagrams[(model, loss)]
            full = full[full["count"] > 0]
            ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
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
            ax.set(xlim=(0, 1), ylim=(0, 1), title=f"{model} · {loss}", xlabel="confidence")
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


CURVE_LABELS = {
    "train_loss": "training loss (the loss's own)",
    "val_loss": "validation loss (the loss's own)",
    "val_balanced_accuracy": "validation balanced accuracy",
}


def training_curves(table: pd.DataFrame, colours: dict, path: Path, title: str) -> Path | None:
    """Mean per-epoch curves per loss: one row per (model, ratio), one column per curve (from a table with
    columns model, ratio, loss, curve, step, mean). Loss curves on a log scale when all are positive and
    span a decade or more (the losses' scales differ by orders of magnitude)."""
    if table.empty:
        return None
    curves = [c for c in CURVE_LABELS if c in set(table["curve"])]
    curves += sorted(set(table["curve"]) - set(curves))
    settings = list(table[["model", "ratio"]].drop_duplicates().sort_values(["model", "ratio"]).itertuples())
    fig, axes = _figure(len(settings), len(curves), 4.0, 2.8)
    for i, setting in enumerate(settings):
        rows = table[(table["model"] == setting.model) & (table["ratio"] == setting.ratio)]
        for j, curve in enumerate(curves):
            ax = axes[i, j]
            data = rows[rows["curve"] == curve]
            if data.empty:
                ax.set_visible(False)
                continue
            for loss, line in data.groupby("loss", sort=False):
                line = line.sort_values("step")
                ax.plot(line["step"], line["mean"], color=colours.get(loss, "k"), lw=1.3, label=loss)
            positive = data["mean"][data["mean"] > 0]
            if curve.endswith("loss") and len(positive) == len(data) and positive.max() > 10 * positive.min():
                ax.set_yscale("log")  # only across a decade or more: a log axis needs major ticks to read
            ax.minorticks_off()  # minor ticks of 24 log axes cost ~1 s of layout
            ax.set_title(f"{setting.model} · ρ={setting.ratio:g} · {curve}", fontsize=9)
            ax.set_xlabel("epoch" if i == len(settings) - 1 else "")
            ax.set_ylabel(CURVE_LABELS.get(curve, curve) if i == 0 else "", fontsize=8)
            ax.grid(alpha=0.3)
    _legend(fig, colours, list(table["loss"].unique()))
    fig.suptitle(title)
    return _save(fig, path)


LOG_DECADES = 2  # a knob whose tried values span more than this many decades gets a log x axis


def tuning_sensitivity(
    points: pd.DataFrame, order: list[str], path: Path, *, ylabel: str, ncols: int = 4
) -> Path | None:
    """The objective of every tuning trial against each knob it tried: one small panel per (loss, knob)
    (columns ``loss``, ``knob``, ``value``, ``objective``, ``setting``, ``chosen``), the losses in ``order``,
    one colour per setting (model · ρ ...) shared by every panel, the chosen trials ringed in black. A knob
    whose values span more than LOG_DECADES decades (a learning rate, a regularization strength) gets a log
    x axis."""
    import seaborn as sns

    if points.empty:
        return None
    panels = [
        (loss, knob, group)
        for loss in order
        for knob, group in points[points["loss"] == loss].groupby("knob", sort=True)
    ]
    if not panels:
        return None
    import re

    def natural(text: str) -> list:  # "logreg · ρ=50" before "logreg · ρ=100"
        return [float(part) if part[:1].isdigit() else part for part in re.split(r"(\d+(?:\.\d+)?)", text)]

    settings = sorted(points["setting"].unique(), key=natural)
    colours = dict(
        zip(
            settings, sns.color_palette("Dark2" if len(settings) <= 8 else "husl", len(settings)), strict=True
        )
    )
    width = min(ncols, len(panels))
    nrows = -(-len(panels) // width)
    fig, axes = _figure(nrows, width, 2.8, 2.4)
    # one scale per knob, over every loss's trials: the panels of a knob read alike
    spread = points.groupby("knob")["value"].agg(["min", "max"])
    log = {k: bool(r["min"] > 0 and r["max"] > 10**LOG_DECADES * r["min"]) for k, r in spread.iterrows()}
    for ax, (loss, knob, group) in zip(axes.flat, panels, strict=False):
        sns.scatterplot(
            data=group,
            x="value",
            y="objective",
            hue="setting",
            palette=colours,
            s=18,
            alpha=0.75,
            ax=ax,
            legend=False,
            linewidth=0,
        )
        best = group[group["chosen"]]
        if not best.empty:
            ax.scatter(best["value"], best["objective"], s=70, facecolors="none", edgecolors="black", lw=1.2)
        if log[knob]:
            ax.set_xscale("log")
        ax.set_title(f"{loss} · {knob}", fontsize=9)
        ax.set_xlabel(knob, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[s], marker="o", ls="none", label=s) for s in settings]
    handles.append(Line2D([], [], color="black", marker="o", mfc="none", ls="none", label="chosen trial"))
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    return _save(fig, path)


def tuning_gains(
    table: pd.DataFrame, order: list[str], colours: dict, path: Path, *, xlabel: str, scale: float = 1.0
) -> Path | None:
    """Tuned − default per loss with its 95% interval, one panel per setting (columns ``setting``, ``loss``,
    ``gain``, ``ci_low``, ``ci_high``; values times ``scale``: 100 for points), a line at 0."""
    table = table[np.isfinite(table["gain"].astype(float))]
    if table.empty:
        return None
    settings = list(dict.fromkeys(table["setting"]))
    ncols = min(3, len(settings))
    nrows = -(-len(settings) // ncols)
    losses = [x for x in order if x in set(table["loss"])]
    losses += sorted(set(table["loss"]) - set(losses))
    fig, axes = _figure(nrows, ncols, 3.8, 0.32 * len(losses) + 1.3)
    for ax, setting in zip(axes.flat, settings, strict=False):
        rows = table[table["setting"] == setting]
        for _, r in rows.iterrows():
            y = losses.index(r["loss"])
            gain, low, high = (scale * float(r[k]) for k in ("gain", "ci_low", "ci_high"))
            colour = colours.get(r["loss"], "0.3")
            if np.isfinite(low) and np.isfinite(high):
                ax.plot([low, high], [y, y], color=colour, lw=2, alpha=0.6)
            ax.plot([gain], [y], marker="o", color=colour, ms=6)
        ax.axvline(0, color="0.4", lw=1, ls="--")
        ax.set_yticks(range(len(losses)), losses, fontsize=8)
        ax.set_ylim(len(losses) - 0.5, -0.5)
        ax.set_title(setting, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes.flat[len(settings) :]:
        ax.set_visible(False)
    return _save(fig, path)
