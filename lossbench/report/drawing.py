"""Where a report's figures are drawn: in this process, or also in a helper process beside it.

Drawing is most of a report's build (seaborn and matplotlib's Agg renderer: ~60% of it for
``+experiment=imbalance``), and each figure is independent of the others and of the tables: a figure function
of :mod:`lossbench.report.figures` takes summary tables and a path, writes one PNG and returns the path, or
None when the data cannot support it. When the build is given an executor (a sweep's MLflow helper process,
:mod:`lossbench.writer`, idle once the runs are stored), :meth:`Drawing.draw` hands a figure to it while this
process goes on with the next section's numbers, and draws the figure itself when the helper already has
:data:`AHEAD` figures to draw, so both cores draw. :meth:`Drawing.settle` waits for the helper's figures
before the document is written; a figure the helper could not draw (it ended, or the call could not reach
it) is drawn here. An error of the figure function itself is raised, as it would be here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("lossbench")

AHEAD = 2  # figures handed to the helper and not drawn yet before this process draws the next one itself


@dataclass
class Pending:
    """A figure handed to the helper: its future and the call, to redraw it here if the helper cannot."""

    future: object
    path: Path  # the file it writes
    call: Callable
    args: tuple
    kwargs: dict


@dataclass
class Drawing:
    """The figures of one report build; ``executor``: anything with ``submit(fn, *args, **kwargs)`` that
    returns a ``concurrent.futures.Future`` (None: every figure is drawn here)."""

    executor: object | None = None
    pending: list[tuple[object, Pending]] = field(default_factory=list)  # (the document's block, figure)
    handed: list[Pending] = field(default_factory=list)  # every figure handed to the helper
    drawn_by_helper: int = 0
    drawn_here: int = 0

    def draw(self, call: Callable, *args, **kwargs) -> Path | Pending | None:
        """``call(*args, **kwargs)`` (a figure function): its path or None, or a :class:`Pending` figure."""
        paths = [a for a in (*args, *kwargs.values()) if isinstance(a, Path)]
        if self.executor is not None and len(paths) == 1 and self._busy() < AHEAD:
            # absolute: the helper's working folder need not be this process's
            args = tuple(a.resolve() if isinstance(a, Path) else a for a in args)
            kwargs = {k: v.resolve() if isinstance(v, Path) else v for k, v in kwargs.items()}
            try:
                future = self.executor.submit(call, *args, **kwargs)
            except RuntimeError:  # the helper is gone (BrokenProcessPool, shut down): draw here from now on
                self.executor = None
            else:
                self.handed.append(Pending(future, paths[0], call, args, kwargs))
                return self.handed[-1]
        self.drawn_here += 1
        return call(*args, **kwargs)

    def _busy(self) -> int:
        return sum(not figure.future.done() for figure in self.handed)

    def later(self, block, figure: Pending) -> None:
        """``block`` of the document shows ``figure``: :meth:`settle` removes it if nothing was drawn."""
        self.pending.append((block, figure))

    def settle(self, blocks: list) -> None:
        """Wait for every figure handed to the helper; remove from ``blocks`` those that drew nothing."""
        import pickle
        from concurrent.futures import wait
        from concurrent.futures.process import BrokenProcessPool

        empty, warned = [], False
        for block, figure in self.pending:
            try:
                path = figure.future.result()
                self.drawn_by_helper += 1
            except BrokenProcessPool:
                if not warned:
                    log.warning("report: the helper process ended; drawing its figures here")
                    warned = True
                path = figure.call(*figure.args, **figure.kwargs)
                self.drawn_here += 1
            except (pickle.PicklingError, TypeError, AttributeError) as e:
                if "pickl" not in str(e).lower():  # the figure function's own error: as if drawn here
                    raise
                log.warning("report: a figure could not be drawn by the helper (%s); drawing it here", e)
                path = figure.call(*figure.args, **figure.kwargs)
                self.drawn_here += 1
            if path is None:
                empty.append(block)
        wait([figure.future for figure in self.handed])  # any not shown in the document: its file whole
        self.pending, self.handed = [], []
        blocks[:] = [b for b in blocks if not any(b is e for e in empty)]

    def abandon(self) -> None:
        """The build failed: wait for the helper's figures (their files go with the build's folder), and
        drop them."""
        from concurrent.futures import wait

        wait([figure.future for figure in self.handed])
        self.pending, self.handed = [], []
