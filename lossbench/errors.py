"""Errors lossbench reports to users as one clear line."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid: names the key, the bad value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str, hint: str | None = None) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        message = f"{key}={value!r} is invalid: {allowed}" + (
            "" if allowed.endswith(("?", ".", "!")) else "."
        )
        if hint:
            message += f" {hint}"
        super().__init__(message)


class CommandError(ValueError):
    """A command cannot run as given (a message already in the one-line form, e.g. Hydra's own words)."""


def one_line(error: BaseException) -> str:
    """An error's message on one line (Hydra's composition errors span several)."""
    text = " ".join(part.strip() for part in str(error).strip().splitlines() if part.strip())
    return text or type(error).__name__
