"""The per-run confusion-matrix figure, a PNG drawn with Pillow.

Every run of a sweep draws one, so it must cost milliseconds: matplotlib needs ~0.3 s for a 10-class matrix
(mostly text layout), Pillow 3–7 ms, and :func:`png_bytes` writes the PNG in ~3 ms more. The report's own
figures (seaborn, matplotlib) are drawn once a sweep."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

__all__ = ["MAX_ANNOTATED_CLASSES", "confusion_matrix_figure", "png_bytes"]

# ColorBrewer "Blues" (9 classes), the anchors of matplotlib's Blues colormap: the same colours, no matplotlib
_BLUES = np.array(
    [
        (247, 251, 255),
        (222, 235, 247),
        (198, 219, 239),
        (158, 202, 225),
        (107, 174, 214),
        (66, 146, 198),
        (33, 113, 181),
        (8, 81, 156),
        (8, 48, 107),
    ],
    dtype=np.float64,
)
_TEXT, _GRID, _EMPTY = (30, 30, 30), (255, 255, 255), (242, 242, 242)

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
    """Draw a confusion matrix as a heatmap and save it as a PNG.

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

    The figure grows with C (cells of 48 px up to 10 classes, at least 300 px of matrix); cells are annotated
    up to ``MAX_ANNOTATED_CLASSES`` classes.
    """
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
        values = counts.astype(np.float64)
        fmt = ".0f"
        vmax = float(values.max()) if values.max() > 0 else 1.0
        cbar_label = "count"
    image = _draw(values, names, fmt=fmt, vmax=vmax, cbar_label=cbar_label, title=title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png_bytes(np.asarray(image)))
    return out


def png_bytes(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` (uint8, [H, W, 3]): rows unfiltered, deflated at zlib level 1.

    A 10-class matrix (653 x 594 px) takes ~3 ms and ~68 kB, where Pillow's PNG writer, which tries its
    row filters on every row, takes ~7 ms for ~57 kB even at its fastest level; the figure is mostly flat
    colour, which deflate compresses well without filtering. Any PNG reader reads it (tests: Pillow and
    matplotlib, pixel for pixel)."""
    import struct
    import zlib

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"png_bytes takes an [H, W, 3] RGB array of uint8; got {rgb.dtype} {rgb.shape}")
    height, width, _ = rgb.shape
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # each row: filter type 0 (none), then pixels
    rows[:, 1:] = rgb.reshape(height, 3 * width)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # IHDR: 8 bits per channel, colour type 2 (RGB), deflate, PNG's filter method (each row names its filter
    # type: 0 here), no interlace
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
        + chunk(b"IEND", b"")
    )


def _blues(x: float) -> tuple[int, int, int]:
    """The Blues colour of x in [0, 1] (linear between the anchors)."""
    pos = min(max(x, 0.0), 1.0) * (len(_BLUES) - 1)
    k = min(int(pos), len(_BLUES) - 2)
    rgb = _BLUES[k] + (pos - k) * (_BLUES[k + 1] - _BLUES[k])
    return tuple(int(c + 0.5) for c in rgb)  # c >= 0


@cache
def _font(size: int):  # the embedded font is decoded on each load_default call: ~5 ms
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


@cache
def _cell_text(text: str, size: int, ink: tuple[int, int, int]):
    return _text_image(text, _font(size), ink)


def _text_image(text: str, font, fill=_TEXT):
    """A text on a transparent image (to rotate)."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(text)
    img = Image.new("RGBA", (max(right - left, 1) + 2, max(bottom - top, 1) + 2), (255, 255, 255, 0))
    ImageDraw.Draw(img).text((1 - left, 1 - top), text, font=font, fill=fill)
    return img


def _draw(values: np.ndarray, names: list[str], *, fmt: str, vmax: float, cbar_label: str, title):
    """The figure: a copy of its frame (:func:`_frame`: title, labels, colour bar; the same for every run of a
    sweep, so drawn once) with the matrix's cells drawn in."""
    from PIL import ImageDraw

    frame, (left, top, cell, number_size) = _frame(tuple(names), fmt, float(vmax), cbar_label, title)
    img = frame.copy()
    draw = ImageDraw.Draw(img)
    n = len(names)
    side = n * cell
    annotate = n <= MAX_ANNOTATED_CLASSES
    for i in range(n):
        for j in range(n):
            v = values[i, j]
            x0, y0 = left + j * cell, top + i * cell
            colour = _blues(v / vmax) if np.isfinite(v) else _EMPTY
            draw.rectangle((x0, y0, x0 + cell - 1, y0 + cell - 1), fill=colour)
            if annotate and np.isfinite(v):
                ink = (255, 255, 255) if v > 0.6 * vmax else _TEXT
                label = _cell_text(format(v, fmt), number_size, ink)  # cached: 0.00-1.00 repeat
                img.paste(label, (x0 + (cell - label.width) // 2, y0 + (cell - label.height) // 2), label)
    if n <= 30:  # white grid lines between cells
        for k in range(1, n):
            draw.line((left + k * cell, top, left + k * cell, top + side), fill=_GRID)
            draw.line((left, top + k * cell, left + side, top + k * cell), fill=_GRID)
    return img


@lru_cache(maxsize=8)
def _frame(names: tuple[str, ...], fmt: str, vmax: float, cbar_label: str, title):
    """Everything of the figure but the matrix's cells, and where they go: (image, (left, top, cell size,
    the cells' font size)). Callers copy the image."""
    from PIL import Image, ImageDraw

    n = len(names)
    cell = 48 if n <= 10 else 32 if n <= 30 else 20
    cell = max(cell, -(-300 // n))  # at least 300 px of matrix
    label_font, small = _font(13), _font(12)
    number_font = _font(max(9, min(14, int(cell * 0.32))))
    title_font = _font(15)
    rotate = n > 6  # long names collide when horizontal
    label_w = max(label_font.getlength(x) for x in names)
    label_h = label_font.getbbox("Ag")[3]
    pad = 12
    left = pad + label_h + 10 + int(label_w) + 8  # "true class", the row labels, a gap
    top = pad + (28 if title else 4)
    side = n * cell
    x_labels = int(label_w * 0.71 + label_h) + 8 if rotate else label_h + 8
    bottom = x_labels + label_h + 2 * pad
    cbar_x = left + side + 24
    right = 16 + 10 + int(small.getlength("0.00" if fmt == ".2f" else f"{vmax:.0f}")) + 10 + label_h + pad
    width, height = cbar_x + right, top + side + bottom
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)

    if title:
        w = title_font.getlength(title)
        draw.text((max(pad, left + side / 2 - w / 2), pad), title, font=title_font, fill=_TEXT)
    for k, name in enumerate(names):  # row labels, right-aligned; column labels under the matrix
        draw.text((left - 8, top + k * cell + cell / 2), name, font=label_font, fill=_TEXT, anchor="rm")
        centre = left + k * cell + cell / 2
        if rotate:
            label = _text_image(name, label_font).rotate(45, expand=True, resample=Image.BICUBIC)
            img.paste(label, (int(centre - label.width + label_h / 2), top + side + 6), label)
        else:
            draw.text((centre, top + side + 6), name, font=label_font, fill=_TEXT, anchor="mt")
    draw.text(
        (left + side / 2, top + side + x_labels + pad),
        "predicted class",
        font=label_font,
        fill=_TEXT,
        anchor="mt",
    )
    ylabel = _text_image("true class", label_font).rotate(90, expand=True)
    img.paste(ylabel, (pad, int(top + side / 2 - ylabel.height / 2)), ylabel)

    # colour bar with three ticks, and its caption
    ramp = np.linspace(1.0, 0.0, side) * (len(_BLUES) - 1)
    k = np.minimum(ramp.astype(int), len(_BLUES) - 2)
    rows = _BLUES[k] + (ramp - k)[:, None] * (_BLUES[k + 1] - _BLUES[k])
    bar = np.repeat((rows + 0.5).astype(np.uint8)[:, None, :], 17, axis=1)
    img.paste(Image.fromarray(bar, "RGB"), (cbar_x, top))
    draw.rectangle((cbar_x, top, cbar_x + 16, top + side), outline=(160, 160, 160))
    for frac in (0.0, 0.5, 1.0):
        y = top + side - frac * side
        draw.line((cbar_x + 16, y, cbar_x + 20, y), fill=_TEXT)
        draw.text((cbar_x + 23, y), format(frac * vmax, fmt), font=small, fill=_TEXT, anchor="lm")
    caption = _text_image(cbar_label, small).rotate(90, expand=True)
    cx = cbar_x + 23 + int(small.getlength(format(vmax, fmt))) + 8
    img.paste(caption, (cx, int(top + side / 2 - caption.height / 2)), caption)
    return img, (left, top, cell, number_font.size)
