"""Small helpers shared by subcommands."""

from __future__ import annotations

import json
import sys


def print_json_last(obj) -> None:
    """Print ``obj`` as one JSON line (machine-readable output is always the last line)."""
    sys.stdout.write(json.dumps(obj, sort_keys=True, allow_nan=False) + "\n")
