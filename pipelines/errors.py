"""User-facing errors: one line that names the place and what was expected.

Tracebacks are for bugs. Anything a user can fix by editing a file or a flag is
raised as a ``UserError`` subclass and printed by the CLI as a single line.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix; the CLI prints ``str(err)`` and exits 2."""


class ConfigError(UserError):
    """A problem in a pipeline config: ``file:line: key.path: message``."""

    def __init__(self, message: str, *, file: str | None = None, path: str = "",
                 line: int | None = None):
        self.file, self.path, self.line, self.message = file, path, line, message
        where = file or "<config>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {path}: {message}" if path else f"{where}: {message}")


class ConfigErrors(UserError):
    """Several config errors at once; printed one per line."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class TaskError(UserError):
    """A task failed in a way the user should see (e.g. error rate exceeded)."""
