"""Exceptions that a job turns into a result row instead of a crash.

`JobSkipped` means the combination cannot run here (missing dependency, unsupported device or
family): the row is `skipped`. Any other exception inside a job is recorded as `failed`.
`QuantbenchError` is a user error with a one-line message (bad config, malformed data file).
"""

from __future__ import annotations

import difflib
from typing import Sequence


def closest_name(name: str, choices: Sequence[str]) -> str | None:
    """The valid name nearest to a misspelt one (difflib's ratio, at least 0.6), or None."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return close[0] if close else None


def unknown_choice(what: str, name: str, choices: Sequence[str]) -> str:
    """`unknown precision 'nf5'; did you mean 'nf4'? choose one of: ...`: the nearest name first,
    where one is near, then every choice."""
    close = closest_name(name, choices)
    hint = f"did you mean '{close}'? " if close else ""
    return f"unknown {what} '{name}'; {hint}choose one of: {', '.join(choices) or '(none installed)'}"


class QuantbenchError(Exception):
    """A user-facing error whose message is one line: what was wrong and what to do."""


class JobSkipped(QuantbenchError):
    """This job cannot run on this machine or with this combination; the reason says why."""


class UnknownPluginError(QuantbenchError):
    """A backend, family or dataset name that no installed package registers."""


class PluginLoadError(QuantbenchError):
    """A registered plugin whose module failed to import."""


class DuplicatePluginError(QuantbenchError):
    """One name registered by two different packages: which one a user gets would be an accident."""


class DatasetError(QuantbenchError):
    """A dataset file that is missing or malformed."""


class ModelSourceError(QuantbenchError):
    """A model that cannot be found or loaded from its configured source."""


class UnreadableResult(QuantbenchError):
    """A job directory's result.json that this quantbench cannot read (missing, damaged, or written
    in a schema version it does not know): the collector shows the reason, a resumed sweep re-runs it."""
