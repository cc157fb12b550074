"""Where the Hydra configs live, and small helpers around the composed config."""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from functools import cache
from pathlib import Path

# Keys that say where a run is recorded, not what it computes: excluded from the fingerprint.
NON_SEMANTIC_KEYS = ("tracking", "resume", "report", "vectorise_seeds")


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
    """The resolved config as plain Python, with real-valued keys as floats (10 -> 10.0)."""
    from omegaconf import OmegaConf

    c = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
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


def fingerprint(cfg) -> str:
    """Stable hash of what a run computes (the resolved config minus where it is tracked)."""
    container = {k: v for k, v in to_container(cfg).items() if k not in NON_SEMANTIC_KEYS and k != "hydra"}
    blob = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@cache
def _yaml_dumper():
    """PyYAML's C dumper with OmegaConf's string rule (quote what would load as a bool, int or float); None
    if OmegaConf's private dumper moved."""
    import yaml

    try:
        from omegaconf._utils import get_omega_conf_dumper

        rule = get_omega_conf_dumper().yaml_representers[str]
    except (ImportError, AttributeError, KeyError):
        return None

    class Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
        pass

    Dumper.add_representer(str, rule)
    Dumper.add_multi_representer(Enum, lambda dumper, member: rule(dumper, member.name))  # as enum_to_str
    return Dumper


def to_yaml(cfg) -> str:
    """The text ``OmegaConf.to_yaml`` writes (unresolved, keys in order, enums by name) for a DictConfig or
    a plain dict, emitted by PyYAML's C emitter: ~3x faster (tests hold the texts equal)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    is_config = isinstance(cfg, (DictConfig, ListConfig))
    dumper = _yaml_dumper()
    if dumper is None:
        return OmegaConf.to_yaml(cfg if is_config else OmegaConf.create(cfg))
    import yaml

    data = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True) if is_config else cfg
    return yaml.dump(data, Dumper=dumper, default_flow_style=False, allow_unicode=True, sort_keys=False)
