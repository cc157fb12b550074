"""The process lossbench runs in: who it is (so a later run can tell a crashed run from a live one) and how
it exits."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from functools import cache

_JOB_LABEL = {"text": ""}


@contextmanager
def progress_label(text: str):
    """Name the job whose fits run inside (a sweep job's ``[k/N]``): their epoch lines and bar start with it
    (:class:`lossbench.train.EpochProgress`), so the lines of a pool's jobs can be told apart."""
    saved, _JOB_LABEL["text"] = _JOB_LABEL["text"], text
    try:
        yield
    finally:
        _JOB_LABEL["text"] = saved


def job_label() -> str:
    return _JOB_LABEL["text"]


def _start_ticks(pid: int) -> str | None:
    """When process ``pid`` started, as the OS tells it (psutil when installed, else Linux's /proc), so a
    pid reused by a later process is not taken for the one that wrote a run; None when unknown."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return f"{psutil.Process(pid).create_time():.2f}"
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            # field 22 (starttime); the command name (field 2) may hold spaces, so count from its ')'
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def cores() -> int:
    """CPU cores this process may run on (its affinity: a Slurm or cgroup allocation, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@cache
def busy_cores() -> int:
    """The cores other work keeps busy, read once per process when it first asks (before its own fits load
    the machine): the 1-minute load average, rounded, at most :func:`cores`; 0 where the OS has none."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0
    return min(cores(), max(0, round(load)))


def torch_threads(setting, jobs_at_once: int = 1, reserved: int = 0) -> int:
    """torch's intra-op CPU threads for ``train.threads``: a number as given; ``auto`` shares the cores that
    are not busy (:func:`busy_cores`) among the jobs running at once on this machine, at least 1 each. torch's
    threads slow down sharply when they compete for cores (a torch_mlp fit 3.1x slower at 2 threads than at 1
    beside two busy processes on 2 cores, benchmarks/torch_threads.py), and lossbench's small nets gain little
    from more threads on a quiet machine (1.07x slower at 2 than at 1 there). ``reserved``: cores left to
    another process of the sweep (the MLflow helper, :mod:`lossbench.writer`)."""
    if setting is None or setting == "auto":
        return max(1, (cores() - busy_cores() - reserved) // max(1, int(jobs_at_once)))
    return int(setting)


def identity() -> dict[str, str]:
    """This process as tags: host name, pid and start time."""
    return _identity(os.getpid())  # keyed by pid: a forked child is another process


@cache
def _identity(pid: int) -> dict[str, str]:
    return {
        "lossbench.host": socket.gethostname(),
        "lossbench.pid": str(pid),
        "lossbench.process_start": _start_ticks(pid) or "",
    }


def is_gone(tags: dict[str, str]) -> bool:
    """True when the process that wrote these identity tags has certainly ended: it ran on this host and
    its pid is free, or taken by a process that started at another time. False when it may still run (it
    is alive, it ran on another host, or the run carries no identity)."""
    host, pid = tags.get("lossbench.host"), tags.get("lossbench.pid")
    if host != socket.gethostname() or not (pid or "").isdigit():
        return False
    pid_ = int(pid)
    if pid_ == os.getpid():
        return tags.get("lossbench.process_start", "") not in ("", identity()["lossbench.process_start"])
    try:
        os.kill(pid_, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    started = tags.get("lossbench.process_start")
    now = _start_ticks(pid_)
    return bool(started and now and started != now)


_FROZEN = {"modules": 0, "calls": 0}  # modules loaded at the last freeze; calls since


def freeze_heap(new_modules: int = 50, calls: int = 50, *, collect: bool = True) -> bool:
    """Collect the garbage there is, then leave every object still alive out of the cyclic garbage
    collector's later passes (``gc.freeze``), once this process has loaded ``new_modules`` modules since the
    last freeze (imports: long-lived), or every ``calls``-th call (called once per job composed, run or
    stored: what a sweep holds to its end, its jobs' configs and returns). The imports of a sweep (MLflow,
    SQLAlchemy, scikit-learn, torch, pandas) and its composed configs are about a million objects, and each
    full collection walks all of them: a 216-job ``+experiment=imbalance`` sweep spent 3.0 s in 21 full
    collections in its launching process, ~1 s of it while it composed its jobs. The collection before each
    freeze walks only what was made since the last. A frozen object that becomes garbage later is still
    freed by reference counting, but a cycle of them stays until the process ends. ``collect=False``: frozen
    without the collection (the cyclic garbage there is then stays too). True when it froze."""
    import gc
    import sys

    loaded = len(sys.modules)
    _FROZEN["calls"] += 1
    if loaded - _FROZEN["modules"] < new_modules and _FROZEN["calls"] < calls:
        return False
    if collect:
        gc.collect()
    gc.freeze()
    _FROZEN.update(modules=loaded, calls=0)
    return True


@contextmanager
def full_collections_deferred(*, freeze: bool = True, collect: bool = True):
    """No automatic full collection inside the block (young objects are still collected as usual); on its
    way out (``freeze``) one collection, then everything alive is frozen (:func:`freeze_heap`). For a phase
    that imports much and keeps what it makes (a sweep's plan and MLflow start): each automatic full
    collection there walks the whole heap not frozen yet, and a 96-job sweep's start ran 6 of them (30-90 ms
    each, the imports of scikit-learn, MLflow, SQLAlchemy) before its freeze walked the same objects once
    more: 0.53 s of full collections before its first job, 0.23 s with this. Cyclic garbage that outlives
    two young collections waits for the block's end. ``collect=False``: frozen on the way out without that
    collection, which walks every object the block made (its imports) to find little garbage: at the end of
    a sweep's start, 0.19-0.24 s to free 245 objects (the 96-job peer sweep) and 0.17 s for 1,573
    (``+experiment=imbalance``), on the way to the first job; that garbage is then kept."""
    import gc

    before = gc.get_threshold()
    gc.set_threshold(before[0], before[1], 1_000_000)  # full: after a million young-generation passes
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if freeze:
            freeze_heap(new_modules=0, collect=collect)


@cache
def skip_exit_gc() -> None:
    """Have the interpreter's exit leave the objects still alive to the process's end (``gc.freeze`` in an
    ``atexit`` handler) instead of running the cyclic garbage collector over all of them: with torch, MLflow,
    scikit-learn and pandas loaded that takes 1.5-2.5 s here, after the run's last output. Nothing else about
    the exit changes: the other ``atexit`` handlers (MLflow's, logging's flush and close, temporary folders'
    clean-up) still run, files written with ``with`` are closed already, committed SQLite transactions are on
    disk, and objects are still released by reference counting as modules are torn down (Python does not
    promise to finalize objects still alive at exit anyway). For command entry points; registers once."""
    import atexit
    import gc

    atexit.register(gc.freeze)
