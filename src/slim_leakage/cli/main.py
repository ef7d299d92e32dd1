"""``slim-eval``: the command-line entry point.

Each subcommand lives in its own module with ``add_parser(subparsers)``; handlers import heavy
libraries only when they run, so ``slim-eval --help`` and ``slim-eval ls`` stay fast.
A bare ``slim-eval --method X ...`` means ``slim-eval run --method X ...``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import SlimError

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS = (
    "run",
    "sweep",
    "ls",
    "dataset",
    "judge",
    "estimate",
    "agree",
    "annotate",
    "submit",
    "validate",
    "verify-entry",
    "leaderboard",
    "report",
    "toy",
)


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error shape: one ``error:`` line and a ``hint:`` line
    (exit 2), like every other usage error; subcommand parsers inherit it."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        print(f"hint: see `{self.prog} --help` for the options it takes", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (each subcommand adds its own)."""
    parser = _Parser(
        prog="slim-eval",
        description=(
            "Measure and fix semantic leakage in text-to-image models. "
            "`slim-eval --method deleaker` runs the main job (same as `slim-eval run ...`)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"slim-leakage {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"slim_leakage.cli.{name.replace('-', '_')}_cmd")
        module.add_parser(sub)
    return parser


def _take_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug`` wherever it stands (before a ``--``), and whether it was
    there: error hints say "run again with --debug", which must work after the subcommand
    too."""
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [a for a in argv[:end] if a != "--debug"]
    return kept + argv[end:], len(kept) != end


def _normalise(argv: list[str]) -> list[str]:
    # `slim-eval --method X` is `slim-eval run --method X`.
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        return ["run", *argv]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``slim-eval`` and return its exit code (:data:`slim_leakage.errors.EXIT_CODES`:
    0 ok, 1 the work failed, 2 usage error, 130 interrupted)."""
    args_list, debug = _take_debug(list(sys.argv[1:] if argv is None else argv))
    args_list = _normalise(args_list)
    from .._quiet import quantizers_for, summarised_warnings

    # before diffusers is first imported: a quantisation is asked for as quantize=...
    quantizers_for(any("quantize=" in a and "quantize=none" not in a for a in args_list))
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse already printed usage and the error
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    report = (lambda line: print(line, file=sys.stderr)) if not debug else None
    try:
        if report is None:
            return int(args.func(args) or 0)
        with summarised_warnings(report):
            return int(args.func(args) or 0)
    except SlimError as exc:
        if debug:
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "interrupted; finished work is kept (run the same command again to resume)",
            file=sys.stderr,
        )
        return 130
    except OSError as exc:
        if debug:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot access{where}: {exc.strerror or exc}", file=sys.stderr)
        print(
            "hint: check the path, its permissions and free disk space, then run the same "
            "command again (finished work is kept)",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(
            "hint: run again with --debug for the traceback, and report it if it is a bug",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
