"""Small helpers shared by subcommands."""

from __future__ import annotations

import json
import sys

from ..errors import NotYetAvailableError


def not_yet(command: str, what: str):
    """A handler for a subcommand this version does not provide yet (exit 2)."""

    def handler(args) -> int:
        raise NotYetAvailableError(
            f"`slim-eval {command}` is not available in this version: {what}.",
            hint="See `slim-eval --help` for the commands that are.",
        )

    return handler


def print_json_last(obj) -> None:
    """Print ``obj`` as one JSON line (machine-readable output is always the last line)."""
    sys.stdout.write(json.dumps(obj, sort_keys=True, allow_nan=False) + "\n")
