"""Local MLflow stores, touched in place where MLflow's client would cost a round of ORM work per call.

Read-only SQL on a SQLite store's tables (the report's loading, a sweep's resume check) and plain file writes
into a run's local artifact folder. Everything else goes through MLflow's client; callers fall back to it
whenever these helpers return None (not a plain SQLite file, artifacts not local, tables not as expected).
"""

from __future__ import annotations

from pathlib import Path


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


def query(uri: str, sql: str, params: tuple = ()) -> list[tuple] | None:
    """The rows of one read-only query on a plain SQLite store; None when the store is not one or the query
    fails (tables not as this code knows them): the caller then asks MLflow's client."""
    import sqlite3

    path = sqlite_path(uri)
    if path is None:
        return None
    try:
        con = connect_read_only(path)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None


def local_artifact_dir(artifact_uri: str | None) -> Path | None:
    """The folder of a run's artifacts when its artifact URI is a local path (``file://`` or absolute)."""
    from urllib.parse import unquote, urlparse

    if not artifact_uri:
        return None
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and Path(artifact_uri).is_absolute():
        return Path(artifact_uri)
    return None
