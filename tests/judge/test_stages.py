"""The stage objects' parsers on stored answer texts, schemas, prompts and the pure label logic."""

from __future__ import annotations

from pathlib import Path

import pytest

from slim_leakage.errors import ConfigError, JudgeParseError
from slim_leakage.judge import stages
from slim_leakage.judge.stages import (
    EXTRACTION_IMAGES,
    EXTRACTION_TEXT,
    PROTOCOL,
    RANKING_QUESTION,
    TYPICALITY_QUESTION,
)

ANSWERS = Path(__file__).parent / "answers"
ENTITIES = ("cat", "cheetah")


def answer(name: str) -> str:
    return (ANSWERS / name).read_text()


def test_extraction_parses_fenced_json_and_deduplicates():
    out = EXTRACTION_TEXT.parse(answer("extraction_fenced.txt"), ENTITIES)
    assert out["features"]["cat"] == [
        "short rounded muzzle",
        "plain grey tabby stripes",
        "small pointed ears",
    ]
    assert out["features"]["cheetah"][0] == "black tear marks from eyes to mouth"


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("extraction_missing_entity.txt", "at least 2"),
        ("extraction_renamed_entity.txt", "allowed"),
    ],
)
def test_extraction_rejects_wrong_entities(name, match):
    with pytest.raises(JudgeParseError, match=match):
        EXTRACTION_TEXT.parse(answer(name), ENTITIES)


def test_extraction_rejects_duplicate_entity():
    text = '{"entities": [{"name": "cat", "features": ["a"]}, {"name": "cat", "features": ["b"]}]}'
    with pytest.raises(JudgeParseError, match="listed twice"):
        EXTRACTION_TEXT.parse(text, ENTITIES)


def test_typicality_parses_scores_and_borrowed_features():
    out = TYPICALITY_QUESTION.parse(answer("typicality_good.txt"), ENTITIES)
    assert out["entities"]["cat"]["typicality"] == 2
    assert out["entities"]["cat"]["borrowed_features"] == ["solid black spots", "tear marks"]
    assert out["entities"]["cheetah"]["borrowed_features"] == []
    assert stages.is_leaky(out) is True


def test_typicality_of_a_missing_entity_is_the_minimum():
    out = TYPICALITY_QUESTION.parse(answer("typicality_missing_entity.txt"), ENTITIES)
    assert out["entities"]["cat"]["present"] is False
    assert out["entities"]["cat"]["typicality"] == stages.TYPICALITY_MIN
    assert stages.is_leaky(out) is False


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("typicality_out_of_range.txt", "above the maximum 5"),
        ("typicality_truncated.txt", "not a JSON object"),
    ],
)
def test_typicality_rejects_bad_answers(name, match):
    with pytest.raises(JudgeParseError, match=match):
        TYPICALITY_QUESTION.parse(answer(name), ENTITIES)


def test_ranking_parses_and_tolerates_surrounding_text():
    assert RANKING_QUESTION.parse(answer("ranking_good.txt"), ENTITIES)["less_leaky"] == "image2"
    neither = RANKING_QUESTION.parse(answer("ranking_neither.txt"), ENTITIES)
    assert (neither["less_leaky"], neither["magnitude"]) == ("neither", "none")


@pytest.mark.parametrize(
    ("name", "match"),
    [("ranking_inconsistent.txt", "does not fit"), ("ranking_extra_key.txt", "unexpected key")],
)
def test_ranking_rejects_bad_answers(name, match):
    with pytest.raises(JudgeParseError, match=match):
        RANKING_QUESTION.parse(answer(name), ENTITIES)


def test_extract_json_errors_on_empty_and_non_objects():
    with pytest.raises(JudgeParseError, match="empty"):
        stages.extract_json("   ")
    with pytest.raises(JudgeParseError):
        stages.extract_json("[1, 2, 3]")


def test_validate_checks_types_strictly():
    schema = {"type": "integer"}
    stages.validate(3, schema)
    with pytest.raises(JudgeParseError):
        stages.validate(True, schema)  # a bool is not an integer
    with pytest.raises(JudgeParseError):
        stages.validate(3.5, schema)


def test_schemas_name_their_stage_and_constrain_entities():
    schema = TYPICALITY_QUESTION.schema(ENTITIES)
    assert schema["title"] == "typicality"
    item = schema["properties"]["entities"]["items"]
    assert item["properties"]["name"]["enum"] == list(ENTITIES)
    assert set(item["required"]) == set(item["properties"])
    assert RANKING_QUESTION.schema(ENTITIES)["title"] == "ranking"
    assert EXTRACTION_IMAGES.schema(ENTITIES)["title"] == "extraction-images"


@pytest.mark.parametrize(
    ("ranking", "order", "label"),
    [
        ({"less_leaky": "image2", "magnitude": "major"}, "ab", "mitigation-major"),
        ({"less_leaky": "image1", "magnitude": "minor"}, "ab", "degradation-minor"),
        ({"less_leaky": "image1", "magnitude": "major"}, "ba", "mitigation-major"),
        ({"less_leaky": "image2", "magnitude": "minor"}, "ba", "degradation-minor"),
        ({"less_leaky": "neither", "magnitude": "none"}, "ba", "no-change"),
    ],
)
def test_ranking_label_takes_the_method_images_side(ranking, order, label):
    assert stages.ranking_label(ranking, order) == label


@pytest.mark.parametrize(
    ("ab", "ba", "label", "flip"),
    [
        ("mitigation-major", "mitigation-major", "mitigation-major", False),
        ("mitigation-major", "mitigation-minor", "mitigation-minor", False),
        ("degradation-minor", "degradation-major", "degradation-minor", False),
        ("mitigation-major", "degradation-major", "no-change", True),
        ("mitigation-minor", "no-change", "no-change", True),
        ("no-change", "no-change", "no-change", False),
    ],
)
def test_combine_orders(ab, ba, label, flip):
    assert stages.combine_orders(ab, ba) == (label, flip)


def test_merge_features_keeps_order_and_drops_duplicates():
    merged = stages.merge_features(
        ENTITIES,
        {"cat": ["Pointed ears", "stripes"], "cheetah": ["spots"]},
        {"cat": ["pointed  ears", "green eyes"], "cheetah": ["tear marks"]},
        None,
    )
    assert merged == {
        "cat": ["Pointed ears", "stripes", "green eyes"],
        "cheetah": ["spots", "tear marks"],
    }


def test_prompts_render_every_placeholder():
    text = RANKING_QUESTION.render(
        {
            "prompt": "a cat and a cheetah",
            "entity_list": '"cat", "cheetah"',
            "report_1": "R1",
            "report_2": "R2",
        }
    )
    assert "$" not in text and "R1" in text and "a cat and a cheetah" in text
    with pytest.raises(ConfigError, match="needs the field"):
        RANKING_QUESTION.render({"prompt": "x"})
    with pytest.raises(ConfigError, match="No judge prompt"):
        stages.load_prompt("ranking", "v9")


def test_every_stage_has_a_prompt_file():
    for question in PROTOCOL.questions().values():
        assert question.template().strip()
    assert set(PROTOCOL.prompt_versions()) == {*PROTOCOL.questions(), "repair"}


def test_portable_schema_drops_bounds_and_titles_only():
    schema = TYPICALITY_QUESTION.schema(ENTITIES)
    wire = stages.portable_schema(schema)
    text = str(wire)
    for keyword in ("title", "minimum", "maximum", "minItems", "maxItems"):
        assert f"'{keyword}'" not in text
    item = wire["properties"]["entities"]["items"]
    assert item["properties"]["name"]["enum"] == list(ENTITIES)
    assert item["additionalProperties"] is False and "typicality" in item["required"]
    assert "minimum" in str(schema)  # the request keeps the full schema for the parser
