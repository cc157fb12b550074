"""Sweeps: one MLflow parent run per Hydra multirun, nested children, resume, N/A skips and a summary.

- :mod:`~lossbench.sweep.grid`: the grid of jobs (``hydra.sweeper.params`` and the command line);
- :mod:`~lossbench.sweep.compose`: job configs composed once per base;
- :mod:`~lossbench.sweep.plan`: every job checked before anything is recorded;
- :mod:`~lossbench.sweep.run`: the sweeper's work, parent run to report;
- :mod:`~lossbench.sweep.launch`: the launcher's work, in this process or on a pool;
- :mod:`~lossbench.sweep.jobs`: one job, in whatever process runs it.

Hydra reaches them through the plugins in ``hydra_plugins.lossbench`` (lossbench/plugins/).
"""

from lossbench.sweep.jobs import read_sweep, run_job

__all__ = ["read_sweep", "run_job"]
