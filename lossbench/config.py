"""Where the Hydra configs live, and small helpers around the composed config."""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from functools import cache
from pathlib import Path

# Keys that say where a run is recorded, not what it computes: excluded from the fingerprint.
# tune: how a tuned sweep chose its knobs (lossbench.tune); a run's config holds the values it trained with.
NON_SEMANTIC_KEYS = ("tracking", "resume", "report", "vectorise_seeds", "tune")
# Nested keys that say how a run is computed on this machine, not what: also excluded from the fingerprint (a
# re-run with other workers resumes). torch's CPU kernels reduce in an order that may depend on the thread
# count, so runs at different counts can differ in the last digits (README "Reproducibility").
# data.label only names the dataset in reports: renaming it resumes the same runs.
NON_SEMANTIC_NESTED = (("train", "threads"), ("data", "label"))
# keys of a loss config that are not its parameters: its name, and its search space (lossbench.tune)
LOSS_NOT_PARAMS = ("name", "tune")


def config_dir() -> Path:
    """The conf/ folder: inside the installed package (wheel), or at the checkout root (editable install)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"lossbench's conf/ folder was not found next to {here}; reinstall lossbench")


# Keys whose values are real numbers: an override like imbalance.ratio=10 arrives as int and is made float,
# so the same run always has the same params and fingerprint. Loss parameters follow their registry defaults.
FLOAT_KEYS = (
    "imbalance.ratio",
    "imbalance.minority_fraction",
    "rebalance.beta",
    "regularization.rate",
    "regularization.strength",
    "regularization.l1_ratio",
    "split.test",
    "split.val",
    "train.lr",
    "train.momentum",
    "model.dropout",
    "model.tol",
    "data.class_sep",
)


def _float_keys(cfg: dict) -> list[str]:
    loss = cfg.get("loss")
    name = loss.get("name") if isinstance(loss, dict) else None
    return list(FLOAT_KEYS) + [f"loss.{k}" for k in loss_float_params(name)]


@cache
def loss_float_params(name) -> tuple[str, ...]:
    """The real-valued parameters of a loss: those whose registered default is a float; () for an unknown
    name (validation reports it). The registry is read without importing torch (see lossbench.losses)."""
    from lossbench.losses import LOSSES

    spec = LOSSES.get(name) if isinstance(name, str) else None
    return () if spec is None else tuple(k for k, v in spec.params.items() if isinstance(v, float))


def to_container(cfg) -> dict:
    """The resolved config as plain Python, with real-valued keys as floats (10 -> 10.0), without the loss's
    search space (``loss.tune``: read by :func:`lossbench.tune.loss_space` from the composed config)."""
    from omegaconf import OmegaConf

    c = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
    if isinstance(c.get("loss"), dict):
        c["loss"].pop("tune", None)  # the loss's search space (lossbench.tune.loss_space), not a parameter
    for dotted in _float_keys(c):
        *parents, leaf = dotted.split(".")
        node = c
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if (
            isinstance(node, dict)
            and isinstance(node.get(leaf), int)
            and not isinstance(node.get(leaf), bool)
        ):
            node[leaf] = float(node[leaf])
    return c


def flatten(node, prefix: str = "") -> dict[str, object]:
    """Nested mappings -> dotted keys; lists stay values."""
    flat: dict[str, object] = {}
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


# What a run computes from its config changes with lossbench's code too. Raise this number in a change that
# alters any logged value of an unchanged config: every fingerprint changes with it, so resume re-runs those
# configs instead of keeping values computed the old way.
# 2: LDAM's probabilities are softmax(scale z) (were softmax(z)): its probability metrics changed.
# 3: CE runs also log their post-hoc baselines (lossbench.baselines): a CE run from before has none, and a
#    report resuming it would show the baseline rows short of its seeds.
COMPUTATION = 3


def fingerprint(cfg) -> str:
    """Stable hash of what a run computes: the resolved config minus where it is tracked, and
    :data:`COMPUTATION`."""
    container = {k: v for k, v in to_container(cfg).items() if k not in NON_SEMANTIC_KEYS and k != "hydra"}
    for parent, key in NON_SEMANTIC_NESTED:
        if isinstance(container.get(parent), dict) and key in container[parent]:
            container[parent] = {k: v for k, v in container[parent].items() if k != key}
    container["lossbench.computation"] = COMPUTATION
    blob = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# YAML 1.1's boolean words: OmegaConf.to_yaml quotes a string that is one of them, or that reads as a number
_YAML_BOOLS = frozenset(
    [
        "y",
        "Y",
        "yes",
        "Yes",
        "YES",
        "n",
        "N",
        "no",
        "No",
        "NO",
        "true",
        "True",
        "TRUE",
        "false",
        "False",
        "FALSE",
        "on",
        "On",
        "ON",
        "off",
        "Off",
        "OFF",
    ]
)


def _reads_as_other(text: str) -> bool:
    """True for a string YAML would read back as a bool or a number (OmegaConf's rule for quoting it)."""
    if text in _YAML_BOOLS:
        return True
    try:
        float(text)  # int() accepts nothing float() refuses
    except ValueError:
        return False
    return True


def _str_node(dumper, text: str):
    style = "'" if _reads_as_other(text) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


@cache
def _yaml_dumper():
    """PyYAML's C dumper (the pure-Python one where the C one is missing) with OmegaConf's quoting of strings
    and its enums by name."""
    import yaml

    class Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
        pass

    Dumper.add_representer(str, _str_node)
    Dumper.add_multi_representer(Enum, lambda dumper, member: _str_node(dumper, member.name))
    return Dumper


def to_yaml(cfg) -> str:
    """The text ``OmegaConf.to_yaml`` writes (unresolved, keys in order, enums by name) for a DictConfig or
    a plain dict, emitted by PyYAML's C emitter: ~3x faster (tests hold the texts equal)."""
    import yaml
    from omegaconf import DictConfig, ListConfig, OmegaConf

    is_config = isinstance(cfg, (DictConfig, ListConfig))
    data = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True) if is_config else cfg
    return yaml.dump(
        data, Dumper=_yaml_dumper(), default_flow_style=False, allow_unicode=True, sort_keys=False
    )
