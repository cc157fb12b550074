"""Where lossbench writes, and how it writes there without harming anything it did not write.

Names a user types become folder names (``tracking.experiment`` -> ``experiments/<name>/`` and
``reports/<name>/``): :func:`dirname` maps any name to one safe path component. A report folder is written
through :func:`write_report`: built in a fresh staging folder beside it, then moved in file by file; a
folder that exists, is not empty and is not a lossbench report is refused, and files lossbench did not write
are never deleted or overwritten. The files a build wrote are listed in the folder's :data:`MANIFEST`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from lossbench.errors import ConfigError

MANIFEST = ".lossbench-report.json"
REPORTS = "reports"
# what a report folder written before the manifest existed holds (recognised by its index.html's title)
_LEGACY_FILES = ("index.html", "README.md", "summary.csv", "comparisons.csv")
_LEGACY_TITLE = "<title>lossbench report"
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def dirname(name: object) -> str:
    """``name`` as one safe folder name: itself when it is already one (letters, digits, ``.``, ``_``,
    ``-``, starting with a letter or digit, no ``..``, at most 100 characters), else its safe characters with
    a short hash of the whole name, so two different names never share a folder (``../x`` -> ``x-1a2b3c4d``).
    """
    text = str(name)
    if _SAFE.fullmatch(text) and ".." not in text:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    stem = re.sub(r"\.{2,}", ".", stem).strip("._-")[:80]
    return f"{stem}-{digest}" if stem else f"experiment-{digest}"


def shown(path: Path) -> str:
    """A path as the user reads it: relative to the working folder when it lies inside it."""
    path, cwd = Path(path).resolve(), Path.cwd().resolve()
    return str(path.relative_to(cwd)) if _inside(path, cwd) else str(path)


def register_resolver() -> None:
    """``${lossbench.dirname:${tracking.experiment}}`` in conf/config.yaml's ``hydra.run.dir`` and
    ``hydra.sweep.dir``: registered when :mod:`lossbench` is imported, in every process that resolves them."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("lossbench.dirname"):
        OmegaConf.register_new_resolver("lossbench.dirname", dirname)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def report_dir(out: object, experiment: str, *, key: str = "report.out", cwd: Path | None = None) -> Path:
    """The folder a report goes to: ``reports/<dirname(experiment)>/`` by default; a relative ``out`` must lie
    inside the working folder's ``reports/``; an absolute one may be anywhere (the user chose it)."""
    cwd = (cwd or Path.cwd()).resolve()
    if out is None or out == "":
        return cwd / REPORTS / dirname(experiment)
    raw = Path(str(out)).expanduser()
    if raw.is_absolute():
        return raw.resolve()
    resolved = (cwd / raw).resolve()
    if not _inside(resolved, cwd / REPORTS) or resolved == cwd / REPORTS:
        raise ConfigError(
            key,
            str(out),
            f"a relative report folder must lie inside {REPORTS}/ of the working folder (e.g. "
            f"{REPORTS}/my_report)",
            "Give an absolute path to write it elsewhere.",
        )
    return resolved


def _manifest(folder: Path) -> list[str] | None:
    """The files a previous build wrote into ``folder`` (relative paths), or None when it holds no report."""
    listed = folder / MANIFEST
    if listed.is_file():
        try:
            files = json.loads(listed.read_text(encoding="utf-8"))["files"]
        except (ValueError, KeyError, TypeError):
            return None
        return [f for f in files if isinstance(f, str) and _is_relative(f)]
    index = folder / "index.html"
    try:
        legacy = (
            index.is_file() and _LEGACY_TITLE in index.read_text(encoding="utf-8", errors="replace")[:4000]
        )
    except OSError:
        legacy = False
    if not legacy:
        return None
    files = [name for name in _LEGACY_FILES if (folder / name).is_file()]
    figures = folder / "figures"
    if figures.is_dir():
        files += [
            f"figures/{p.name}" for p in sorted(figures.iterdir()) if p.is_file() and p.suffix == ".png"
        ]
    return files


def _is_relative(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def check_report_dir(folder: Path, *, key: str = "report.out") -> None:
    """Refuse a folder a report must not be written into: an existing file, or a non-empty folder that is not
    a lossbench report (no manifest and no lossbench ``index.html``)."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(key, str(folder), "must be a folder; a file of that name exists")
    if folder.is_dir() and any(folder.iterdir()) and _manifest(folder) is None:
        raise ConfigError(
            key,
            str(folder),
            "the folder exists, is not empty and holds no lossbench report, so nothing in it is replaced",
            "Choose a new or empty folder (or the folder of an earlier lossbench report).",
        )


def write_report(folder: Path, build: Callable[[Path], None], *, key: str = "report.out") -> list[str]:
    """Run ``build(staging)`` in a fresh folder beside ``folder``, then move its files into ``folder``.

    Files of the previous build that this one did not write again are removed; every other file stays as it
    was. A file that lossbench did not write and that the new build would replace makes the write fail before
    anything changes. Returns the files written (relative paths), also listed in ``folder/MANIFEST``."""
    folder = Path(folder)
    check_report_dir(folder, key=key)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.staging-", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp's folder is private; the report folder is not
    try:
        build(staging)
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        (staging / MANIFEST).write_text(json.dumps({"files": files}, indent=1), encoding="utf-8")
        if not folder.exists():
            os.replace(staging, folder)  # a new folder: appears whole, or not at all
            return files
        previous = set(_manifest(folder) or ())
        foreign = [f for f in files if (folder / f).exists() and f not in previous]
        if foreign:
            raise ConfigError(
                key,
                str(folder),
                "it holds files lossbench did not write where the report goes: " + ", ".join(foreign[:5]),
                "Move them away, or choose another folder.",
            )
        for name in files:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, target)
        for name in sorted(previous - set(files)):
            stale = folder / name
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()
                _remove_empty_parents(stale.parent, folder)
        os.replace(staging / MANIFEST, folder / MANIFEST)
        return files
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _remove_empty_parents(folder: Path, top: Path) -> None:
    while folder != top and _inside(folder, top) and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def report_files(folder: Path) -> list[str]:
    """The files the last build wrote into a report folder (relative paths; the manifest itself left out)."""
    return list(_manifest(Path(folder)) or ())
