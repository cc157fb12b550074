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
        monkeypatch.setitem(runtime._FROZEN, "calls", 0)
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


def test_freeze_heap_freezes_every_50th_call(monkeypatch):
    """What a sweep holds to its end (one composed config, one job return a call) is frozen every 50 calls."""
    gc.unfreeze()
    try:
        monkeypatch.setitem(runtime._FROZEN, "modules", len(sys.modules))
        monkeypatch.setitem(runtime._FROZEN, "calls", 0)
        froze = [runtime.freeze_heap() for _ in range(120)]
        assert [k for k, f in enumerate(froze, start=1) if f] == [50, 100]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_full_collections_deferred_keeps_young_collections_then_collects_and_freezes():
    """Inside the block no automatic full collection (the third threshold out of reach; the young ones as
    they were); on the way out the thresholds are back, the garbage made inside is collected and what is
    still alive is frozen. With ``freeze=False`` only the thresholds come back; with ``collect=False``
    everything is frozen, garbage too."""
    gc.unfreeze()
    before = gc.get_threshold()
    try:
        with runtime.full_collections_deferred():
            inside = gc.get_threshold()
            garbage = _Node()
            gone = weakref.ref(garbage)
            del garbage
            kept = _Node()
        assert inside[:2] == before[:2] and inside[2] >= 1_000_000
        assert gc.get_threshold() == before
        assert gone() is None and gc.get_freeze_count() > 0 and gc.is_tracked(kept)
        gc.unfreeze()
        with runtime.full_collections_deferred(freeze=False):
            garbage = _Node()
            gone = weakref.ref(garbage)
            del garbage
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0
        assert gone() is not None  # left to the next full collection
        gc.collect()
        assert gone() is None
        # collect=False (a sweep's start): frozen without the collection, its garbage with the rest
        with runtime.full_collections_deferred(collect=False):
            garbage = _Node()
            gone = weakref.ref(garbage)
            del garbage
        assert gc.get_threshold() == before and gc.get_freeze_count() > 0
        gc.collect()
        assert gone() is not None  # frozen: no later collection frees it
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
