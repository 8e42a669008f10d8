"""mt5lab's own error types. Every failure a user can cause is one of these, with a one-line message."""

from __future__ import annotations


class Mt5LabError(Exception):
    """Base class: the CLI prints ``str(error)`` on one line and exits non-zero."""

    exit_code = 1


class BarValidationError(Mt5LabError, ValueError):
    """A bar file or frame breaks a rule. Nothing has been written.

    ``row`` is the 1-based data row in the source (header excluded), or None for file-level rules.
    """

    exit_code = 2

    def __init__(self, source: str, row: int | None, rule: str, detail: str = ""):
        self.source, self.row, self.rule, self.detail = str(source), row, rule, detail
        where = f"{self.source}: row {row}" if row is not None else self.source
        super().__init__(f"{where}: {rule}" + (f": {detail}" if detail else ""))


class ConfigError(Mt5LabError):
    """A profile or environment setting is missing or wrong (never includes secret values)."""

    exit_code = 3


class StoreError(Mt5LabError):
    """The offline or online store refused an operation (connection, auth, disk, lock)."""

    exit_code = 4


class MaxLossExceeded(Mt5LabError):
    """Rows disappeared where none may (a join or a write lost rows silently)."""

    exit_code = 5


class TrainingSetError(Mt5LabError, ValueError):
    """A training-set request is invalid (entity frame, feature refs, labels or splits); names the
    source, row and rule where there is one. Nothing has been computed."""

    exit_code = 2
