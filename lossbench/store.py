"""Read-only access to a local SQLite MLflow store, for the two reads MLflow's client makes slow: the report's
loading of every run (search_runs builds ORM objects for every param, tag and metric: ~35 s for 10k runs) and
a sweep job's resume check. Nothing here writes.

The SQL reads MLflow's tables as the schema revisions in :data:`TESTED_REVISIONS` have them (the store's
``alembic_version``). A store at any other revision (a newer or older MLflow) is read through MLflow's client
instead, with one warning per store, so a migration that changes what a column means cannot be misread.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import suppress
from functools import cache
from pathlib import Path

log = logging.getLogger("lossbench")

# alembic revisions of MLflow's tracking schema whose runs, params, tags and latest_metrics tables this code's
# queries were tested against (tests/test_tracking.py and tests/test_report.py compare them with search_runs)
# MLflow 3.18's migrations after 3.17's (skill registry tables, the issues table, MCP server versions) leave
# those tables as they were
TESTED_REVISIONS = frozenset({"dc11669786a5", "f4a9b2c7d1e6"})  # MLflow 3.17, 3.18


def sqlite_file(uri: str) -> Path | None:
    """The database file a ``sqlite:///`` tracking URI names (it may not exist yet), or None for any other."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, when it is a plain existing file."""
    if not uri.startswith("sqlite:///") or "?" in uri:
        return None
    path = Path(uri.removeprefix("sqlite:///"))
    return path if path.is_file() else None


def connect_read_only(path: Path):
    """A read-only sqlite3 connection (it can never change or lock out the store's writers for long)."""
    import sqlite3

    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def revision(path: Path) -> str | None:
    """The store's schema revision (``alembic_version``), or None when it has none."""
    import sqlite3

    try:
        con = connect_read_only(path)
        try:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


_REVISIONS: dict[str, str] = {}  # resolved store path -> its schema revision, read once per process


def readable(uri: str) -> Path | None:
    """The SQLite file of ``uri`` when this module may read it directly (a tested schema), else None. A
    store's revision is read once per process (a sweep's jobs query it ~2 times each); MLflow itself cannot
    run on a store migrated under it either."""
    path = sqlite_path(uri)
    if path is None:
        return None
    key = str(path.resolve())
    found = _REVISIONS.get(key) or revision(path)
    if found is not None:
        _REVISIONS[key] = found
    if found in TESTED_REVISIONS:
        return path
    _warn_untested(key, found)
    return None


@cache
def _warn_untested(path: str, found: str | None) -> None:
    log.warning(
        "the MLflow store %s has schema revision %s, which lossbench's direct reads were not tested with "
        "(tested: %s): reading it through MLflow's client instead (correct, slower)",
        path,
        found,
        ", ".join(sorted(TESTED_REVISIONS)),
    )


_OPEN = threading.local()  # per thread: resolved store path -> ((pid, device, inode), read-only connection)


def _reader(path: Path):
    """This thread's read-only connection to the store file ``path``, opened once and kept (opening one costs
    ~1.7 ms here, a query on an open one ~0.04 ms; a sweep's jobs make two each, its resume check one per
    job). Opened again when the path names another file (a store removed and made anew) or in a forked
    process. Kept open it holds no lock: each query is its own read transaction and sees every commit."""
    key = str(path.resolve())
    stat = os.stat(key)
    identity = (os.getpid(), stat.st_dev, stat.st_ino)
    held = _OPEN.__dict__.setdefault("connections", {})
    found = held.get(key)
    if found is not None and found[0] == identity:
        return found[1]
    if found is not None:
        _forget(key)
    connection = connect_read_only(path)
    held[key] = (identity, connection)
    return connection


def _forget(key: str) -> None:
    found = _OPEN.__dict__.get("connections", {}).pop(key, None)
    if found is not None:
        with suppress(Exception):
            found[1].close()


def query(uri: str, sql: str, params: tuple = ()) -> list[tuple] | None:
    """The rows of one read-only query on a SQLite store of a tested schema; None when the store is not one
    or the query fails: the caller then asks MLflow's client."""
    import sqlite3

    path = readable(uri)
    if path is None:
        return None
    try:
        return _reader(path).execute(sql, params).fetchall()
    except (sqlite3.Error, OSError) as e:
        _forget(str(path.resolve()))
        log.debug("read-only query on %s failed (%s); using MLflow's client", path, e)
        return None


def local_artifact_dir(artifact_uri: str | None) -> Path | None:
    """The folder of a run's artifacts when its artifact URI is a local path (``file://`` or absolute), for
    reading them in place."""
    from urllib.parse import unquote, urlparse

    if not artifact_uri:
        return None
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and Path(artifact_uri).is_absolute():
        return Path(artifact_uri)
    return None
