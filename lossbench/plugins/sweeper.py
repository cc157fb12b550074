"""The lossbench Sweeper: expands the grid itself, checks every job before anything is recorded, settles N/A
and FINISHED jobs, creates the sweep's parent run and launches the rest
(:func:`lossbench.sweep.run.run_sweep`). Any launcher works under it: lossbench's own, or Hydra's joblib and
submitit launchers."""

from __future__ import annotations

from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper


class LossbenchSweeper(Sweeper):
    def __init__(self, params: Any = None) -> None:
        self.params = params  # hydra.sweeper.params: key -> values (a,b,c / range(...) / glob(...))
        self.config = None
        self.hydra_context = None
        self.launcher = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from lossbench.sweep.run import run_sweep
        from lossbench.writer import stop_spare

        try:
            return run_sweep(self, list(arguments))
        finally:
            stop_spare()  # an MLflow helper started for a launch that never came (refused, all N/A, ...)
