"""The one error hierarchy of slim-leakage.

Every error a user can cause derives from :class:`SlimError` and carries an optional ``hint``
(the fix). The CLI prints ``error: <message>`` and ``hint: <hint>`` and exits with
:attr:`SlimError.exit_code`: 2 for usage and configuration errors, 1 for failures while running.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

#: The exit codes of ``slim-eval``, one table for every subcommand (docs/cli.md).
EXIT_CODES = {
    0: "success (for `validate`: every entry valid)",
    1: "the work failed or found a problem: a judge, disk or record failure while running, "
    "an invalid entry or label file, a run whose every judgement failed",
    2: "the command was used wrong: an unknown option, name or value, a path that does not "
    "exist or is not what the command takes, a refused overwrite, a run of another "
    "configuration",
    130: "interrupted (Ctrl-C); finished work is kept",
}


class SlimError(Exception):
    """Base class of every error raised on purpose by slim-leakage.

    Args:
        message: What went wrong, naming the offending value.
        hint: How to fix it (printed on its own line by the CLI).
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class UsageError(SlimError):
    """Bad command-line usage or configuration (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration value or key is invalid (exit code 2)."""


class UnknownNameError(UsageError, KeyError):
    """A registry lookup missed: unknown method, judge, backbone or dataset config."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return SlimError.__str__(self)


class MissingDependencyError(UsageError, ImportError):
    """An optional dependency is not installed; the hint names the extra to install."""

    def __str__(self) -> str:
        return SlimError.__str__(self)


class DatasetError(SlimError):
    """A SLIM sample, file or import is malformed."""


class EntityNotFoundError(UsageError):
    """An entity does not occur in its prompt (or falls past the text-length limit)."""


class ModelNotFoundError(UsageError):
    """Backbone or judge weights cannot be found locally or on the hub."""


class JudgeError(SlimError):
    """A judge backend failed for a request after its retries."""


class JudgeParseError(JudgeError):
    """A judge answer could not be parsed against its stage's schema."""


class TransientBackendError(JudgeError):
    """A judge backend failure worth retrying: rate limit, server error, timeout, lost connection.

    The judge retries it with backoff within its shared limits; every other :class:`JudgeError`
    from a backend fails its request at once.

    Args:
        message: What happened.
        retry_after: Seconds the server asked us to wait (``Retry-After``), if it said.
        status: The HTTP status, if there was one.
        hint: How to fix it, if retrying alone may not.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after
        self.status = status


class OutputLimitError(JudgeError):
    """An answer ended at the output-token limit before any usable text (thinking used it up).

    The judge asks once more with a larger output budget; if that also ends this way, the
    sample gets a judge error naming the cause.

    Args:
        message: What happened.
        limit: The output-token limit the request was sent with.
        thinking_tokens: Tokens the model spent thinking, if the API reported them (billed).
        input_tokens: Prompt tokens billed for the call, if the API reported them.
    """

    def __init__(
        self,
        message: str,
        *,
        limit: int | None = None,
        thinking_tokens: int | None = None,
        input_tokens: int | None = None,
    ) -> None:
        super().__init__(message, hint="Raise --judge-arg max_output_tokens=... .")
        self.limit = limit
        self.thinking_tokens = thinking_tokens
        self.input_tokens = input_tokens


class QuotaExhaustedError(JudgeError):
    """A judge API quota that no retry can restore: a per-day quota, an account out of credit.

    The judge sends no further request and the run stops; everything judged so far is kept,
    and the same command resumes once the quota is back.

    Args:
        message: Which quota ran out, naming it as the API did.
        quota: The API's name of the quota (``GenerateRequestsPerDayPerProjectPerModel``,
            ``insufficient_quota``).
        resets_at: When the API says it resets (ISO 8601, UTC), if it said.
        hint: What to do.
    """

    def __init__(
        self,
        message: str,
        *,
        quota: str | None = None,
        resets_at: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.quota = quota
        self.resets_at = resets_at


class RunError(SlimError):
    """A run could not proceed (locked, config mismatch, corrupt records)."""


class OutputWriteError(RunError, OSError):
    """A file could not be written (disk full, read-only folder, no permission).

    Also an :class:`OSError`, so code that catches the operating system's error still does.
    """


class NotARunError(RunError, UsageError):
    """A path given as a run directory is missing or holds no run (exit code 2: the input)."""

    exit_code = 2


class RunConfigMismatchError(RunError):
    """A run directory exists with a different configuration."""

    exit_code = 2


class ValidationError(SlimError):
    """A leaderboard entry or human-label file failed validation."""


class MissingInputError(DatasetError, ValidationError, UsageError):
    """A file or folder the command was given does not exist or is of the wrong kind (exit
    code 2: the input). Also a :class:`DatasetError` and a :class:`ValidationError`, so the
    readers' callers that catch those still do."""

    exit_code = 2


class MetricUnavailableError(SlimError):
    """An image metric cannot be computed here (weights not local, a package missing, ...).

    The run reports the metric as null with this error as its note in ``metrics.json``; it
    never stops a run.
    """


class Problems(SlimError):
    """Several problems found in one check, reported together, one line each.

    The message starts with how many there are and lists each problem with its own fix, so
    one attempt shows everything to correct. The exit code is 2 when any of them is a usage
    error, else 1.

    Args:
        problems: The errors found (two or more).
        what: Where they were found ("in the run request", "in samples.jsonl").
    """

    def __init__(self, problems: Sequence[SlimError], *, what: str) -> None:
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problems {what}:"]
        for problem in self.problems:
            fix = f" (fix: {problem.hint})" if problem.hint else ""
            lines.append(f"  - {problem.message}{fix}")
        super().__init__(
            "\n".join(lines), hint="Fix each problem listed above, then run the command again."
        )
        self.exit_code = 2 if any(p.exit_code == 2 for p in self.problems) else 1


def one_error(problems: Sequence[SlimError], *, what: str) -> SlimError:
    """The error to raise for ``problems``: the problem itself if there is one, else
    :class:`Problems` listing them all."""
    if len(problems) == 1:
        return problems[0]
    return Problems(problems, what=what)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def require(module: str, extra: str, *, feature: str | None = None):
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install.

    Args:
        module: Dotted module name to import.
        extra: The ``slim-leakage[...]`` extra that provides it.
        feature: What needs it (for the message); defaults to the module name.

    Returns:
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = feature or module
        raise MissingDependencyError(
            f"{what} needs the package {module.split('.')[0]!r}, which is not installed ({exc}).",
            hint=f"pip install 'slim-leakage[{extra}]'",
        ) from exc
