import json

import pytest

from slim_leakage.errors import DatasetError
from slim_leakage.records import (
    LABEL_CODES,
    LABELS,
    Generation,
    RunMetrics,
    Sample,
    StageResult,
    Verdict,
)

EXAMPLES = [
    Sample(
        id="p-1",
        prompt="A cow and a horse in a farm",
        entities=("cow", "horse"),
        seed=7,
        kind="pair",
        subset="simple",
        family="bovids-equids",
        template_id="simple-01",
        config="pairs",
    ),
    Generation(
        sample_id="p-1",
        role="method",
        method="deleaker",
        path="images/deleaker/p-1.png",
        sha256="ab" * 32,
        seed=7,
        width=512,
        height=512,
        seconds=1.5,
        peak_memory_bytes=123,
        extra={"mask_tokens": {"cow": 10, "horse": 12}},
    ),
    StageResult(
        sample_id="p-1",
        stage="ranking",
        version="v1",
        key="k",
        output={"better": "a"},
        order="ab",
        calls=1,
    ),
    Verdict(
        sample_id="p-1",
        method="deleaker",
        label="mitigation-minor",
        rationale="less spots",
        judge="gemini/gemini-2.5-flash",
        scores={"typicality": [[4, 2], [5, 5]]},
    ),
    Verdict(sample_id="p-2", method="deleaker", label=None, error="malformed answer twice"),
    RunMetrics(
        method="deleaker",
        n_samples=2,
        n_labelled=1,
        judge_errors=1,
        counts={label: 0 for label in LABELS},
        distribution={label: 0.0 for label in LABELS},
        intervals={label: [0.0, 0.0] for label in LABELS},
        order_flip_rate=0.0,
    ),
]


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: type(r).__name__)
def test_round_trip_through_one_json_line(record):
    line = record.to_json()
    assert "\n" not in line
    again = type(record).from_json(line)
    assert again == record
    assert json.loads(line) == record.to_dict()


def test_tuples_come_back_as_tuples():
    s = Sample.from_json(EXAMPLES[0].to_json())
    assert isinstance(s.entities, tuple)


def test_unknown_field_is_an_error():
    data = EXAMPLES[0].to_dict() | {"entites": ["x"]}
    with pytest.raises(DatasetError, match="entites"):
        Sample.from_dict(data)


def test_records_are_frozen():
    with pytest.raises(AttributeError):
        EXAMPLES[0].seed = 3  # type: ignore[misc]


def test_verdict_needs_exactly_one_of_label_and_error():
    with pytest.raises(DatasetError, match="exactly one"):
        Verdict(sample_id="x", method="m", label=None)
    with pytest.raises(DatasetError, match="exactly one"):
        Verdict(sample_id="x", method="m", label="no-change", error="boom")
    with pytest.raises(DatasetError, match="Unknown label 'better'"):
        Verdict(sample_id="x", method="m", label="better")


def test_label_codes_are_ordinal():
    assert [LABEL_CODES[label] for label in LABELS] == [2, 1, 0, -1, -2]
    assert Verdict(sample_id="x", method="m", label="degradation-major").code == -2


def test_sample_rejects_empty_prompt_and_entities():
    with pytest.raises(DatasetError, match="empty prompt"):
        Sample(id="x", prompt="  ", entities=("a",), seed=0)
    with pytest.raises(DatasetError, match="entities"):
        Sample(id="x", prompt="a b", entities=(), seed=0)


def test_nan_is_written_as_null():
    m = RunMetrics(
        method="m",
        n_samples=0,
        n_labelled=0,
        judge_errors=0,
        counts={},
        distribution={},
        intervals={},
        lpips=float("nan"),
    )
    assert json.loads(m.to_json())["lpips"] is None


GOOD = {"id": "s1", "prompt": "a cat and a lion", "entities": ["cat", "lion"], "seed": 1}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"seed": "1"}, "field 'seed' is a text, but it takes an integer"),
        ({"seed": 1.5}, "field 'seed' is a number with a fraction, but it takes an integer"),
        ({"seed": True}, "field 'seed' is a boolean, but it takes an integer"),
        ({"seed": -1}, "seed -1 is outside 0 ... 9223372036854775807"),
        ({"seed": 2**64}, f"seed {2**64} is outside 0"),
        ({"id": ""}, "the id ''; an id must be a non-empty text"),
        ({"id": 7}, "field 'id' is an integer, but it takes a text"),
        ({"entities": "cat and lion"}, "field 'entities' is a text, but it takes a list of texts"),
        ({"entities": ["cat", 2]}, "(item 2 is an integer)"),
        ({"prompt": 5}, "field 'prompt' is an integer, but it takes a text"),
    ],
)
def test_sample_fields_of_the_wrong_type_are_refused(change, named):
    with pytest.raises(DatasetError) as info:
        Sample.from_dict({**GOOD, **change})
    assert named in info.value.message


def test_missing_fields_are_named_without_echoing_the_record():
    prompt = "a cat and a lion " * 10_000
    with pytest.raises(DatasetError) as info:
        Sample.from_dict({"id": "s1", "prompt": prompt})
    assert info.value.message == "Sample misses the field(s) 'entities', 'seed'."
    with pytest.raises(DatasetError, match="Did you mean 'seed'"):
        Sample.from_dict({**GOOD, "sed": 1})


def test_sample_built_in_code_checks_its_fields_too():
    with pytest.raises(DatasetError, match="seed"):
        Sample(id="x", prompt="a b", entities=("a",), seed=2.0)  # type: ignore[arg-type]
    assert Sample(id="x", prompt="a b", entities=["a"], seed=0).entities == ("a",)  # type: ignore[arg-type]
