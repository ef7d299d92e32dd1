"""Prompt baselines: the rewritten prompts, their validation, and generation through them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slim_leakage.errors import ConfigError, EntityNotFoundError
from slim_leakage.methods import get_method
from slim_leakage.methods.prompts import (
    DEFAULT_INSTRUCTION,
    append_sentence,
    augmented_samples,
    join_entities,
    read_descriptions,
    write_descriptions,
)
from slim_leakage.records import Sample

PAIR = Sample(id="p1", prompt="A cow and a horse in a field", entities=("cow", "horse"), seed=7)
TRIPLET = Sample(
    id="t1", prompt="A cat, a dog and a fox on a table!", entities=("cat", "dog", "fox"), seed=8
)


def test_join_entities_and_append_sentence():
    assert join_entities(["cow"]) == "the cow"
    assert join_entities(["cow", "horse"]) == "the cow and the horse"
    assert join_entities(["cat", "dog", "fox"]) == "the cat, the dog and the fox"
    assert append_sentence("A cow", "Hello.") == "A cow. Hello."
    assert append_sentence("A cow!  ", "Hello.") == "A cow! Hello."


def test_instruction_prompt_names_every_entity_after_the_original_prompt():
    method = get_method("instruction-prompt")
    text = method.rewrite(TRIPLET)
    assert text.startswith(TRIPLET.prompt + " ")
    assert "the cat, the dog and the fox" in text
    assert "cat or dog or fox" in text
    expected = DEFAULT_INSTRUCTION.format(
        entities="the cat, the dog and the fox", each="cat or dog or fox"
    )
    assert text == f"{TRIPLET.prompt} {expected}"
    assert "the the" not in text.lower()
    assert "Draw the cat, the dog and the fox as clearly separate individuals" in text


def test_instruction_prompt_prefix_and_custom_wording():
    method = get_method(
        "instruction-prompt", instruction="Keep {entities} apart.", position="prefix"
    )
    assert method.rewrite(PAIR) == "Keep the cow and the horse apart. A cow and a horse in a field"


@pytest.mark.parametrize(
    "options, match",
    [
        ({"position": "middle"}, "position='middle'"),
        ({"instruction": "  "}, "instruction is empty"),
        ({"instruction": "Keep {animals} apart"}, "bad placeholder"),
        ({"instrucion": "x"}, "Did you mean 'instruction'"),
    ],
)
def test_instruction_prompt_bad_options_are_clear_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        get_method("instruction-prompt", **options)


def test_entity_description_uses_the_slim_taxonomy():
    from slim_leakage.slim.taxonomy import entity_description

    text = get_method("entity-description").rewrite(PAIR)
    assert text.startswith("A cow and a horse in a field. The cow is ")
    cow = entity_description("cow").rstrip(".")
    assert f"The cow is {cow[0].lower()}{cow[1:]}." in text
    # Descriptions follow in prompt order.
    assert text.index("The cow is") < text.index("The horse is")


def test_entity_description_from_a_frozen_file(tmp_path):
    path = tmp_path / "desc.json"
    write_descriptions(path, {"horse": "A tall animal.", "cow": "A spotted animal."}, model="m-1")
    data = json.loads(path.read_text())
    assert data == {
        "model": "m-1",
        "descriptions": {"cow": "A spotted animal.", "horse": "A tall animal."},
    }
    method = get_method(
        "entity-description", descriptions=str(path), template="{entity}: {description}."
    )
    assert (
        method.rewrite(PAIR)
        == "A cow and a horse in a field. cow: a spotted animal. horse: a tall animal."
    )
    assert "m-1" in method.description_source()


def test_entity_description_max_words_cuts_long_descriptions(tmp_path):
    path = tmp_path / "d.json"
    write_descriptions(path, {"cow": "one two three four, five", "horse": "six"}, model="m")
    method = get_method("entity-description", descriptions=str(path), max_words=4)
    assert "The cow is one two three four." in method.rewrite(PAIR)


def test_entity_description_missing_entry_names_sample_and_entity(tmp_path):
    path = tmp_path / "d.json"
    write_descriptions(path, {"cow": "x"}, model="m")
    method = get_method("entity-description", descriptions=str(path))
    with pytest.raises(EntityNotFoundError, match=r"'p1'.*'horse'"):
        method.rewrite(PAIR)


def test_entity_description_unknown_taxonomy_entity_is_clear():
    sample = Sample(id="z", prompt="a zorble and a cow", entities=("zorble", "cow"), seed=1)
    with pytest.raises(EntityNotFoundError, match="zorble"):
        get_method("entity-description").rewrite(sample)


@pytest.mark.parametrize(
    "content, match",
    [
        ("not json", "not valid JSON"),
        ('{"descriptions": {"cow": ""}}', "non-empty"),
        ('{"model": "m"}', "must hold an object"),
    ],
)
def test_bad_descriptions_file_is_a_clear_error(tmp_path, content, match):
    path = tmp_path / "d.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        read_descriptions(path)
    with pytest.raises(ConfigError, match="does not exist"):
        read_descriptions(tmp_path / "missing.json")


def test_bad_template_is_rejected():
    with pytest.raises(ConfigError, match="lacks"):
        get_method("entity-description", template="The {entity}.")


def test_augmented_samples_keep_ids_seeds_and_check_entities():
    out = augmented_samples([PAIR], lambda s: s.prompt + " More.", check_entities=True)
    assert out[0].id == PAIR.id and out[0].seed == PAIR.seed and out[0].entities == PAIR.entities
    with pytest.raises(EntityNotFoundError, match="'horse'"):
        augmented_samples([PAIR], lambda s: "a cow", check_entities=True)
    # "cows" is not the word "cow".
    with pytest.raises(EntityNotFoundError, match="'cow'"):
        augmented_samples([PAIR], lambda s: "cows and a horse", check_entities=True)


def test_prompt_baselines_generate_exactly_the_augmented_prompt(tiny_backbone):
    method = get_method("instruction-prompt")
    method.prepare(tiny_backbone, [PAIR, TRIPLET])
    outputs = method.generate(tiny_backbone, [PAIR, TRIPLET])
    assert [o.extra["prompt"] for o in outputs] == [method.rewrite(PAIR), method.rewrite(TRIPLET)]
    direct = tiny_backbone.generate([method.rewrite(TRIPLET)], [TRIPLET.seed])[0]
    vanilla = tiny_backbone.generate([TRIPLET.prompt], [TRIPLET.seed])[0]
    assert np.array_equal(np.asarray(outputs[1].image), np.asarray(direct))
    assert not np.array_equal(np.asarray(outputs[1].image), np.asarray(vanilla))


def test_deleaker_description_is_deleaker_on_the_described_prompt(tiny_backbone, tmp_path):
    import dataclasses

    path = tmp_path / "d.json"
    write_descriptions(path, {"cow": "a spotted animal", "horse": "a tall animal"}, model="m")
    options = {"smoothing": False, "beta1": 0.0}  # random tiny attention: keep masks non-empty
    method = get_method("deleaker+description", descriptions=str(path), **options)
    assert method.config.alpha == 1.2 and method.config.descriptions == str(path)
    method.prepare(tiny_backbone, [PAIR])
    (out,) = method.generate(tiny_backbone, [PAIR])
    described = dataclasses.replace(PAIR, prompt=method.rewrite(PAIR))
    assert out.extra["prompt"] == described.prompt.strip()
    assert all(n > 0 for n in out.extra["mask_tokens"].values())
    (plain,) = get_method("deleaker", **options).generate(tiny_backbone, [described])
    assert np.array_equal(np.asarray(out.image), np.asarray(plain.image))
    (undescribed,) = get_method("deleaker", **options).generate(tiny_backbone, [PAIR])
    assert not np.array_equal(np.asarray(out.image), np.asarray(undescribed.image))


def test_deleaker_description_validates_both_option_sets():
    with pytest.raises(ConfigError, match="alpha"):
        get_method("deleaker+description", alpha=-1.0)
    with pytest.raises(ConfigError, match="lacks"):
        get_method("deleaker+description", template="{entity}")
