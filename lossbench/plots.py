"""Figures saved as PNG files. Rendering goes through the Agg canvas directly, so importing this module never
changes pyplot's global backend and no figure is left registered with pyplot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["MAX_ANNOTATED_CLASSES", "confusion_matrix_figure"]

# Beyond this many classes the per-cell numbers become unreadable at any sane figure size.
MAX_ANNOTATED_CLASSES = 20


def confusion_matrix_figure(
    cm: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    *,
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    """Draw a confusion matrix as a heatmap (matplotlib) and save it as a PNG.

    Parameters
    ----------
    cm : ndarray, shape (C, C)
        Counts: ``cm[i, j]`` = samples of true class ``i`` predicted as ``j`` (``metrics.confusion``).
    class_names : sequence of str, length C
        Tick labels, in class-index order.
    path : str or Path
        Output file; parent folders are created. Written as PNG whatever the suffix.
    normalize : bool
        Divide each row by its total, so the diagonal is per-class recall (colour scale fixed to [0, 1]).
        Rows of classes with no samples stay blank instead of pretending to be 0.
    title : str, optional
        Figure title.

    Returns
    -------
    Path
        ``path`` as a ``Path``.

    The figure grows with C (about 0.45 in per class, at least 5 in); cells are annotated up to
    ``MAX_ANNOTATED_CLASSES`` classes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    func = "confusion_matrix_figure"
    counts = np.asarray(cm)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] < 1:
        raise ValueError(
            f"The 'cm' parameter of {func} must be a square 2-D array. Got shape {counts.shape}."
        )
    if counts.dtype.kind not in "iuf" or not np.all(np.isfinite(counts)) or (counts < 0).any():
        raise ValueError(f"The 'cm' parameter of {func} must hold finite non-negative counts.")
    n = counts.shape[0]
    names = [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(
            f"The 'class_names' parameter of {func} must have one name per row of 'cm' ({n}). "
            f"Got {len(names)} instead."
        )

    if normalize:
        row_sums = counts.sum(axis=1, keepdims=True).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(row_sums > 0, counts / row_sums, np.nan)
        fmt, vmax, cbar_label = ".2f", 1.0, "fraction of true class (row-normalised)"
    else:
        values = counts
        fmt = ".0f"
        vmax, cbar_label = None, "count"
    annotate = n <= MAX_ANNOTATED_CLASSES

    # plain imshow + text on a fixed layout: seaborn's heatmap under a constrained layout costs ~0.5 s
    # a figure, and every run of a sweep draws one
    side = max(5.0, 0.45 * n + 2.5)
    fig = Figure(figsize=(side + 1.0, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.2, 0.18, 0.62, 0.72))
    cax = fig.add_axes((0.85, 0.18, 0.03, 0.72))
    masked = np.ma.masked_invalid(np.asarray(values, dtype=np.float64))
    image = ax.imshow(masked, cmap="Blues", vmin=0.0, vmax=vmax, aspect="equal", interpolation="nearest")
    fig.colorbar(image, cax=cax, label=cbar_label)
    if annotate:
        top = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
        size = 10 if n <= 10 else 8
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                colour = "white" if v > 0.6 * (vmax or top) else "black"
                ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=size, color=colour)
    ax.set_xticks(range(n), names)
    ax.set_yticks(range(n), names)
    if n <= 30:  # white grid lines between cells
        ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=0.5)
        ax.tick_params(which="minor", length=0)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n > 6:  # long names collide when horizontal
        for label in ax.get_xticklabels():
            label.set(rotation=45, ha="right", rotation_mode="anchor")
    if title:
        ax.set_title(title)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, format="png")
    finally:
        fig.clear()  # Figure objects outside pyplot are freed with their last reference; clear eagerly anyway
    return out
