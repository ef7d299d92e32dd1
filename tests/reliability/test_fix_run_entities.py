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


def test_entities_match_whole_words_in_any_case():
    from slim_leakage.errors import EntityNotFoundError
    from slim_leakage.preflight import entities_in_prompts

    def check(prompt, *entities):
        for problem in entities_in_prompts(
            [Sample(id="s", prompt=prompt, entities=entities, seed=0)]
        ):
            raise problem

    # found in any case, several words long, followed by punctuation: accepted
    check("A Blue Jay and a crow.", "blue jay", "crow")
    check("a BLUE JAY and a Crow", "Blue Jay", "CROW")
    # the same letters inside a longer word are not the entity, whatever their case
    with pytest.raises(EntityNotFoundError, match="entity 'crow' does not occur"):
        check("A Blue Jay and a Crowd.", "blue jay", "crow")
    with pytest.raises(EntityNotFoundError, match="entity 'jay' does not occur"):
        check("A BLUEJAY and a crow", "jay", "crow")
