"""A sweep's grid: ``hydra.sweeper.params`` and the command line's overrides expanded into one override list
per job, and the groups of jobs that differ only by seed.

The rules are those Hydra documents for its basic sweeper: every key takes each of its values (``a,b``,
``range(0,3)``, ``choice(...)``, ``glob(*)`` over a config group's options), jobs are the cartesian product of
the keys in the order they first appear, and a key given again (on the command line after the experiment's
params) replaces its values, so ``seed=0`` narrows a swept seed axis to one value.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from lossbench.errors import ConfigError


def sweep_arguments(params, arguments: Iterable[str]) -> list[str]:
    """``hydra.sweeper.params`` (a mapping key -> values string, or None) followed by the command line's."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(params, DictConfig):
        params = OmegaConf.to_container(params, resolve=True)
    return [*(f"{k}={v}" for k, v in (params or {}).items()), *arguments]


def expand(arguments: list[str], config_loader=None, config_name: str | None = None) -> list[list[str]]:
    """The override list of every job, in order (the last key varies fastest). With ``config_name``, a
    ``glob(...)`` over a config group also sees the options in the folders ``hydra.searchpath`` adds (a user's
    own losses and datasets); Hydra's own sweeper lists only the primary search path's."""
    from hydra.core.object_type import ObjectType
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob
    from hydra.errors import HydraException

    try:
        overrides = OverridesParser.create(config_loader=config_loader).parse_overrides(arguments)
    except HydraException as e:
        raise ConfigError("override", " ".join(arguments), f"Hydra cannot parse it ({e})") from e
    fixed = [o.input_line for o in overrides if not o.is_sweep_override()]
    axes: dict[str, list[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise ConfigError(
                    key,
                    override.input_line.split("=", 1)[1],
                    "an interval sweep has no list of values to run",
                    "Use a,b,c, range(start,stop,step), choice(...) or glob(...).",
                )
            if isinstance(override.value(), Glob) and config_loader is not None and config_name is not None:
                options = config_loader.get_group_options(
                    key, results_filter=ObjectType.CONFIG, config_name=config_name, overrides=fixed
                )
                values = [f"{key}={value}" for value in override.value().filter(options)]
            else:
                values = [f"{key}={value}" for value in override.sweep_string_iterator()]
            if not values:
                raise ConfigError(
                    key, override.get_value_element_as_str(), "the sweep over this key has no values"
                )
        else:
            values = [f"{key}={override.get_value_element_as_str()}"]
        axes[key] = values  # a later mention replaces the values and keeps the axis's place
    return [list(job) for job in itertools.product(*axes.values())]


def seed_groups(jobs: list[list[str]]) -> dict[str, list[list[int]]]:
    """Jobs whose overrides differ only in ``seed=``: {leader job number: [[job number, seed], ...]}, the
    leader being the group's first job. Jobs alone in their group are left out."""
    groups: dict[tuple[str, ...], list[list[int]]] = {}
    for num, overrides in enumerate(jobs):
        seeds = [o for o in overrides if o.split("=", 1)[0] == "seed"]
        if len(seeds) != 1:
            continue
        rest = tuple(sorted(o for o in overrides if o != seeds[0]))
        groups.setdefault(rest, []).append([num, int(seeds[0].split("=", 1)[1])])
    return {str(group[0][0]): group for group in groups.values() if len(group) > 1}
