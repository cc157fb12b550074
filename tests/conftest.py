"""Shared fixtures: the real Hydra config composed from conf/, shrunk to tiny sizes; temp MLflow stores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lossbench.config import config_dir


def compose_cfg(overrides: list[str] = ()) -> dict:
    """Compose the real config (conf/) with overrides; returns the resolved plain dict."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def tiny(overrides: list[str] = ()) -> list[str]:
    """Overrides that keep a run to about a second (few epochs, small nets, small synthetic data)."""
    out = ["train.epochs=5", "train.min_steps=0", "train.patience=3", "train.batch_size=32", *overrides]
    if any(o.startswith("model=torch") for o in overrides):
        out.append("train.lr=0.01")
    if "model=torch_mlp" in overrides:
        out.append("model.hidden_sizes=[32]")
    if "data=synthetic" in overrides:
        out += ["data.n_samples=400", "data.n_classes=3"]
    return out


@pytest.fixture
def store(tmp_path) -> str:
    """A fresh SQLite MLflow store in a temp folder."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def stored_by_helper(log_text: str) -> tuple[int, int]:
    """(runs the helper stored, runs the launching process stored itself: MAX_BEHIND waiting, drain), as the
    launch's log line says them; (0, 0) without that line."""
    import re

    found = re.search(r"the MLflow helper process stored (\d+) runs(?:, this process (\d+))?", log_text)
    return (int(found[1]), int(found[2] or 0)) if found else (0, 0)


def terminal_sigint() -> None:
    """``preexec_fn`` of a child a test interrupts with Ctrl-C: SIGINT as a terminal's foreground child has it
    (Python's KeyboardInterrupt), also when this test run was started with SIGINT ignored, as a shell's
    background job (``nohup ... &``) is, which a child would inherit."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_env(extra: dict | None = None) -> dict:
    """This process's environment for a ``python -m lossbench`` child, without MLFLOW_TRACKING_URI (each test
    names its own store), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(extra or {})
    return env


def run_cli(
    args: list[str], cwd: Path, env: dict | None = None, timeout: int = 300, module: str = "lossbench"
) -> subprocess.CompletedProcess:
    """Run ``python -m lossbench`` (or another module) as a user would, in ``cwd`` (no inherited
    MLFLOW_TRACKING_URI)."""
    full_env = cli_env(env)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
