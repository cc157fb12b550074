"""A launch's jobs shared between the launching process and the sweep's MLflow helper process.

With lossbench's launcher at ``n_jobs: 1`` the jobs run one after another in the launching process, and the
helper (:mod:`lossbench.writer`) stores each finished run while the next trains. Storing takes the helper
~40-60 ms a run, so while the jobs are longer than that (a torch fit: 0.3-3 s) the helper's core is idle most
of the time. With ``hydra.launcher.helper_jobs`` on (``auto``, the default, whenever the helper runs) the
helper also trains jobs: while the launching process's jobs are long (:data:`LONG_JOB_SECONDS`, and enough
of them are left: :data:`FIRST_JOB_WORK_SECONDS`), each time it holds no job it is handed the last job not
started yet (the launching process takes them from the front), which it sets up, trains and records itself,
exactly as the launching process does (:func:`lossbench.sweep.hydra_job.run_one`, Hydra's state handed over
as the pool workers get it).
So both cores train, each job at half the cores' threads (``train.threads=auto``, BLAS), and the launch
returns every job's ``JobReturn`` in order once both are done.

What stays the same: every job's claim, run, folder, ``.hydra/`` files, status and log lines, whichever
process runs it; the helper stores the launching process's runs between its own jobs (first in, first out),
and a run that would wait behind a helper's job while :data:`lossbench.writer.MAX_BEHIND` runs wait already is
stored by the launching process itself. ``auto`` keeps jobs that would train on a GPU (``train.device``
auto with CUDA present, or cuda) in the launching process: two processes on one GPU compete for its memory.

Ctrl-C reaches the helper too (a terminal signals the whole process group; the launching process also sends
it one): a job it trains stops as one in the launching process does, its run left RUNNING for the next
sweep to mark KILLED, and the runs it was handed are still stored. If the helper process dies, the job it
held is run again by the launching process (its run, RUNNING in a process that is gone, is marked KILLED by
the claim), and the rest of the launch runs there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from contextlib import suppress

log = logging.getLogger("lossbench")

# the helper takes jobs only while the launching process's jobs take this long (the median of its last 3:
# one slow job, a first one that imports torch, does not count): a job costs the helper more than the
# launching process (its data split is not cached there from the plan, its config and result cross between
# the processes), and below this the helper, which stores a run in ~40-60 ms, has little time to spare
# (measured: 96 logreg jobs of ~60 ms, 2 cores: 2-3 s more CPU and 1.3-2.2 s more wall time when the helper
# took ~20 of them)
LONG_JOB_SECONDS = 0.25
# ... and its first job only while the jobs left would take the launching process this long: that job
# imports torch or scikit-learn there and loads the data (2-3 s here), and the launch waits for it (4 torch
# jobs of ~0.7 s: 14.3 s with the helper's job against 11.6 s without)
FIRST_JOB_WORK_SECONDS = 5.0


def wanted(setting) -> bool | str:
    """``hydra.launcher.helper_jobs`` checked: ``auto`` (jobs that train on the CPU), True (any job) or
    False."""
    from lossbench.errors import ConfigError

    if setting == "auto" or isinstance(setting, bool):
        return setting
    raise ConfigError("hydra.launcher.helper_jobs", setting, "must be auto, true or false")


def helper_may_run(cfg, setting) -> bool | None:
    """Whether the helper may train this job: any job with ``true``; with ``auto`` any but a torch model on a
    GPU: False for ``train.device`` cuda, None (the helper tells, :data:`DECLINED`) for auto, where this
    process does not import torch to ask whether CUDA is present."""
    from omegaconf import OmegaConf

    if setting is True:
        return True
    if setting != "auto":
        return False
    from lossbench.models import MODELS

    spec = MODELS.get(str(OmegaConf.select(cfg, "model.name", default="")))
    if spec is None or spec.backend != "torch":
        return True
    device = str(OmegaConf.select(cfg, "train.device", default="auto"))
    return True if device == "cpu" else None if device == "auto" else False


DECLINED = "declined: CUDA is present"  # the helper's answer to a job it may train only without a GPU


class SharedLaunch:
    """One launch's jobs: this process takes them from the front, the helper from the back (see the module
    docstring). :meth:`run` returns their ``JobReturn`` in order."""

    def __init__(self, helper, configs, first_idx: int, context, task_function, setting) -> None:
        self.helper = helper
        self.configs = list(configs)
        self.first = first_idx
        self.context = context
        self.task = task_function
        self.eligible = [helper_may_run(cfg, setting) for cfg in self.configs]
        self.todo: deque[int] = deque(range(len(self.configs)))
        self.returns: dict[int, object] = {}
        self.cond = threading.Condition()
        self.held: tuple[int, object] | None = None  # (job, future) the helper trains now
        self.stopped = False  # no more jobs for the helper (the end, Ctrl-C, or a broken helper)
        self.interrupted = False  # a job in the helper was stopped by Ctrl-C
        self.trained = 0  # jobs the helper trained
        self.took: deque[float] = deque(maxlen=3)  # seconds of this process's last jobs

    def run(self, interrupted=lambda: False) -> list:
        """Run every job; ``interrupted``: whether Ctrl-C reached this process (noted by the launch), checked
        before each job."""
        from lossbench.sweep.hydra_job import run_one

        dispatcher = threading.Thread(target=self._dispatch, name="lossbench-helper-jobs", daemon=True)
        dispatcher.start()
        ctrl_c = False
        try:
            while (i := self._next_here(interrupted)) is not None:
                started = time.perf_counter()
                self.returns[i] = run_one(self.configs[i], self.first + i, self.context, self.task)
                with self.cond:
                    self.took.append(time.perf_counter() - started)
                    self.cond.notify_all()
        except KeyboardInterrupt:
            ctrl_c = True
            raise
        finally:
            self._stop(ctrl_c)
            dispatcher.join()
            if self.trained:
                total = len(self.configs)
                log.info("the MLflow helper process trained %d of the %d jobs", self.trained, total)
        return [self.returns[i] for i in range(len(self.configs))]

    def _next_here(self, interrupted) -> int | None:
        """The next job for this process (the first not started); when none is left, wait for the helper's
        job (it may come back: a helper that died); None when every job is done. KeyboardInterrupt when
        Ctrl-C reached either process."""
        with self.cond:
            while True:
                if self.interrupted or interrupted():
                    raise KeyboardInterrupt
                if self.todo:
                    return self.todo.popleft()
                if self.held is None:
                    return None
                self.cond.wait()

    def _dispatch(self) -> None:
        """The dispatching thread: hand the helper the last job it may run whenever it holds none."""
        try:
            self.helper.pid()  # asked once, before any job is handed over (Ctrl-C then reaches the job)
        except Exception as e:  # the helper is gone: this process runs every job
            self._no_more(f"{type(e).__name__}: {e}")
            return
        while True:
            with self.cond:
                while not self.stopped and (
                    self.held is not None or not self._worth_it() or self._pick(peek=True) is None
                ):
                    self.cond.wait()
                if self.stopped:
                    return
                i = self._pick(peek=False)
                try:
                    cfg, num, ask = self.configs[i], self.first + i, not self.eligible[i]
                    future = self.helper.run_job(cfg, num, self.context, self.task, gpu_check=ask)
                except Exception as e:  # BrokenProcessPool, or a job that cannot be pickled
                    self.todo.append(i)
                    self._no_more(f"{type(e).__name__}: {e}")
                    return
                self.held = (i, future)
            future.add_done_callback(lambda f, i=i: self._done(i, f))

    def _worth_it(self) -> bool:
        """Whether the helper gains by taking a job now: this process's last jobs were long, and, before
        the helper's first job, enough work is left to pay for its start (module constants)."""
        if len(self.took) < 3:
            return False
        typical = sorted(self.took)[1]
        return typical >= LONG_JOB_SECONDS and (
            self.trained > 0 or typical * len(self.todo) >= FIRST_JOB_WORK_SECONDS
        )

    def _pick(self, *, peek: bool) -> int | None:
        """The last job not started that the helper may run (taken off the list unless ``peek``)."""
        for pos in range(len(self.todo) - 1, -1, -1):
            i = self.todo[pos]
            if self.eligible[i] is not False:
                if not peek:
                    del self.todo[pos]
                return i
        return None

    def _no_more(self, why: str) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        log.warning("the MLflow helper process takes no jobs (%s); they run in this process", why)

    def _done(self, i: int, future) -> None:
        """A job the helper held is over (called in the pool's own thread)."""
        from concurrent.futures.process import BrokenProcessPool

        with self.cond:
            self.held = None
            try:
                result = future.result()
                if isinstance(result, str) and result == DECLINED:  # CUDA is present: such jobs run here
                    self.eligible = [e if e is not None else False for e in self.eligible]
                    self.todo.append(i)
                else:
                    self.returns[i] = result
                    self.trained += 1
            except KeyboardInterrupt:
                self.interrupted = True
                self.stopped = True
            except BrokenProcessPool:
                self.todo.appendleft(i)  # its run, RUNNING in a process that is gone, is settled by the claim
                self.stopped = True
                num = self.first + i + 1
                log.warning("the MLflow helper process ended while it trained job %d; it runs here", num)
            except BaseException as e:  # the job could not be set up there: this process runs it
                self.todo.appendleft(i)
                self.stopped = True
                log.warning(
                    "the MLflow helper process could not run job %d (%s: %s); it runs here",
                    self.first + i + 1,
                    type(e).__name__,
                    e,
                )
            self.cond.notify_all()

    def _stop(self, interrupted: bool) -> None:
        """No more jobs for the helper; on Ctrl-C stop the job it trains and wait until it has stopped."""
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
            held = self.held
        if held is None:
            return
        if interrupted:
            self.helper.interrupt_job()
        with suppress(BaseException):  # cancelled, or a second Ctrl-C: the pool's shutdown waits for it
            held[1].exception()
