"""One job of a sweep, in whatever process a launcher runs it: claim its config, train, record.

The sweeper has already checked every job, set aside the N/A and resumed ones and created the parent run; it
wrote ``lossbench_sweep.json`` into the sweep folder, which each job reads. A job never raises: it records one
status file in its own folder (:func:`write_status`) that the sweeper counts at the end.

Claims: a job first looks for runs of its config fingerprint. A FINISHED one means it is done already
(``resumed``); a RUNNING one whose process is gone is marked KILLED; a RUNNING one of a live process belongs
to a concurrent sweep (``claimed``). It then creates its own run and looks again: if any other live run of
that config is there, it deletes its own, waits a random while and starts over (:func:`_keep_claim` says
why this leaves at most one). Two sweeps started together therefore never both train a config.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lossbench.tracking import Pending

log = logging.getLogger("lossbench")

SWEEP_FILE = "lossbench_sweep.json"
STATUS_FILE = "lossbench_status.json"
PROGRESS_FILE = "lossbench_progress.log"
STATUSES = ("finished", "resumed", "skipped", "failed", "claimed")


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    s = max(0, round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


class Progress:
    """The sweep's elapsed time and ETA, as a job's ``finished`` / ``failed`` / ``resumed`` line shows them.

    Design: each job computes them itself, in whatever process or machine runs it, from what every job
    shares, the sweep folder. When a job is done it appends one line to the sweep's ledger
    (``lossbench_progress.log``: ``t`` for a job that trained, ``s`` for one settled without training
    (resumed, claimed by a concurrent sweep, failed before training), with its start time and seconds), in
    one ``O_APPEND`` write (whole lines, never interleaved, with any number of writers), then reads the
    ledger back: ~0.1 ms a job. So it is right under any launcher, in-process, on a pool where jobs complete
    out of order, or as separate processes (submitit), without the launching process seeing each completion.

    - elapsed: now - ``info["started"]`` (the launching process's wall clock when it launched the jobs);
    - ETA: the jobs not done yet x the wall time a trained job costs the sweep, from trained jobs only (N/A
      jobs are not in the launched total; resumed ones take ~0 s and are counted done but not in the rate).
      That cost is throughput, (now - the earliest start in the ledger) / jobs trained, once at least
      ``info["workers"]`` jobs trained (with W workers the first W complete close together); before that,
      and with a pool of known size, the mean trained duration / W. After the last job it is 0:00.
    """

    def __init__(self, info: dict, started: float | None = None) -> None:
        import time

        self.info = info
        self.started = time.time() if started is None else started

    def done(self, trained: bool, seconds: float | None = None) -> str:
        """Record this job as done; the text to append to its line (empty when the sweep has no ledger)."""
        import os
        import time

        folder = self.info.get("dir")
        if not folder:
            return ""
        now = time.time()
        took = now - self.started if seconds is None else seconds
        path = os.path.join(folder, PROGRESS_FILE)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{'t' if trained else 's'} {self.started:.3f} {took:.3f}\n".encode())
            finally:
                os.close(fd)
            with open(path, encoding="ascii") as f:
                ledger = [line.split() for line in f.read().splitlines()]
        except (OSError, ValueError):
            return ""
        return " · " + eta_text(ledger, now, self.info)


def eta_text(ledger: list[list[str]], now: float, info: dict) -> str:
    """``12/24 done, 0:41 elapsed, ETA 2:05`` from the ledger's lines (see :class:`Progress`)."""
    total = int(info.get("total", 0))
    rows = [(kind, float(start), float(took)) for kind, start, took in (r for r in ledger if len(r) == 3)]
    done = len(rows)
    remaining = max(total - done, 0)
    elapsed = now - float(info.get("started", now))
    trained = [(start, took) for kind, start, took in rows if kind == "t"]
    workers = int(info.get("workers") or 0)
    if remaining == 0:
        eta = "0:00"
    elif not trained:
        eta = "?"
    elif workers and len(trained) < workers:
        eta = clock(remaining * sum(t for _, t in trained) / len(trained) / min(workers, remaining))
    else:
        first = min(start for start, _ in trained)
        eta = clock(remaining * max(now - first, 0.0) / len(trained))
    return f"{min(done, total)}/{total} done, {clock(elapsed)} elapsed, ETA {eta}"


def read_sweep(sweep_dir: str | Path) -> dict | None:
    path = Path(sweep_dir) / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def job_description(c: dict) -> dict:
    """What a job computes, in the report's terms (kept in its status, so N/A jobs show in the report too)."""
    reg = c["regularization"]
    return {
        "data": c["data"]["name"],
        "model": c["model"]["name"],
        "loss": c["loss"]["name"],
        "ratio": float(c["imbalance"]["ratio"]),
        "profile": c["imbalance"]["profile"],
        "regularization": reg["name"],
        "strength": float(reg.get("strength", 0.0) or 0.0),
        "rebalance": c["rebalance"]["name"],
        "seed": int(c["seed"]),
    }


def write_status(job_dir: str | Path, status: str, **details) -> None:
    """The job's status file, written whole or not at all (a reader never sees half of it)."""
    import os

    folder = Path(job_dir)
    folder.mkdir(parents=True, exist_ok=True)
    partial_ = folder / f".{STATUS_FILE}.{os.getpid()}"
    partial_.write_text(json.dumps({"status": status, **details}))
    os.replace(partial_, folder / STATUS_FILE)


def collect_statuses(sweep_dir: str | Path) -> list[dict]:
    """Every job's status; a file that cannot be read counts as a job that did not report."""
    statuses = []
    for path in sorted(Path(sweep_dir).glob(f"*/{STATUS_FILE}")):
        try:
            statuses.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            log.warning("unreadable status file %s: counted as a job that did not report", path)
    return statuses


def count(statuses: list[dict]) -> dict[str, int]:
    return {s: sum(1 for st in statuses if st["status"] == s) for s in STATUSES}


def summary_line(counts: dict[str, int]) -> str:
    line = (
        f"{counts['finished']} finished, {counts['resumed']} resumed, "
        f"{counts['skipped']} skipped (N/A), {counts['failed']} failed"
    )
    if counts.get("claimed"):
        line += f", {counts['claimed']} left to a concurrent sweep"
    return line


def label(c: dict, num: int, total: int) -> str:
    return (
        f"[{num + 1}/{total}] model={c['model']['name']} loss={c['loss']['name']} "
        f"ratio={c['imbalance']['ratio']:g} reg={c['regularization']['name']} seed={c['seed']}"
    )


@cache
def _tracker(uri: str, experiment: str):
    """One Tracker per process and store: the jobs a process runs share its client and experiment lookup."""
    from lossbench.tracking import Tracker

    return Tracker(uri, experiment)


@dataclass
class _Started:
    """A job past its checks, with its data prepared and its MLflow child run RUNNING."""

    num: int
    label: str
    prepared: object
    run_id: str
    tracker: object
    write: Callable
    progress: Progress
    seconds: float | None = None  # this job's share of the training time, when it trained with others


def _claim(tracker, fp: str, label_: str, write: Callable, progress: Progress) -> bool:
    """False (and the status written) when the config is FINISHED already or a live run of another sweep
    holds it; RUNNING runs whose process is gone are marked KILLED on the way."""
    from lossbench.runtime import is_gone

    refs = tracker.runs_with_fingerprint(fp)
    for run_id, _ in tracker.settle_interrupted(fp, refs):
        log.warning("%s: run %s was left RUNNING by a process that is gone: marked KILLED", label_, run_id)
    done = [r for r in refs if r.status == "FINISHED"]
    if done:
        write("resumed", run_id=done[-1].run_id)
        log.info("%s resumed: already FINISHED as run %s%s", label_, done[-1].run_id, progress.done(False))
        return False
    live = [r for r in refs if r.status == "RUNNING" and not is_gone(r.tags)]
    if live:
        write("claimed", run_id=live[0].run_id)
        log.info(
            "%s: run %s of a concurrent sweep is training this config%s",
            label_,
            live[0].run_id,
            progress.done(False),
        )
        return False
    return True


def _keep_claim(tracker, fp: str, run_id: str, label_: str) -> bool:
    """After creating ``run_id``: True when no other live run of the config is in the store. Else the run is
    deleted and False returned: the job backs off and looks again.

    Why any other run, not only earlier ones: start times are taken before a run is stored, so a run with an
    earlier start time can become visible after one with a later start time, and two jobs ordering by it can
    both believe they came first. Of two jobs that each create a run and then look, at least the one that
    looks last sees both runs; so at most one keeps its run. When both see both, both back off (for a random
    while) and try again."""
    from lossbench.runtime import is_gone

    refs = tracker.runs_with_fingerprint(fp)
    others = [r for r in refs if r.run_id != run_id and (r.status == "FINISHED" or not is_gone(r.tags))]
    if not others:
        return True
    tracker.discard(run_id)
    log.info("%s: run %s of a concurrent sweep holds this config too; backing off", label_, others[0].run_id)
    return False


def _start_job(c: dict, job_dir, num: int, info: dict) -> _Started | None:
    """Claim the config, prepare its data and open its child run. None when the job is settled (its status
    written). Never raises."""
    import random
    import time

    from lossbench.config import fingerprint
    from lossbench.pipeline import prepare
    from lossbench.tracking import TAG_SWEEP_ID

    progress = Progress(info)
    label_ = label(c, num, info["total"])
    fp = fingerprint(c)
    write = partial(write_status, job_dir, fingerprint=fp, job=job_description(c))
    claims = c.get("resume", True)
    try:
        tracker = _tracker(info["uri"], info["experiment"])
        for attempt in range(_CLAIM_ATTEMPTS):
            if claims and not _claim(tracker, fp, label_, write, progress):
                return None
            if attempt == 0:
                log.info("%s running", label_)
                prepared = prepare(c)  # checked by the sweeper already; a ConfigError here is a change since
            tags = {TAG_SWEEP_ID: info["id"], **info.get("job_tags", {}).get(fp, {})}
            run_id = tracker.start(c, parent_run_id=info["parent_run_id"], extra_tags=tags)
            if not claims or _keep_claim(tracker, fp, run_id, label_):
                return _Started(num, label_, prepared, run_id, tracker, write, progress)
            time.sleep(random.uniform(0.05, 0.5) * (attempt + 1))
        raise RuntimeError(f"another sweep kept claiming this config ({_CLAIM_ATTEMPTS} tries)")
    except Exception as e:  # before any run exists: recorded in the job folder, and the sweep goes on
        write("failed", reason=f"{type(e).__name__}: {e}")
        log.error("%s failed before training: %s: %s%s", label_, type(e).__name__, e, progress.done(False))
        return None


_CLAIM_ATTEMPTS = 20


def _end_job(job: _Started, outcome) -> float | None:
    """Record a RunResult (FINISHED) or the exception its training raised (FAILED). The status file is
    written once MLflow holds the run's values (``failed`` when storing them failed). A FINISHED run is
    handed to the process's MLflow helper when there is one (:mod:`lossbench.writer`), else stored here."""
    from lossbench import writer
    from lossbench.tracking import failure_reason

    failed = isinstance(outcome, BaseException)
    reason = {"reason": failure_reason(outcome)} if failed else {}
    cfg = job.prepared.cfg
    if failed:
        done = job.progress.done(True, job.seconds)
        log.error("%s FAILED (run %s): %s%s", job.label, job.run_id, reason["reason"], done)
        with suppress(Exception):  # a failed write is in its status file (``_recorded``); the sweep goes on
            job.tracker.fail(
                job.run_id, cfg, outcome, done=partial(_recorded, job.write, job.run_id, "failed", reason)
            )
        return None
    score = outcome.metrics["test/balanced_accuracy"]
    done = job.progress.done(True, job.seconds)
    log.info("%s finished: test balanced accuracy %.4f (run %s)%s", job.label, score, job.run_id, done)
    record = partial(_recorded, job.write, job.run_id, "finished", {})
    helper = writer.current()
    if helper is not None:
        pending = job.tracker.take_pending(job.run_id)
        args = (job.tracker.uri, job.tracker.experiment, job.run_id, cfg, outcome, pending, record)
        helper.store(store_finished, args, label=job.label, run_id=job.run_id)
        return score
    try:
        job.tracker.finish(job.run_id, cfg, outcome, done=record)
    except Exception as e:  # recorded in its status file by ``record``; the sweep goes on
        log.error("%s: storing run %s failed: %s", job.label, job.run_id, failure_reason(e))
        return None
    return score


def _recorded(write: Callable, run_id: str, status: str, reason: dict, error: BaseException | None) -> None:
    """A job's status once its run's end is stored: ``status``, or ``failed`` when storing it failed."""
    from lossbench.tracking import failure_reason

    if error is None:
        write(status, run_id=run_id, **reason)
    else:
        write("failed", run_id=run_id, reason=f"storing the run failed: {failure_reason(error)}")


def store_finished(
    uri: str, experiment: str, run_id: str, cfg: dict, result, pending: Pending | None, record: Callable
) -> str | None:
    """Store a finished run's end (:meth:`lossbench.tracking.Tracker.finish`) and its job's status: the
    MLflow helper's work (:mod:`lossbench.writer`; the job's process does it when the helper died). The
    reason when a write failed, else None; never raises."""
    from lossbench.runtime import freeze_heap
    from lossbench.tracking import failure_reason

    try:
        _tracker(uri, experiment).finish(run_id, cfg, result, done=record, pending=pending)
    except Exception as e:  # the job's status says failed (``record``)
        return failure_reason(e)
    freeze_heap()  # in the helper: what its first runs imported (lossbench.runtime)
    return None


def run_job(c: dict, hydra_cfg, info: dict) -> float | None:
    """One job of a sweep: claim its config, run it as a child of the sweep's parent run. Never raises.

    Jobs that differ only by seed (``info["seed_groups"]``, see ``vectorise_seeds``) are run by their group's
    first job, the leader: every job of the group keeps its own claim and MLflow child run, and the fits left
    to do are one vectorised ensemble (:func:`lossbench.ensemble.execute_seeds`). The others return at once;
    the leader writes their status files. A job's MLflow writes are done when it returns."""
    from lossbench.pipeline import execute
    from lossbench.runtime import progress_label

    num = int(hydra_cfg.job.num)
    leader = info.get("seed_leaders", {}).get(str(num))
    if leader is not None and leader != num:
        log.info("%s: trained in the seed ensemble of job %d", label(c, num, info["total"]), leader + 1)
        return None
    if leader == num:
        return _run_seed_group(c, hydra_cfg, info, info["seed_groups"][str(num)])
    job = _start_job(c, hydra_cfg.runtime.output_dir, num, info)
    if job is None:
        return None
    try:
        with progress_label(f"[{num + 1}/{info['total']}]"):
            result = execute(job.prepared)
    except Exception as e:
        return _end_job(job, e)
    return _end_job(job, result)


def _run_seed_group(c: dict, hydra_cfg, info: dict, group: list[list[int]]) -> float | None:
    """The leader's work: start every job of the group, train those left as one ensemble, record each."""
    import time

    from lossbench.ensemble import execute_seeds
    from lossbench.runtime import progress_label

    began = time.time()
    sweep_dir = Path(hydra_cfg.sweep.dir)
    started = []
    for num, seed in group:
        job = _start_job({**c, "seed": seed}, sweep_dir / str(num), num, info)
        if job is not None:
            started.append(job)
    if not started:
        return None
    try:
        with progress_label(f"[{int(hydra_cfg.job.num) + 1}/{info['total']}]"):
            outcomes = execute_seeds([job.prepared for job in started], return_exceptions=True)
    except Exception as e:  # the ensemble's own bug: every run it held is FAILED with the reason
        outcomes = [e] * len(started)
    share = (time.time() - began) / len(started)  # each member's part of the group's time, for the ETA
    for job in started:
        job.progress.started, job.seconds = began, share
    scores = {job.num: _end_job(job, outcome) for job, outcome in zip(started, outcomes, strict=True)}
    return scores.get(int(hydra_cfg.job.num))
