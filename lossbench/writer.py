"""Storing finished runs in MLflow from a helper process while this process trains the next job.

When a launcher runs a sweep's jobs one after another in its own process (lossbench's launcher at ``n_jobs:
1``), a finished job hands its run's end — the ``log_batch`` of its metrics, curves, params and tags, its
files (config.yaml, the per-class CSV, the confusion-matrix PNG, drawn there) with ``log_artifacts``, then
``set_terminated`` — to one helper process, and the next job starts at once. The helper is a plain MLflow
client of the same store, through the same :class:`lossbench.tracking.Tracker` calls a job makes inline, so
a run is FINISHED only once it holds all its values, as before. It runs on another core: on a 2-core machine
a scikit-learn fit takes one core and the MLflow client's Python work (~60-80 ms a run) the other, where a
thread in the job's own process would compete with it for the interpreter lock.

What stays in the job: its claim (the lookups and ``create_run``, so a concurrent sweep sees the claim at
once), the fit, and the run's status file, written by the helper once the run is stored. The launch waits for
the helper before it returns (:func:`background_writes`), so the sweeper counts every job's status after all
runs are stored. The two share the storing when the helper falls behind (jobs shorter than storing a run):
once :data:`MAX_BEHIND` runs wait for the helper, a job stores its run itself, and at the launch's end this
process stores the waiting runs the helper has not begun (it may still be starting), newest first.
If the helper dies, its runs left unstored are stored by this process, the same way. A failed
write is logged with the run's id and recorded in the job's status (``failed``), as an inline one is.

Runs that fail are recorded inline (rare; their traceback stays in this process). Jobs run on a pool of
worker processes, by a stock launcher, or a single run store their runs inline, as they always did.

The same helper does two more things for a sweep, each on the core the plan or the report leaves idle: while
the sweep is planned it creates the store when the store is a SQLite file that does not exist yet
(:meth:`Writer.create_store`: in a temporary file beside it, given the store's name only once the plan has
accepted the sweep, :meth:`Writer.adopt_store`), and once the runs are stored it draws some of the report's
figures (:meth:`Writer.submit`, :mod:`lossbench.report.drawing`). It lives from the sweep's start to its end
(:func:`prestart`, :func:`stop_spare`). ``python -m lossbench.report`` starts one that only draws.
"""

from __future__ import annotations

import glob
import logging
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from lossbench import runtime

log = logging.getLogger("lossbench")

# runs handed over and not stored yet before a job stores its run itself: the helper is behind (storing a run
# takes it longer than a job takes this process), and this process takes a share instead of waiting for the
# oldest (as it did before). Not fewer: with 3, run_overhead.py (20-job sweeps) measured 40.1 and 40.2 ms a
# run against 26.4 and 32.5 ms with 16 and waiting, alternating on 2026-12-07
MAX_BEHIND = 16
_current: Writer | None = None
_sharing = {"on": False}  # jobs of this launch train in this process and the helper at once (sweep.share)


def current() -> Writer | None:
    """The helper this process's jobs hand their finished runs to, if any."""
    return _current


def sharing() -> bool:
    """Whether this process trains jobs while the other process of the sweep (the launching process, or its
    helper) trains others too (:mod:`lossbench.sweep.share`): ``train.threads=auto`` then counts 2 jobs at
    once and no core for the helper."""
    return _sharing["on"]


def wanted(setting, jobs: int, cores: int | None = None) -> bool:
    """Whether a launch of ``jobs`` jobs in this process uses the helper: ``setting`` true / false, or auto
    (at least 2 jobs and 2 cores: one job gains nothing, and on one core the helper only competes)."""
    from lossbench.errors import ConfigError

    if isinstance(setting, bool):
        return setting
    if setting != "auto":
        raise ConfigError("hydra.launcher.background_writes", setting, "must be auto, true or false")
    return jobs >= 2 and (runtime.cores() if cores is None else cores) >= 2


_spare: Writer | None = None  # started ahead of a launch (:func:`prestart`)


def prestart() -> Writer:
    """Start the helper now, so that its start overlaps the sweep's own start (the sweep gives it work
    meanwhile: compositions, a new store or MLflow's import); the next :func:`background_writes` takes it
    (:func:`stop_spare` ends it unused)."""
    global _spare
    if _spare is None:
        _spare = Writer()
    return _spare


def adopt_store(uri: str) -> bool:
    """The store the helper created for ``uri`` while the sweep was planned becomes ``uri``'s file, once the
    plan has accepted the sweep (a refused sweep leaves no store behind). True when it did."""
    return _spare is not None and _spare.adopt_store(uri)


def spare() -> Writer | None:
    """The helper started for this sweep and not storing runs now (before or after a launch), if any: the
    report draws figures on it (:meth:`Writer.submit`)."""
    return _spare


def stop_spare() -> None:
    """End the sweep's helper once no launch or report needs it (also one :func:`prestart` started and no
    launch took: every job N/A or FINISHED already)."""
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        spare.close()


@contextmanager
def background_writes(enabled: bool, *, share: bool = False) -> Iterator[Writer | None]:
    """Jobs run inside this block hand their finished runs to a helper process, and this process's BLAS and
    OpenMP thread pools leave the helper a core (``share``: half the cores, the helper trains jobs too,
    :mod:`lossbench.sweep.share`); the block's end waits until every run handed over is stored (also on
    Ctrl-C or an error, so nothing handed over is lost)."""
    global _current, _spare
    if not enabled or _current is not None:
        stop_spare()
        yield _current
        return
    from threadpoolctl import threadpool_limits

    writer, _spare = _spare, None
    if writer is None:  # not started ahead by the sweeper
        writer = Writer()
        writer.warm_up()
    _current = writer
    _sharing["on"] = share
    cores = runtime.cores()
    try:
        with threadpool_limits(limits=max(1, cores // 2 if share else cores - 1)):
            yield writer
    finally:
        _current = None
        _sharing["on"] = False
        try:
            writer.drain()
        finally:  # kept for the next launch and the report's figures (spare()); the sweeper ends it
            _spare = writer


class Writer:
    """One helper process that stores runs in the order they are handed over (and runs what else it is
    given: a new store, a report's figures)."""

    def __init__(self) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_helper_start
        )
        self._waiting: deque = deque()  # (future, call, args, label, run id), oldest first
        self.stored = 0
        self.stored_here = 0  # runs this process stored itself (MAX_BEHIND waiting, or not begun at drain)
        self._told = (0, 0)  # (stored, stored_here) at the last drain
        self._new_store: tuple | None = None  # (temporary file, the store's file, future): create_store
        self._pid: int | None = None
        self._job: object | None = None  # the future of the job the helper trains (sweep.share), if any
        self._hydra: tuple[int, bytes] | None = None  # (token, Hydra's state and the job context, pickled)
        self._hydra_of: tuple[int, int] | None = None  # the ids of the context and task it was pickled from

    def warm_up(self) -> None:
        """The helper imports MLflow now (~1.5 s), not when it is handed its first run."""
        with _interrupt_deferred():
            self._pool.submit(_warm_up)

    def warm_up_figures(self) -> None:
        """The helper imports seaborn and the report's figures (it draws some of them, lossbench.report)."""
        with _interrupt_deferred():
            self._pool.submit(_warm_up_figures)

    def create_store(self, uri: str | None) -> bool:
        """When ``uri`` is a SQLite file that does not exist yet (a first sweep in a folder): the helper
        creates a fresh MLflow store in a temporary file beside it (MLflow's own schema creation and
        migrations, ~2.5 s of one core) while this process plans the sweep. :meth:`adopt_store` then gives
        it the store's name; a sweep refused meanwhile leaves nothing (:meth:`close` removes the file).
        True when the helper was given the store to create."""
        import os
        from pathlib import Path

        from lossbench.store import sqlite_file

        final = sqlite_file(uri) if uri else None
        if self._new_store is not None or final is None or "?" in uri:
            return False
        final = Path(os.path.abspath(final))
        if final.exists() or not final.parent.is_dir():
            return False
        _remove_stale_stores(final)
        me = runtime.identity()  # host and pid, as _remove_stale_stores reads them back with runtime.is_gone
        temporary = final.with_name(
            f"{_NEW_STORE_PREFIX.format(name=final.name)}{me['lossbench.host']}-{me['lossbench.pid']}"
        )
        with _interrupt_deferred():
            future = self._pool.submit(_create_store, str(temporary))
        self._new_store = (temporary, final, future)
        return True

    def adopt_store(self, uri: str) -> bool:
        """Link the store :meth:`create_store` made to ``uri``'s file name, if that file still does not exist
        (another process may have created it meanwhile: then it is left as it is). True when it did."""
        import os
        from pathlib import Path

        from lossbench.store import sqlite_file

        item, self._new_store = self._new_store, None
        if item is None:
            return False
        temporary, final, future = item
        try:
            error = future.result()
            wanted = sqlite_file(uri)
            if error or wanted is None or Path(os.path.abspath(wanted)) != final:
                if error:
                    log.debug("the MLflow helper could not create the store (%s): created here", error)
                return False
            if any(temporary.with_name(temporary.name + end).exists() for end in ("-journal", "-wal")):
                return False  # not a closed, whole file: the store is created here
            os.link(temporary, final)  # atomic; fails if the file exists by now
            log.debug("the MLflow helper process created the new store %s", final)
            return True
        except Exception as e:  # FileExistsError, a helper that ended, ...: the store is opened as it is
            log.debug("the store the MLflow helper created is not used (%s)", e)
            return False
        finally:
            temporary.unlink(missing_ok=True)

    def store(self, call: Callable, args: tuple, *, label: str, run_id: str) -> None:
        """Hand ``call(*args)`` to the helper: a module-level function that returns None, or the text of a
        failed write, and never raises (it may run twice: here too, when the helper could not finish it).
        Stored here instead while :data:`MAX_BEHIND` runs wait already."""
        while self._waiting and self._waiting[0][0].done():
            self._settle_oldest()
        if len(self._waiting) >= MAX_BEHIND:  # the helper is behind (or trains a job): stored here
            self._settle((None, call, args, label, run_id), here=True)
            return
        try:
            with _interrupt_deferred():
                future = self._pool.submit(call, *args)
                self._waiting.append((future, call, args, label, run_id))
        except RuntimeError:  # the helper is gone (BrokenProcessPool): this process stores the run
            self._settle((None, call, args, label, run_id))
            return
        while self._waiting and self._waiting[0][0].done():
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        """The oldest run's outcome; it leaves the queue only once settled (a Ctrl-C meanwhile leaves it for
        :meth:`close`)."""
        self._settle(self._waiting[0])
        self._waiting.popleft()

    def _settle(self, item, *, here: bool = False) -> None:
        """A run's outcome: stored by the helper, or here (``here``: the helper trains a job and runs wait
        already; or the helper is gone, or could not take it)."""
        from concurrent.futures.process import BrokenProcessPool

        future, call, args, label, run_id = item
        try:
            if here:
                with _interrupt_deferred():  # a run stored here is stored whole, as the helper stores it
                    error = call(*args)
                    self.stored_here += 1  # counted before a Ctrl-C held back meanwhile is raised
            elif future is None:
                raise BrokenProcessPool("the helper was gone when the run was handed over")
            else:
                error = future.result()
                self.stored += 1
        except BrokenProcessPool:
            log.warning("%s: the MLflow helper process ended; storing run %s here", label, run_id)
            error = call(*args)
        except Exception as e:  # the call never reached the helper (it could not be pickled, ...)
            log.warning("%s: the MLflow helper could not take run %s (%s); storing it here", label, run_id, e)
            error = call(*args)
        if error:
            log.error("%s: storing run %s failed: %s", label, run_id, error)

    def drain(self) -> None:
        """Wait until every run handed over is stored; those the helper has not begun are stored here
        meanwhile, newest first."""
        if self._waiting and not all(item[0].done() for item in self._waiting):
            log.info("storing the last %d runs in MLflow ...", len(self._waiting))
        while self._waiting and self._waiting[-1][0].cancel():  # not started there: stored here meanwhile
            self._settle(self._waiting.pop(), here=True)
        while self._waiting:
            self._settle_oldest()
        there, here = self.stored - self._told[0], self.stored_here - self._told[1]
        if here:  # a helper kept for the next launch counts that launch's runs
            log.info(
                "the MLflow helper process stored %d runs, this process %d",
                there,
                here,
            )
        elif there:
            log.info("the MLflow helper process stored %d runs", there)
        self._told = (self.stored, self.stored_here)

    def pid(self) -> int:
        """The helper's process id (asked once; it waits for what the helper was handed before)."""
        import os

        if self._pid is None:
            with _interrupt_deferred():
                future = self._pool.submit(os.getpid)
            self._pid = future.result()
        return self._pid

    def run_job(self, cfg, idx: int, context, task_function, *, gpu_check: bool = False):
        """Hand the helper a whole job to set up, train and record (:mod:`lossbench.sweep.share`); the future
        of its ``JobReturn``, or :data:`lossbench.sweep.share.DECLINED` (``gpu_check``: a job it trains only
        where CUDA is not present). Hydra's state and the job context are pickled once (cloudpickle:
        OmegaConf's resolvers are closures) and unpickled once by the helper."""
        if self._hydra is None or self._hydra_of != (id(context), id(task_function)):  # a new launch
            import cloudpickle
            from hydra.core.singleton import Singleton

            blob = cloudpickle.dumps((Singleton.get_state(), context, task_function))
            self._hydra = ((self._hydra[0] + 1) if self._hydra else 1, blob)
            self._hydra_of = (id(context), id(task_function))
        with _interrupt_deferred():
            self._job = self._pool.submit(_helper_job, self._hydra, cfg, idx, runtime.cores(), gpu_check)
        return self._job

    def interrupt_job(self) -> None:
        """Ctrl-C for the job the helper trains (a terminal signals the whole process group; this reaches it
        when only the launching process was signalled). Outside its jobs the helper ignores Ctrl-C."""
        import os
        import signal

        if self._pid is not None and self._job is not None and not self._job.done():
            with suppress(OSError):
                os.kill(self._pid, signal.SIGINT)

    def submit(self, call: Callable, *args, **kwargs):
        """Run ``call`` in the helper (once no run is waiting to be stored, e.g. a report's figure); its
        ``Future``. Raises RuntimeError when the helper is gone."""
        with _interrupt_deferred():
            return self._pool.submit(call, *args, **kwargs)

    def close(self) -> None:
        """Wait until every run handed over is stored; then end the helper."""
        try:
            self.drain()
        finally:
            self._pool.shutdown(wait=True)
            if self._new_store is not None:  # created for a sweep that was refused or interrupted
                self._new_store[0].unlink(missing_ok=True)
                self._new_store = None


@contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """Ctrl-C held back until the block is done: an interrupt inside ``ProcessPoolExecutor.submit``, between
    its bookkeeping steps, leaves a work item that is never sent to the worker, and the pool's shutdown then
    waits for it forever (seen: a sweep that hung after Ctrl-C). Main thread only (Python runs signal
    handlers there); elsewhere the block runs as it is."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, caught[0])  # Python's default handler raises KeyboardInterrupt
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)


def _helper_start() -> None:
    """In the helper: Ctrl-C is for the launching process, which then waits for the runs handed over."""
    import signal

    from lossbench.runtime import skip_exit_gc

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    skip_exit_gc()


_HYDRA: dict[int, tuple] = {}  # in the helper: token -> (Hydra's state, job context, task), unpickled once


def _interrupt_job(signum, frame) -> None:
    """In the helper, while it trains a job: Ctrl-C stops the job, once (a second signal is ignored, so the
    job's own clean-up and the runs waiting to be stored are not cut short)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _helper_job(hydra: tuple[int, bytes], cfg, idx: int, cores: int, gpu_check: bool):
    """In the helper: one job of the launch, set up and run as the launching process runs it (Hydra's
    state first, as lossbench's pool workers set it), at half the cores (the launching process trains too).
    ``gpu_check``: declined (:data:`lossbench.sweep.share.DECLINED`) where CUDA is present."""
    import pickle
    import signal

    if gpu_check:
        import torch

        if torch.cuda.is_available():
            from lossbench.sweep.share import DECLINED

            return DECLINED

    from threadpoolctl import threadpool_limits

    from lossbench.sweep.hydra_job import run_one, use_hydra_state

    token, blob = hydra
    if token not in _HYDRA:
        _HYDRA.clear()
        _HYDRA[token] = pickle.loads(blob)
    state, context, task_function = _HYDRA[token]
    use_hydra_state(state)
    _sharing["on"] = True
    signal.signal(signal.SIGINT, _interrupt_job)
    try:
        with threadpool_limits(limits=max(1, cores // 2)):
            return run_one(cfg, idx, context, task_function)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _sharing["on"] = False


def _warm_up() -> None:
    with runtime.full_collections_deferred():
        import mlflow.tracking  # noqa: F401

        import lossbench.tracking  # noqa: F401


def _warm_up_figures() -> None:
    with runtime.full_collections_deferred():
        import seaborn  # noqa: F401

        import lossbench.report.figures  # noqa: F401


_NEW_STORE_PREFIX = ".{name}.lossbench-new-"  # + host-pid: a store :meth:`Writer.create_store` is making


def _remove_stale_stores(final) -> None:
    """Remove the stores that helpers of ended processes on this host were making beside ``final`` and never
    adopted (their sweep was killed, e.g. SIGKILL, while it was planned); their journals too. A file of a
    live process, or of another host (a shared folder), is left (:func:`lossbench.runtime.is_gone`)."""
    prefix = _NEW_STORE_PREFIX.format(name=final.name)
    removed = 0
    for path in final.parent.glob(f"{glob.escape(prefix)}*"):
        owner = path.name[len(prefix) :]
        for end in ("-journal", "-wal", "-shm"):
            owner = owner.removesuffix(end)
        host, _, pid = owner.rpartition("-")
        if runtime.is_gone({"lossbench.host": host, "lossbench.pid": pid}):
            with suppress(OSError):
                path.unlink()
                removed += 1
    if removed:
        log.info("removed %d unfinished store file(s) left beside %s by ended sweeps", removed, final)


def _create_store(path: str) -> str | None:
    """In the helper: a fresh MLflow store in the SQLite file ``path`` (None, or the error's text)."""
    try:
        with runtime.full_collections_deferred():
            from mlflow.tracking import MlflowClient

            for name in ("mlflow", "alembic"):  # their INFO lines about creating the schema (as in Tracker)
                logging.getLogger(name).setLevel(logging.WARNING)
            MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None
