"""Regression test: a run refuses a sample whose entity is not in its prompt, before any work."""

from __future__ import annotations

import json

import pytest

from slim_leakage.cli.main import main
from slim_leakage.records import Sample


def _samples(tmp_path, prompt, entities):
    path = tmp_path / "samples.jsonl"
    good = Sample(id="s1", prompt="a cow and a horse", entities=("cow", "horse"), seed=1)
    odd = {"id": "s2", "prompt": prompt, "entities": list(entities), "seed": 2}
    path.write_text(good.to_json() + "\n" + json.dumps(odd) + "\n")
    return path


@pytest.mark.parametrize(
    ("prompt", "entities", "named"),
    [
        ("a cow and a horse", ("cow", "zebra"), "'zebra'"),
        ("a caterpillar and a dog", ("cat", "dog"), "'cat'"),  # a whole word, not a substring
    ],
)
def test_entity_absent_from_its_prompt_fails_before_the_run_starts(
    tmp_path, capsys, monkeypatch, prompt, entities, named
):
    def boom(*args, **kwargs):
        raise AssertionError("weights were loaded before the samples were checked")

    monkeypatch.setattr("slim_leakage.backbones.load_backbone", boom)
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--method",
            "vanilla",
            "--config",
            str(_samples(tmp_path, prompt, entities)),
            "--out",
            str(out),
            "--no-progress",
            "--image-metrics",
            "none",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert f"Sample 's2': entity {named} does not occur in its prompt" in err
    assert "hint:" in err
    assert not out.exists()


def test_entities_match_whole_words_in_any_case(tmp_path):
    from slim_leakage.run import _check_entities_in_prompts

    _check_entities_in_prompts(
        [Sample(id="s", prompt="A Blue Jay and a crow.", entities=("blue jay", "crow"), seed=0)]
    )
