"""Figures drawn by a helper process (lossbench.report.drawing): the same files as drawn here; a figure with
nothing to draw leaves no block; a helper that ends has its figures drawn here. Real processes, real
figure functions."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import pandas as pd
from PIL import Image

from lossbench.report import figures as fig
from lossbench.report.document import Image as Block
from lossbench.report.drawing import AHEAD, Drawing, Pending

RANKS = pd.Series({"ce": 1.5, "focal": 2.0, "ldam": 2.5})
P = pd.DataFrame(0.5, index=RANKS.index, columns=RANKS.index)
COLOURS = fig.palette(list(RANKS.index))


def _pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


def _exit_now() -> None:
    os._exit(3)


def _panels(path) -> str:
    return Image.open(path).text["Panels"]


def test_a_figure_drawn_by_the_helper_is_the_one_drawn_here(tmp_path):
    with _pool() as pool:
        drawing = Drawing(pool)
        pending = drawing.draw(fig.critical_difference, RANKS, P, COLOURS, tmp_path / "a" / "cd.png", "title")
        empty = drawing.draw(
            fig.heatmaps, pd.DataFrame(), [], [], tmp_path / "a" / "heat.png", label="x", higher=True
        )
        assert isinstance(pending, Pending) and isinstance(empty, Pending)
        assert (
            drawing.draw(fig.critical_difference, RANKS, P, COLOURS, tmp_path / "a" / "3.png", "t")
            is not None
        )
        blocks = [
            Block("figures/cd.png", "cd"),
            Block("figures/heat.png", "heat"),
            Block("figures/3.png", "3"),
        ]
        for block, figure in zip(blocks[:2], (pending, empty), strict=True):
            drawing.later(block, figure)
        drawing.settle(blocks)
    here = fig.critical_difference(RANKS, P, COLOURS, tmp_path / "b" / "cd.png", "title")
    assert [b.alt for b in blocks] == ["cd", "3"]  # the heatmap of an empty table drew nothing: no block
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["3.png", "cd.png"]
    assert _panels(tmp_path / "a" / "cd.png") == _panels(here) == '["title"]'
    assert drawing.drawn_by_helper == 2 and drawing.drawn_here == 1  # AHEAD figures may wait at once
    assert AHEAD == 2


def test_figures_of_a_helper_that_ended_are_drawn_here(tmp_path):
    with _pool() as pool:
        pool.submit(_exit_now)
        drawing = Drawing(pool)
        pending = drawing.draw(fig.critical_difference, RANKS, P, COLOURS, tmp_path / "cd.png", "title")
        blocks = [Block("figures/cd.png", "cd")]
        if isinstance(pending, Pending):  # handed over before the pool saw its worker end
            drawing.later(blocks[0], pending)
        drawing.settle(blocks)
        later = drawing.draw(fig.critical_difference, RANKS, P, COLOURS, tmp_path / "cd2.png", "title")
    assert later == tmp_path / "cd2.png" and drawing.executor is None  # a broken pool is not tried again
    assert [b.alt for b in blocks] == ["cd"]
    assert _panels(tmp_path / "cd.png") == '["title"]'
    assert drawing.drawn_by_helper == 0 and drawing.drawn_here == 2
