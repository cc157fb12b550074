"""The lossbench Launcher: runs a sweep's jobs in this process (``n_jobs: 1``, the default) or on a pool of
worker processes (``n_jobs: N``), each job's config composed once per base (:mod:`lossbench.sweep.launch`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.plugins.launcher import Launcher


class LossbenchLauncher(Launcher):
    def __init__(
        self, n_jobs: int = 1, background_writes: bool | str = "auto", helper_jobs: bool | str = "auto"
    ) -> None:
        self.n_jobs = n_jobs
        self.background_writes = background_writes
        self.helper_jobs = helper_jobs
        self.config = None
        self.hydra_context = None
        self.task_function = None
        self._handed: dict[tuple, Any] = {}

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def runs_in_process(self) -> bool:
        """True when the jobs run in the launching process (``hydra.launcher.n_jobs`` and
        ``background_writes`` and ``helper_jobs`` checked on the way)."""
        from lossbench.sweep import share
        from lossbench.sweep.launch import workers
        from lossbench.writer import wanted

        wanted(self.background_writes, 2)
        share.wanted(self.helper_jobs)
        return workers(self.n_jobs) == 1

    def use_configs(self, configs: dict[tuple, Any]) -> None:
        """Job configs the lossbench sweeper composed already (job overrides -> config): used, not redone."""
        self._handed = dict(configs)

    def take_configs(self) -> dict[tuple, Any]:
        handed, self._handed = self._handed, {}
        return handed

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from lossbench.sweep.launch import launch

        return launch(self, job_overrides, initial_job_idx)
