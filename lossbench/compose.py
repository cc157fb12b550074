"""Faster composition of a sweep's job configs, with Hydra's own semantics.

Hydra composes every job's config from scratch (~130 ms here: YAML files read and parsed, the defaults tree,
merges), and a multirun does it twice per job: the basic sweeper composes the whole batch to check it before
the first job starts (216 jobs: ~30 s of waiting), then the launcher composes each job again. The jobs of a
sweep mostly differ in plain values (``seed=1``, ``imbalance.ratio=10``), which do not change the defaults
list: Hydra itself composes the config from the config-group choices and then applies such value overrides
to the result (``ConfigLoaderImpl._apply_overrides_to_config``).

:func:`install` wraps ``ConfigLoaderImpl.load_sweep_config`` (the one call sweepers and launchers use,
joblib's and submitit's included) so that jobs sharing their config-group choices share one composition:
the base config (group choices only) is composed once, and each job is a copy of it with its value
overrides applied by Hydra's own function, its ``hydra.overrides`` and ``hydra.job.override_dirname`` set as
Hydra sets them. The first job of every base is also composed the slow way and compared, whole (the hydra
node included): when they differ in anything, that base falls back to Hydra's full composition for good.
Overrides other than plain values (``+key``, ``~key``, ``key@pkg``, groups, ``hydra.*`` such as
``hydra.searchpath``) are part of the base; an error takes Hydra's own path, which raises Hydra's message.

The batch check composes every job only to drop the result; the launcher then asks for the same job again.
Each config composed is kept (up to ``_MAX_HANDOFF`` at a time) and handed to the next request for the same
job, unless something has used it since: a launcher sets ``hydra.job.num`` and ``hydra.runtime.output_dir``
on the config it runs, and a config with either set is composed afresh.

Each job also writes its config three times as YAML (``.hydra/``); :func:`install` has Hydra write the same
text through :func:`lossbench.config.to_yaml` (PyYAML's C emitter) instead of ``OmegaConf.to_yaml``.
"""

from __future__ import annotations

import copy
import logging
import weakref
from functools import cache, wraps

log = logging.getLogger("lossbench")

# per Hydra run (see _run_key): base key -> its composed base config, or None when it must not be used
_BASES: dict[tuple, dict] = {}
_MAX_RUNS = 8  # runs remembered per process (tests and notebooks compose many)
_BY_LOADER: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # runs without a _run_key
# per config loader: job overrides -> (master config, the config composed for them, not yet handed out again)
_HANDOFF: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# A config is ~120 kB. A sweeper that never checks its batch asks once per job and runs it: purged once run.
# joblib's launcher composes in its workers: the parent's batch-check configs stay to the run's end (bounded).
_MAX_HANDOFF = 512
_PURGE_EVERY = 64
_installed = False


def install() -> None:
    """Wrap Hydra's ``load_sweep_config`` and replace its ``_save_config`` (idempotent)."""
    global _installed
    if _installed:
        return
    import hydra.core.utils as hydra_utils
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    original = ConfigLoaderImpl.load_sweep_config

    @wraps(original)
    def load_sweep_config(self, master_config, sweep_overrides):
        handoff = _HANDOFF.setdefault(self, {})
        key = tuple(sweep_overrides)
        kept = handoff.pop(key, None)
        if kept is not None and kept[0] is master_config and _unused(kept[1]):
            return kept[1]
        try:
            fast = _fast(self, original, master_config, list(sweep_overrides))
        except Exception as e:  # Hydra's own path raises its own (better) error, if any
            log.debug("fast composition not used for %s: %s: %s", sweep_overrides, type(e).__name__, e)
            fast = None
        cfg = fast if fast is not None else original(self, master_config, sweep_overrides)
        if len(handoff) < _MAX_HANDOFF:
            handoff[key] = (master_config, cfg)
            if len(handoff) % _PURGE_EVERY == 0:  # a sweeper that never checks its batch: drop what was run
                for used in [k for k, (_, c) in handoff.items() if not _unused(c)]:
                    del handoff[used]
        return cfg

    ConfigLoaderImpl.load_sweep_config = load_sweep_config
    ConfigLoaderImpl.get_group_options = _group_options(ConfigLoaderImpl.get_group_options)
    hydra_utils._save_config = _save_config
    _installed = True


def _save_config(cfg, filename: str, output_dir) -> None:
    """Hydra's ``hydra.core.utils._save_config`` (each job's ``.hydra/config.yaml``, ``hydra.yaml`` and
    ``overrides.yaml``), writing the same text with PyYAML's C emitter: ~10 -> ~4 ms a job."""
    from lossbench.config import to_yaml

    output_dir.mkdir(parents=True, exist_ok=True)
    with open(str(output_dir / filename), "w", encoding="utf-8") as file:
        file.write(to_yaml(cfg))


def _unused(cfg) -> bool:
    """True while no launcher has taken the config (they set the job number and output folder on it)."""
    from omegaconf import OmegaConf

    job, runtime = cfg.hydra.job, cfg.hydra.runtime
    return OmegaConf.is_missing(job, "num") and OmegaConf.is_missing(runtime, "output_dir")


def _group_options(original):
    """``--help`` lists every config group's options: Hydra builds (deep-copies) a fresh config repository for
    each of the ~80 calls (~1 s). The repository only depends on (config name, overrides): build it once."""
    from hydra.core.object_type import ObjectType

    repos: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @wraps(original)
    def get_group_options(
        self, group_name, results_filter=ObjectType.CONFIG, config_name=None, overrides=None
    ):
        key = (config_name, tuple(overrides or ()))
        built = repos.setdefault(self, {})  # not `cache`: that name is functools.cache in this module
        if key not in built:
            built[key] = self._parse_overrides_and_create_caching_repo(config_name, list(key[1]))[1]
        return built[key].get_group_options(group_name, results_filter)

    return get_group_options


@cache
def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _split(loader, overrides: list[str]) -> tuple[list, list, list]:
    """(parsed overrides, the plain value overrides among them, the rest: they shape the base)."""
    from hydra.core.override_parser.types import OverrideType, ValueType

    parsed = _parser().parse_overrides(overrides)
    values, rest = [], []
    for o in parsed:
        plain = (
            o.type == OverrideType.CHANGE
            and o.package is None
            and o.value_type == ValueType.ELEMENT
            and not o.is_hydra_override()
        )
        if plain and not loader.repository.group_exists(o.key_or_group.replace(".", "/")):
            values.append(o)
        else:
            rest.append(o)
    return parsed, values, rest


def _run_key(loader, master_config) -> tuple | None:
    """What identifies one Hydra run's compositions. Not the loader object: joblib's launcher sends every job
    a fresh unpickled copy of the loader and the master config, so a worker would compose each job's base
    (and verify it) from scratch. The search path, the run's own overrides and its resolved sweep folder (a
    timestamp) are the same in every copy. None when the sweep folder cannot be resolved here (the bases are
    then kept per loader object)."""
    from omegaconf import OmegaConf

    try:
        sweep_dir = str(OmegaConf.select(master_config, "hydra.sweep.dir"))
    except Exception:
        return None
    return (
        tuple((e.provider, e.path) for e in loader.config_search_path.get_path()),
        master_config.hydra.job.config_name,
        tuple(master_config.hydra.overrides.hydra),
        tuple(master_config.hydra.overrides.task),
        sweep_dir,
    )


def _bases(loader, master_config) -> dict:
    key = _run_key(loader, master_config)
    if key is None:
        return _BY_LOADER.setdefault(loader, {})
    if key not in _BASES:
        while len(_BASES) >= _MAX_RUNS:
            _BASES.pop(next(iter(_BASES)))  # the oldest run
        _BASES[key] = {}
    return _BASES[key]


def _fast(loader, original, master_config, sweep_overrides: list[str]):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
    from omegaconf import OmegaConf, open_dict

    hydra_overrides = list(OmegaConf.to_container(master_config.hydra.overrides.hydra))
    parsed, values, rest = _split(loader, hydra_overrides + sweep_overrides)
    bases = _bases(loader, master_config)
    key = (
        master_config.hydra.job.config_name,
        tuple(o.input_line for o in rest),
        tuple(o.key_or_group for o in values),
    )
    verify = key not in bases
    if verify:
        # the master's hydra overrides come first in `parsed`, and load_sweep_config adds them itself
        base_overrides = [o.input_line for o in rest[len(hydra_overrides) :]]
        bases[key] = original(loader, master_config, base_overrides)
    base = bases[key]
    if base is None:
        return None

    cfg = copy.deepcopy(base)
    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    task = [o for o in parsed if not o.is_hydra_override()]
    with open_dict(cfg.hydra):
        cfg.hydra.overrides.hydra = [o.input_line for o in parsed if o.is_hydra_override()]
        cfg.hydra.overrides.task = [o.input_line for o in task]
        dirname = cfg.hydra.job.config.override_dirname
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=task,
            kv_sep=dirname.kv_sep,
            item_sep=dirname.item_sep,
            exclude_keys=dirname.exclude_keys,
        )
    OmegaConf.copy_cache(from_config=master_config, to_config=cfg)

    if verify:
        slow = original(loader, master_config, sweep_overrides)
        same = OmegaConf.to_container(slow, resolve=False) == OmegaConf.to_container(cfg, resolve=False)
        if not same:
            log.debug("fast composition differs from Hydra's for %s: not used", sweep_overrides)
            bases[key] = None
        return slow
    return cfg
