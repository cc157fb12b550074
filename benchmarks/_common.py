"""Shared helpers of the benchmark scripts: sweeps run as a user runs them, runs read back from MLflow,
in-process timers around real calls, and the tables and verdict lines every script prints."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------- environment
def machine_line() -> str:
    """One line saying where the figures were taken (they mean little without it)."""
    import torch

    load = "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"machine: {os.cpu_count()} CPUs, load average {load}, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"CUDA {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}"
    )


def clean_env() -> dict[str, str]:
    """The environment of a sweep subprocess: no inherited MLFLOW_TRACKING_URI, unbuffered output."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def sqlite_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def has_config_key(dotted: str) -> bool:
    """Whether lossbench's composed config has this key (lets a script work across config versions)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lossbench.config import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config")
    return OmegaConf.select(cfg, dotted, default=None) is not None


def write_experiment(conf_root: Path, name: str, params: dict[str, object], experiment: str) -> list[str]:
    """Write ``conf_root/experiment/<name>.yaml``, a sweep in lossbench's own experiment format (swept axes
    under ``hydra.sweeper.params``), and return the overrides that select it from the command line."""
    (conf_root / "experiment").mkdir(parents=True, exist_ok=True)
    lines = ["# @package _global_", "hydra:", "  mode: MULTIRUN", "  sweeper:", "    params:"]
    lines += [f"      {key}: {value}" for key, value in params.items()]
    lines += ["tracking:", f"  experiment: {experiment}", ""]
    (conf_root / "experiment" / f"{name}.yaml").write_text("\n".join(lines))
    return [f"+experiment={name}", f"hydra.searchpath=[file://{conf_root}]"]


# ------------------------------------------------------------------------------------------------- sweeps
@dataclass
class Sweep:
    """One ``python -m lossbench`` process, timed from just before it starts to its exit."""

    command: list[str]
    wall: float  # seconds
    started_at: float  # epoch seconds, just before the process started
    ended_at: float  # epoch seconds, just after it exited
    returncode: int
    stderr: str

    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def run_sweep(
    overrides: list[str], cwd: Path, *, timeout: float | None = None, env: dict[str, str] | None = None
) -> Sweep:
    """Run ``python -m lossbench OVERRIDES`` in ``cwd`` exactly as a user would (a fresh process); ``env``
    adds variables to its environment."""
    return run_command([sys.executable, "-m", "lossbench", *overrides], cwd, timeout=timeout, env=env)


def run_command(
    command: list[str], cwd: Path, *, timeout: float | None = None, env: dict[str, str] | None = None
) -> Sweep:
    """``command`` in ``cwd`` as a fresh process, timed from just before it starts to its exit."""
    cwd.mkdir(parents=True, exist_ok=True)
    started = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(
        command,
        cwd=cwd,
        env={**clean_env(), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - t0
    return Sweep(command, wall, started, time.time(), proc.returncode, proc.stderr)


def sweep_runs(uri: str, experiment: str) -> tuple[list, list]:
    """(parent runs, child runs) of an MLflow experiment, every page of them."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return [], []
    runs, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def check_sweep(sweep: Sweep, uri: str, experiment: str, *, finished: int) -> list:
    """The sweep's FINISHED child runs; exits with the sweep's own error output when fewer than expected
    finished. A non-zero exit with every run finished (e.g. the end-of-sweep report failing) is only noted."""
    _, children = sweep_runs(uri, experiment)
    done = [r for r in children if r.info.status == "FINISHED"]
    if len(done) < finished:
        tail = "\n".join(sweep.stderr.splitlines()[-25:])
        raise SystemExit(
            f"benchmark: expected {finished} FINISHED runs, found {len(done)} "
            f"(exit status {sweep.returncode}) from:\n  {' '.join(sweep.command)}\n{tail}"
        )
    if sweep.returncode != 0:
        print(f"  note: exit status {sweep.returncode} although every run finished: {sweep.last_line()}")
    return done


# ------------------------------------------------------------------------------------- in-process timers
class Profiler:
    """Timers around real calls, patched in for the duration of a ``with`` block.

    Each wrapped call is recorded under its call path (``run_job/Tracker.finish/log_artifacts``), so nested
    costs are attributed to what called them and a parent's own time is its total minus its children's.
    Call paths are kept per thread: a call made on another thread starts its own path, named after the
    thread (``[thread-name] call``).
    """

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._undo: list[tuple[object, str, object, bool]] = []

    def _stack(self) -> list[str]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def timed(self, fn, label: str):
        """``fn`` with a timer around every call of it, recorded under ``label``."""

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            stack = self._stack()
            if stack:
                path = f"{stack[-1]}/{label}"
            elif threading.current_thread() is threading.main_thread():
                path = label
            else:
                path = f"[{threading.current_thread().name}] {label}"
            with self._lock:
                self.total.setdefault(path, 0.0)  # rows come out in the order calls start: parents first
            stack.append(path)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                stack.pop()
                with self._lock:
                    self.total[path] += elapsed
                    self.calls[path] += 1

        return timed

    def wrap(self, owner: object, name: str, label: str | None = None) -> None:
        """Time every call of ``owner.name`` (a module function or a class's method); missing names are
        skipped, so a script keeps working while the code it measures changes."""
        original = getattr(owner, name, None)
        if original is None:
            return
        own = not isinstance(owner, type) or name in vars(owner)
        setattr(owner, name, self.timed(original, label or name))
        self._undo.append((owner, name, original, own))

    def patch(self, owner: object, name: str, replacement) -> None:
        """Replace ``owner.name`` for the duration of the ``with`` block (a missing name is skipped)."""
        original = getattr(owner, name, None)
        if original is None:
            return
        own = not isinstance(owner, type) or name in vars(owner)
        setattr(owner, name, replacement)
        self._undo.append((owner, name, original, own))

    def reset(self) -> None:
        self.total.clear()
        self.calls.clear()

    def __enter__(self) -> Profiler:
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original, own in reversed(self._undo):
            if own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)
        self._undo.clear()

    def rows(self, per: int) -> list[list[str]]:
        """Table rows (call path indented, calls, total ms, own ms), each divided by ``per`` runs: each call
        under what called it, in the order calls started; other threads' calls after this thread's."""
        under: dict[str, list[str]] = defaultdict(list)
        for path in self.total:
            under[path.rpartition("/")[0]].append(path)
        roots = sorted(under[""], key=lambda path: path.startswith("["))
        rows = []

        def add(path: str) -> None:
            total = self.total[path]
            children = sum(self.total[p] for p in under[path])
            rows.append(
                [
                    "  " * path.count("/") + path.rpartition("/")[2],
                    f"{self.calls[path] / per:g}",
                    f"{1e3 * total / per:.1f}",
                    f"{1e3 * (total - children) / per:.1f}" if children else "",
                ]
            )
            for child in under[path]:
                add(child)

        for root in roots:
            add(root)
        return rows


# ------------------------------------------------------------------------------------------------ output
def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "-" * len(line(header))
    return "\n".join([title, rule, line(header), rule, *(line(r) for r in rows), rule])


def verdict(name: str, measured: float, target: float, unit: str, *, higher_is_better: bool) -> str:
    """The last line of every script: the measured value, the target, their ratio and PASS/FAIL."""
    ok = measured >= target if higher_is_better else measured <= target
    sign = ">=" if higher_is_better else "<="
    return (
        f"RESULT {name}: {measured:.3g}{unit} vs target {sign} {target:g}{unit} -> "
        f"measured/target = {measured / target:.2f} ({'PASS' if ok else 'FAIL'})"
    )
