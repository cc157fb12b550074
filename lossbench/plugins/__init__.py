"""lossbench's Hydra plugins, installed as ``hydra_plugins.lossbench``: a Sweeper and a Launcher, selected in
conf/config.yaml's defaults (``override hydra/sweeper: lossbench``, ``override hydra/launcher: lossbench``;
their settings are conf/hydra/sweeper/lossbench.yaml and conf/hydra/launcher/lossbench.yaml). Both are thin:
the work is in :mod:`lossbench.sweep`. Importing this package imports nothing heavy (Hydra imports every
plugin module when it scans for plugins)."""
