import subprocess
import sys
import time


def test_help_is_fast_and_lists_subcommands():
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "slim_leakage.cli", "--help"], capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    assert out.returncode == 0
    for name in (
        "run",
        "ls",
        "dataset",
        "judge",
        "agree",
        "estimate",
        "validate",
        "submit",
        "report",
    ):
        assert f"    {name}" in out.stdout
    assert elapsed < 5  # generous: the interpreter itself starts in ~0.1 s


def test_ls_lists_vanilla_and_backbones(cli):
    code, out, _ = cli("ls")
    assert code == 0
    assert "vanilla" in out and "tiny-random" in out and "flux-dev" in out


def test_ls_json_is_one_object(cli):
    import json

    code, out, _ = cli("ls", "backbones", "--json")
    assert code == 0
    data = json.loads(out.strip().splitlines()[-1])
    assert {row["name"] for row in data["backbones"]} >= {"tiny-random", "flux-dev", "flux-schnell"}


def test_usage_error_is_one_line_plus_hint_exit_2(cli):
    import importlib

    main_mod = importlib.import_module("slim_leakage.cli.main")
    from slim_leakage.errors import UnknownNameError

    def boom(args):
        raise UnknownNameError(
            "Unknown method 'deleeker'. Did you mean 'deleaker'?",
            hint="Available methods: deleaker",
        )

    parser = main_mod.build_parser
    try:
        main_mod.build_parser = lambda: _patched(parser(), boom)
        code, out, err = cli("ls")
    finally:
        main_mod.build_parser = parser
    assert code == 2
    assert err.splitlines() == [
        "error: Unknown method 'deleeker'. Did you mean 'deleaker'?",
        "hint: Available methods: deleaker",
    ]
    assert "Traceback" not in err


def _patched(parser, func):
    for action in parser._subparsers._group_actions:
        action.choices["ls"].set_defaults(func=func)
    return parser


def test_unexpected_error_exit_1_and_debug_shows_traceback(cli):
    import importlib

    import pytest

    main_mod = importlib.import_module("slim_leakage.cli.main")

    def crash(args):
        raise RuntimeError("kaboom")

    parser = main_mod.build_parser
    try:
        main_mod.build_parser = lambda: _patched(parser(), crash)
        code, _, err = cli("ls")
        assert code == 1
        assert "RuntimeError: kaboom" in err and "--debug" in err and "Traceback" not in err
        with pytest.raises(RuntimeError):
            cli("--debug", "ls")
    finally:
        main_mod.build_parser = parser


def test_bare_options_mean_run():
    from slim_leakage.cli.main import _normalise

    assert _normalise(["--method", "deleaker"]) == ["run", "--method", "deleaker"]
    from slim_leakage.cli.main import _take_debug

    assert _take_debug(["--debug", "--method", "x"]) == (["--method", "x"], True)
    assert _take_debug(["run", "--debug", "--", "--debug"]) == (["run", "--", "--debug"], True)
    assert _take_debug(["ls"]) == (["ls"], False)
    assert _normalise(["ls"]) == ["ls"]
    assert _normalise(["--help"]) == ["--help"]
