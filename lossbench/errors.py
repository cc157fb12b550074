"""Errors lossbench reports to users as one clear line."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid: names the key, the bad value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str, hint: str | None = None) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        message = f"{key}={value!r} is invalid: {allowed}."
        if hint:
            message += f" {hint}"
        super().__init__(message)
