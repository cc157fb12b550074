"""The process lossbench runs in (lossbench.runtime): the heap frozen once the sweep's modules are loaded."""

from __future__ import annotations

import gc
import sys
import weakref

from lossbench import runtime


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_freeze_heap_collects_then_freezes_once_enough_modules_were_loaded(monkeypatch):
    """No new modules since the last freeze: nothing happens. 50 new ones: the garbage there is is collected
    (not frozen with the rest), then every object still alive is left out of later collections."""
    gc.unfreeze()
    try:
        monkeypatch.setitem(runtime._FROZEN, "modules", len(sys.modules) - 49)
        assert runtime.freeze_heap() is False
        assert gc.get_freeze_count() == 0
        garbage = _Node()
        gone = weakref.ref(garbage)
        del garbage
        kept = _Node()
        monkeypatch.setitem(runtime._FROZEN, "modules", len(sys.modules) - 50)
        assert runtime.freeze_heap() is True
        assert gone() is None  # collected before the freeze
        assert gc.get_freeze_count() > 0 and gc.is_tracked(kept)
        assert runtime._FROZEN["modules"] == len(sys.modules)
        assert runtime.freeze_heap() is False  # until 50 more modules are loaded
    finally:
        gc.unfreeze()
