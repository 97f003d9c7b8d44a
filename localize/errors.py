"""Errors a user can cause or meet. Each prints as one line: what, where, how to fix.

The exit code for each class is chosen in one place, ``cli.EXIT_FOR``.
"""

from __future__ import annotations

from pathlib import Path


class LocalizeError(Exception):
    """Base of every error we expect to show a user instead of a traceback."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text} — {self.hint}" if self.hint else text


class InputError(LocalizeError):
    """Bad input, options or config, found before anything is sent."""


class CatalogError(InputError):
    """The catalog file cannot be read as products."""

    def __init__(
        self,
        path: Path | str,
        message: str,
        *,
        line: int | None = None,
        column: str | int | None = None,
        hint: str | None = None,
    ) -> None:
        where = str(path)
        if line is not None:
            where += f":{line}"
        if isinstance(column, int):
            where += f":{column}"
        elif column is not None:
            where += f" (column {column})"
        super().__init__(message, where=where, hint=hint)
        self.path = Path(path)
        self.line = line
        self.column = column


class LocaleError(InputError):
    """A locale code that is malformed or unknown."""


class PlatformError(InputError):
    """A platform with no prompts."""


class ConfigError(InputError):
    """localize.yaml, an environment variable or a flag holds a value we cannot use."""


class PromptError(InputError):
    """A template that fails to load or render."""


class PriceError(InputError):
    """No price is known for the model, so nothing can be estimated."""


class BudgetReached(LocalizeError):
    """--max-cost: the next request's worst case does not fit under the cap."""


class OutInUse(InputError):
    """Another localize command (a run, the review server saving a decision) is writing the
    same output directory."""

    def __init__(self, out: Path, holder: str) -> None:
        super().__init__(
            f"{out} is being written by another localize command ({holder})",
            hint="wait for it to finish, or give this run another --out; nothing was sent",
        )


class DiskFull(LocalizeError):
    """OUT's disk is full (or over quota) while a run writes."""
