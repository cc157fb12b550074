"""Job configs of a sweep, composed once per set of config-group choices.

Hydra composes every job from scratch (~130 ms here: YAML files read and parsed, the defaults tree, merges).
The jobs of a sweep mostly differ in plain values (``seed=1``, ``imbalance.ratio=10``), which do not change
the defaults tree. :class:`JobComposer` composes each *base* (a job's overrides minus its plain values) once,
through the public ``ConfigLoader.load_sweep_config``, and makes each job a copy of its base with the values
set by ``OmegaConf.update`` (merge, in struct mode: an unknown key is refused as Hydra refuses it) and
``hydra.overrides.task`` / ``hydra.job.override_dirname`` set as Hydra documents them.

The first job of every base is also composed Hydra's way and compared, whole, ``hydra`` node included; when
the two differ in anything that base falls back to Hydra's composition for every job. Overrides other than
plain values (``+key``, ``~key``, ``key@pkg``, group choices, ``hydra.*``) are part of the base.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence

from lossbench.errors import ConfigError

log = logging.getLogger("lossbench")


class JobComposer:
    """Composes job configs for one sweep (one master config and its config loader)."""

    def __init__(self, config_loader, master_config) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self.loader = config_loader
        self.master = master_config
        self._parser = OverridesParser.create()
        self._groups: set[str] | None = None
        # base key -> the composed base, pickled (a copy by pickle.loads takes ~2 ms where copy.deepcopy of a
        # DictConfig, hydra node included, takes ~10), or None: use Hydra's composition
        self._bases: dict[tuple, bytes | None] = {}
        self.composed = {"fast": 0, "hydra": 0, "by the helper": 0}
        self._parsed: dict[str, object] = {}  # override line -> Hydra's parse of it (jobs repeat most lines)
        # base key -> the future of (base, first job) handed to the helper process (compose_ahead)
        self._ahead: dict[tuple, object] = {}

    def groups(self) -> set[str]:
        """Every config group the search path has (``model``, ``hydra/launcher`` ...)."""
        if self._groups is None:
            found: set[str] = set()
            todo = [""]
            while todo:
                parent = todo.pop()
                for name in self.loader.list_groups(parent):
                    path = f"{parent}/{name}" if parent else name
                    if path not in found:
                        found.add(path)
                        todo.append(path)
            self._groups = found
        return self._groups

    def _split(self, overrides: Sequence[str]):
        """(every parsed override, the plain value overrides, the input lines of the others)."""
        from hydra.core.override_parser.types import OverrideType, ValueType

        for line in overrides:
            if line not in self._parsed:
                self._parsed[line] = self._parser.parse_overrides([line])[0]
        parsed = [self._parsed[line] for line in overrides]
        values, rest = [], []
        for o in parsed:
            plain = (
                o.type == OverrideType.CHANGE
                and o.package is None
                and o.value_type == ValueType.ELEMENT
                and not o.is_hydra_override()
                and o.key_or_group.replace(".", "/") not in self.groups()
            )
            (values if plain else rest).append(o)
        return parsed, values, [o.input_line for o in rest]

    def hydra_compose(self, overrides: Sequence[str]):
        """Hydra's own composition of one job (slow; its errors are Hydra's)."""
        self.composed["hydra"] += 1
        return self.loader.load_sweep_config(self.master, list(overrides))

    def _key(self, overrides: Sequence[str]):
        parsed, values, rest = self._split(overrides)
        return (tuple(rest), tuple(o.key_or_group for o in values)), parsed, values, rest

    def compose_ahead(self, grid: Sequence[Sequence[str]], executor) -> None:
        """Hand the Hydra compositions of the bases of ``grid`` (each base, and its first job, the check) to
        ``executor`` (the sweep's helper process, :meth:`lossbench.writer.Writer.submit`), last base first,
        while :meth:`compose` goes through the jobs from the first: a base the helper has not started when
        its first job comes is composed here (its future cancelled), so neither process waits for the
        other for long. The helper composes with the same loader and master config, and Hydra's state."""
        from hydra.core.singleton import Singleton

        first: dict[tuple, tuple[list[str], list[str]]] = {}  # base key -> (its overrides, its first job's)
        for overrides in grid:
            key, _, _, rest = self._key(overrides)
            if key not in self._bases and key not in first:
                first[key] = (list(rest), list(overrides))
        if len(first) < 2:  # one base: nothing to share
            return
        import cloudpickle

        state = cloudpickle.dumps(Singleton.get_state())  # OmegaConf's resolvers are closures
        for key in reversed(list(first)):
            rest, overrides = first[key]
            try:
                self._ahead[key] = executor.submit(
                    _compose_pair, self.loader, self.master, rest, overrides, state
                )
            except RuntimeError:  # the helper is gone: every composition is made here
                return

    def _from_helper(self, key):
        """(base, first job) the helper composed for ``key``, or None: not started (cancelled), failed (this
        process composes it and meets the error itself), or none handed over."""
        future = self._ahead.pop(key, None)
        if future is None or future.cancel():
            return None
        try:
            pair = future.result()
        except Exception as e:
            log.debug("the helper's composition failed (%s: %s); composed here", type(e).__name__, e)
            return None
        self.composed["by the helper"] += 2
        return pair

    def cancel_ahead(self) -> None:
        """Cancel what the helper has not started (the plan is refused, or done)."""
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()

    def compose(self, overrides: Sequence[str]):
        """The config of the job with these overrides: a fresh DictConfig the caller owns."""
        key, parsed, values, rest = self._key(overrides)
        verify = key not in self._bases
        pair = self._from_helper(key) if verify else None
        if verify:
            self._bases[key] = pickle.dumps(pair[0] if pair else self.hydra_compose(rest))
        base = self._bases[key]
        if base is None:
            return self.hydra_compose(overrides)
        cfg = pickle.loads(base)
        self._apply(cfg, parsed, values)
        self.composed["fast"] += 1
        if verify:
            from omegaconf import OmegaConf

            slow = pair[1] if pair else self.hydra_compose(overrides)
            if OmegaConf.to_container(slow, resolve=False) != OmegaConf.to_container(cfg, resolve=False):
                log.debug("composition by values differs from Hydra's for %s: Hydra's is used", overrides)
                self._bases[key] = None
                return slow
        return cfg

    def _apply(self, cfg, parsed, values) -> None:
        from omegaconf import OmegaConf, open_dict
        from omegaconf.errors import ConfigAttributeError, ConfigKeyError

        for o in values:
            try:
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
            except (ConfigAttributeError, ConfigKeyError) as e:
                raise ConfigError(
                    o.key_or_group,
                    o.get_value_element_as_str(),
                    "no such key in the config",
                    f"To add a new key use +{o.input_line}.",
                ) from e
        task = [o for o in parsed if not o.is_hydra_override()]
        hydra_lines = [o.input_line for o in parsed if o.is_hydra_override()]
        master_hydra = list(OmegaConf.to_container(self.master.hydra.overrides.hydra))
        with open_dict(cfg.hydra):
            cfg.hydra.overrides.hydra = master_hydra + hydra_lines
            cfg.hydra.overrides.task = [o.input_line for o in task]
            cfg.hydra.job.override_dirname = override_dirname(task, cfg.hydra.job.config.override_dirname)


def _compose_pair(loader, master, rest: list[str], overrides: list[str], singleton_state: bytes):
    """In the helper: Hydra's composition of a base and of its first job, with the launching process's Hydra
    state (its config store and plugins; pickled by cloudpickle), as lossbench's pool workers set it."""
    import pickle

    from lossbench.sweep.hydra_job import use_hydra_state

    use_hydra_state(pickle.loads(singleton_state))
    return loader.load_sweep_config(master, rest), loader.load_sweep_config(master, overrides)


def override_dirname(task_overrides, settings) -> str:
    """``hydra.job.override_dirname`` as Hydra documents it: the task overrides not in ``exclude_keys``,
    sorted, joined by ``item_sep``, with ``kv_sep`` in place of each ``=``."""
    lines = sorted(o.input_line for o in task_overrides if o.key_or_group not in settings.exclude_keys)
    return settings.item_sep.join(lines).replace("=", settings.kv_sep)
