"""The command line checked before Hydra runs it: a typo'd key or option gets one line naming it (with the
closest names the config has) and exit 2, instead of Hydra's multi-line message and exit 1.

:func:`precheck` composes the config the command asks for with Hydra's compose API (the first value of each
swept key), as Hydra will compose it again when it runs; commands that only show something (``--help``,
``--cfg``, ``--info`` ...) or point Hydra at other configs (``-cp``, ``-cn``, ``-cd``) are left to Hydra.
"""

from __future__ import annotations

import difflib
import re

from lossbench.errors import CommandError, ConfigError, one_line

_SHOW = {"--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--info", "-i", "--shell-completion"}
_SHOW |= {"-sc", "--experimental-rerun", "--config-path", "-cp", "--config-name", "-cn", "--config-dir"}
_SHOW |= {"-cd", "--package", "-p", "--resolve"}
_FLAGS = {"--multirun", "-m", "--run", "-r"}


def overrides_of(argv: list[str]) -> list[str] | None:
    """The overrides of a command line, or None when the command is one to leave to Hydra."""
    found = []
    for arg in argv:
        if arg.split("=", 1)[0] in _SHOW:
            return None
        if arg in _FLAGS:
            continue
        if arg.startswith("-") and "=" not in arg:
            return None  # an option this check does not know: Hydra says what it thinks of it
        found.append(arg)
    return found


def _first_values(overrides: list[str]) -> list[str]:
    """Each swept override reduced to its first value (a glob sweep is left out: its options exist)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise CommandError(one_line(e)) from e
    single = []
    for o in parsed:
        if not o.is_sweep_override():
            single.append(o.input_line)
        elif o.value_type != ValueType.GLOB_CHOICE_SWEEP and o.is_discrete_sweep():
            first = next(iter(o.sweep_string_iterator()), None)
            if first is not None:
                single.append(f"{o.get_key_element()}={first}")
    return single


def _keys(node, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, dict):
            keys += _keys(value, dotted + ".")
    return keys


def _closest(word: str, options: list[str]) -> str:
    """The "Did you mean ...?" hint for the nearest names: a dotted key is compared with its siblings by its
    last part (``imbalance.ratoi`` -> ``imbalance.ratio``, not every ``imbalance.*``)."""
    options = list(dict.fromkeys(options))
    parent, _, leaf = word.rpartition(".")
    siblings = {o.rpartition(".")[2]: o for o in options if o.rpartition(".")[0] == parent and "." in o}
    pool = siblings if parent and siblings else {o: o for o in options}
    close = difflib.get_close_matches(leaf if pool is siblings else word, list(pool), n=2, cutoff=0.75)
    return f" Did you mean {' or '.join(repr(pool[c]) for c in close)}?" if close else ""


def explain(error: Exception, overrides: list[str], loader, compose) -> Exception:
    """Hydra's composition error as one of lossbench's one-line errors, naming the key or option, with the
    closest names the config has. ``compose(overrides)`` composes a config (to list the keys there are)."""
    from omegaconf import OmegaConf

    text = str(error)
    value_of = {o.split("=", 1)[0].lstrip("+~"): o.split("=", 1)[1] if "=" in o else "" for o in overrides}
    missing_key = re.search(r"Could not override '([^']+)'", text) or re.search(
        r"Key '([^']+)' is not in", text
    )
    if missing_key:
        key = missing_key.group(1)
        others = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]
        try:  # the keys of the config the other overrides make (loss=focal has loss.gamma)
            known = _keys(OmegaConf.to_container(compose(others), resolve=False))
        except Exception:
            known = []
        groups = [g for g in loader.list_groups("") if g != "hydra"]
        return ConfigError(
            key,
            value_of.get(key, ""),
            "no such key in the config",
            (_closest(key, known + groups) + f" To add a new key use +{key}=...").strip(),
        )
    missing_option = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
    if missing_option:
        from hydra.core.object_type import ObjectType

        group, option = missing_option.groups()
        # with hydra.searchpath's folders, as composition sees them (a user's own datasets and losses)
        searchpath = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") == "hydra.searchpath"]
        try:
            options = loader.get_group_options(
                group, results_filter=ObjectType.CONFIG, config_name="config", overrides=searchpath
            )
        except Exception:  # the searchpath itself is bad: the primary search path's options
            options = loader.get_group_options(group)
        if options:
            return ConfigError(
                group,
                option,
                f"no such option; the options of {group} are {', '.join(options)}",
                _closest(option, options).strip() or None,
            )
    return CommandError(one_line(error))


def precheck(argv: list[str]) -> None:
    """Raise a one-line error (CommandError / ConfigError) when Hydra cannot compose the command's config."""
    overrides = overrides_of(argv)
    if not overrides:
        return
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from lossbench.config import config_dir

    single = _first_values(overrides)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        try:
            compose("config", overrides=single, return_hydra_config=True)
        except (HydraException, OmegaConfBaseException) as e:
            loader = GlobalHydra.instance().config_loader()
            raise explain(e, single, loader, lambda o: compose("config", overrides=o)) from e
