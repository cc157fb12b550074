"""Running the README's first command in a clone leaves ``git status`` clean: a user's report goes to
``reports/<experiment>/`` (git-ignored), the committed reference report lives in ``reports/reference/``."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _checkout_copy(dst: Path) -> Path:
    """A fresh git repository holding this checkout's files as git sees them (tracked, and untracked but not
    ignored), committed: what a clone of it would hold."""
    if not (ROOT / ".git").exists():
        pytest.skip("not run from a git checkout (an installed lossbench has no README command to check)")
    files = _git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    _git(dst, "init", "-q")
    _git(dst, "add", "-A")
    _git(dst, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "clone")
    return dst


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _readme_first_command() -> list[str]:
    """The lossbench part of the README's first set-up command (``… && python -m lossbench ARGS``)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Set up", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    match = re.search(r"python -m lossbench((?: [^&\n]+)?)\s*$", block.strip())
    assert match, block
    return match.group(1).split()


def _run_and_check(copy: Path, args: list[str], timeout: int) -> None:
    reference = _digests(copy / "reports" / "reference")
    assert reference, "the committed reference report is missing"
    proc = run_cli(args, cwd=copy, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the user's report, where the README says
    assert (copy / "reports" / "imbalance" / "index.html").is_file()
    assert (copy / "mlflow.db").is_file() and any((copy / "experiments" / "imbalance").iterdir())
    assert _git(copy, "status", "--porcelain", "--untracked-files=all") == ""
    assert _digests(copy / "reports" / "reference") == reference


def test_readme_first_command_names_the_flagship():
    assert _readme_first_command() == ["+experiment=imbalance"]


def test_a_narrowed_flagship_sweep_leaves_a_clone_clean(tmp_path):
    copy = _checkout_copy(tmp_path / "clone")
    narrowed = ["seed=0", "model=logreg", "loss=ce,weighted_ce", "imbalance.ratio=1,100"]
    args = [*_readme_first_command(), *narrowed]
    _run_and_check(copy, args, timeout=600)


@pytest.mark.slow
def test_the_readme_first_command_leaves_a_clone_clean(tmp_path):
    copy = _checkout_copy(tmp_path / "clone")
    _run_and_check(copy, _readme_first_command(), timeout=3000)
