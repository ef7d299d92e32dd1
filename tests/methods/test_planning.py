"""Planning once with a language model: layouts and entity descriptions, frozen in files."""

from __future__ import annotations

import json

import pytest

from slim_leakage.errors import JudgeError
from slim_leakage.judge import JUDGES
from slim_leakage.judge.backends.base import Backend, BackendResponse
from slim_leakage.methods import get_method
from slim_leakage.methods import layouts as L
from slim_leakage.methods.prompts import describe_with_backend, freeze_descriptions
from slim_leakage.records import Sample

PAIR = Sample(id="p1", prompt="a cow and a horse in a field", entities=("cow", "horse"), seed=1)
TRIPLET = Sample(id="t1", prompt="a cat, a dog and a fox", entities=("cat", "dog", "fox"), seed=2)


class Scripted(Backend):
    """Answers each request with ``answer(request)``; records what it was asked."""

    name = "scripted"
    default_model = "scripted-1"

    def __init__(self, answer, **kwargs):
        super().__init__(**kwargs)
        self.answer = answer
        self.requests = []
        self.closed = False

    async def complete(self, requests):
        self.requests.extend(requests)
        return [BackendResponse(text=self.answer(r)) for r in requests]

    async def aclose(self):
        self.closed = True


def _planner_answer(request):
    entities = request.context["entities"]
    n = len(entities)
    # deliberately out of order and with upper case: matched by name, not position
    regions = [
        {"entity": e.upper(), "box": [i / n, 0.1, (i + 1) / n, 0.9], "prompt": f"a fluffy {e}"}
        for i, e in enumerate(entities)
    ]
    return json.dumps({"regions": regions[::-1]})


def test_llm_layouts_are_validated_and_frozen_with_the_model_id(tmp_path):
    backend = Scripted(_planner_answer)
    layouts = L.plan_layouts_with_backend([PAIR, TRIPLET], backend)
    assert backend.closed and [r.stage for r in backend.requests] == ["layout-plan"] * 2
    assert '"a cow and a horse in a field"' in backend.requests[0].text
    assert layouts[1].entities == ("cat", "dog", "fox")
    assert layouts[1].prompts == ("a fluffy cat", "a fluffy dog", "a fluffy fox")
    assert layouts[0].boxes == ((0.0, 0.1, 0.5, 0.9), (0.5, 0.1, 1.0, 0.9))
    assert layouts[0].planner == "llm-v1:scripted/scripted-1"
    path = tmp_path / "l.jsonl"
    L.write_layouts(path, layouts)
    assert L.read_layouts(path)["t1"] == layouts[1]


@pytest.mark.parametrize(
    "answer, match",
    [
        ("not json", "not JSON"),
        ('{"regions": [{"entity": "cow", "box": [0, 0, 1, 1], "prompt": "a cow"}]}', "'horse'"),
        (
            '{"regions": [{"entity": "cow", "box": [0, 0, 2, 1], "prompt": "a cow"},'
            ' {"entity": "horse", "box": [0, 0, 1, 1], "prompt": "a horse"}]}',
            "rejected",
        ),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_bad_planned_layouts_are_errors_naming_the_sample(answer, match):
    with pytest.raises(JudgeError, match=match):
        L.plan_layouts_with_backend([PAIR], Scripted(lambda r: answer))


def test_layouts_command_plans_with_a_registered_backend(cli, tmp_path):
    samples = tmp_path / "samples.jsonl"
    samples.write_text(PAIR.to_json() + "\n")
    out = tmp_path / "llm.jsonl"

    class Registered(Scripted):
        name = "scripted-planner"

        def __init__(self, **kwargs):
            super().__init__(_planner_answer, **kwargs)

    JUDGES.register("scripted-planner", Registered)
    try:
        code, stdout, _ = cli(
            "dataset", "layouts", "--samples", str(samples), "--out", str(out),
            "--planner", "llm", "--judge", "scripted-planner", "--judge-arg", "model=m-7",
        )  # fmt: skip
        assert code == 0, stdout
        assert L.read_layouts(out)["p1"].planner == "llm-v1:scripted-planner/m-7"
        code, _, err = cli(
            "dataset", "layouts", "--samples", str(samples), "--out", str(out), "--planner", "llm"
        )
        assert code == 2 and "--judge" in err
    finally:
        JUDGES.unregister("scripted-planner")


def test_descriptions_are_asked_once_per_entity_and_frozen(tmp_path):
    backend = Scripted(
        lambda r: json.dumps({"description": f"  a {r.context['entity']}  with\nspots "})
    )
    table = describe_with_backend(["Cow", "horse", "cow"], backend)
    assert table == {"cow": "a cow with spots", "horse": "a horse with spots"}
    assert len(backend.requests) == 2
    path = tmp_path / "d.json"
    freeze_descriptions(path, ["cow", "horse"], Scripted(lambda r: '{"description": "x y"}'))
    assert json.loads(path.read_text())["model"] == "scripted/scripted-1"
    method = get_method("entity-description", descriptions=str(path))
    assert method.rewrite(PAIR).endswith("The cow is x y. The horse is x y.")
    with pytest.raises(JudgeError, match="no description of 'cow'"):
        describe_with_backend(["cow"], Scripted(lambda r: '{"description": " "}'))
