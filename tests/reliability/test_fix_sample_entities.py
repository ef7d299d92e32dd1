"""Regression test: records: entities must occur in the prompt."""

from __future__ import annotations

import pytest

from slim_leakage.cli.main import main
from slim_leakage.errors import (
    EntityNotFoundError,
)
from slim_leakage.records import Sample


def _cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _run_args(tmp_path, *extra, backbone="tiny-random"):
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        Sample(id="s1", prompt="a cow and a horse", entities=("cow", "horse"), seed=1).to_json()
        + "\n"
    )
    return [
        "run",
        "--method",
        "vanilla",
        "--backbone",
        backbone,
        "--config",
        str(samples),
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
        "--image-metrics",
        "none",
        *extra,
    ]


@pytest.fixture
def no_weights(monkeypatch):
    """Fail the test if anything tries to load a backbone."""

    def boom(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was validated")

    monkeypatch.setattr("slim_leakage.backbones.load_backbone", boom)


# -- records: entities must occur in the prompt ---------------------------------------------------
def test_entity_absent_from_its_prompt_is_refused():
    with pytest.raises(EntityNotFoundError, match="'zebra' does not occur"):
        Sample(id="s", prompt="a cow and a horse", entities=("cow", "zebra"), seed=0)
    with pytest.raises(EntityNotFoundError, match="'cat'"):  # a whole word, not a substring
        Sample(id="s", prompt="a caterpillar and a dog", entities=("cat", "dog"), seed=0)
    ok = Sample(id="s", prompt="A Blue Jay and a crow", entities=("blue jay", "crow"), seed=0)
    assert ok.entities == ("blue jay", "crow")
