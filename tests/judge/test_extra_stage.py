"""A stage defined in this file, outside the package, runs through the runner unchanged.

The stage asks whether each entity can be found in each image; everything about it (prompt,
schema, parser, local answer, what it asks per image, what it adds to a verdict) is here. The
runner gives it the cache, retries, the repair round and its records; the local protocol
server answers it once it is in the server's pipeline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest

from slim_leakage.errors import ConfigError
from slim_leakage.judge import JUDGES, PROTOCOL, Judge, Pipeline
from slim_leakage.judge.stages import Ask, Asked, Question, Stage, Unit, sample_fields
from slim_leakage.judge.stages.schema import (
    entity_array,
    extract_json,
    object_schema,
    per_entity,
    validate,
)
from slim_leakage.judge.testing import Reply, ScriptedServer
from slim_leakage.records import StageResult

from .conftest import build_items

TEMPLATE = """The image was generated from this prompt: "$prompt".
For each of $entity_list, say whether it can be found in the image.
Answer with a JSON object only: {"entities": [{"name": "<entity>", "found": true}, ...]}"""


class FoundQuestion(Question):
    name = "found"
    version = "v1"

    def template(self) -> str:
        return TEMPLATE

    def schema(self, entities: Sequence[str]) -> dict:
        rows = entity_array(entities, {"found": {"type": "boolean"}}, ["found"])
        return object_schema(self.name, {"entities": rows})

    def parse(self, text: str, entities: Sequence[str]) -> dict:
        data = extract_json(text)
        validate(data, self.schema(entities))
        rows = per_entity(data, entities)
        return {"found": {e: rows[e]["found"] for e in entities}}

    def local_answer(self, asked: Asked) -> dict:
        # Deterministic in the image: the first entity is missing from images whose hash is odd.
        odd = int(asked.images[0][-1], 16) % 2 == 1
        return {
            "entities": [
                {"name": e, "found": not (odd and i == 0)} for i, e in enumerate(asked.entities)
            ]
        }


FOUND = FoundQuestion()


class Found(Stage):
    name: ClassVar[str] = "found"
    scope: ClassVar[str] = "image"
    questions: ClassVar[tuple[Question, ...]] = (FOUND,)

    def ask(self, unit: Unit, values: Mapping[str, Any]) -> list[Ask]:
        image = unit.image.with_label("Image")
        return [Ask(FOUND, sample_fields(unit.sample), (image,))]

    def conclude(self, unit, values, answers) -> tuple[dict, dict]:
        (answer,) = answers
        return answer["found"], {"image": unit.image.role, **answer}

    def scores(self, value: Mapping[str, dict]) -> dict:
        return {"found": {role: dict(found) for role, found in value.items()}}


EXTENDED = PROTOCOL.extended(Found())


def test_an_extra_stage_runs_through_the_runner(make_judge, fake_backend, items, tmp_path):
    fake_backend.pipeline = EXTENDED
    judge = Judge(fake_backend, pipeline=EXTENDED, cache_dir=str(tmp_path / "c"))
    records: list[StageResult] = []
    verdicts = judge.judge(items, on_stage=records.append, progress=False)
    plain = make_judge(cache=False).judge(items, progress=False)
    # The decision is the ranking's, as before; the new stage adds its figures and records.
    assert [v.label for v in verdicts] == [v.label for v in plain]
    assert fake_backend.count("found") == 2 * len(items)
    for item, verdict in zip(items, verdicts):
        found = verdict.scores["found"]
        assert set(found) == {"vanilla", "method"}
        ids = {"vanilla": item.vanilla_image, "method": item.method_image}
        for role, path in ids.items():
            odd = int(hashlib.sha256(path.read_bytes()).hexdigest()[-1], 16) % 2 == 1
            assert found[role] == {"cat": not odd, "cheetah": True}
        mine = [r for r in records if r.sample_id == item.sample.id and r.stage == "found"]
        assert sorted(r.output["image"] for r in mine) == ["method", "vanilla"]
        assert all(r.version == "v1" and r.error is None for r in mine)
    assert judge.describe()["prompt_versions"]["found"] == "v1"
    # Single-image checks stop at the checking stage, so they never ask the new question.
    judge.check_leakage([(items[0].sample, items[0].vanilla_image, {})])
    assert fake_backend.count("found") == 2 * len(items)


def test_the_runner_caches_and_repairs_an_extra_stage(fake_backend, items, tmp_path):
    fake_backend.pipeline = EXTENDED
    fake_backend.push("found", "the cat is there")
    judge = Judge(fake_backend, pipeline=EXTENDED, cache_dir=str(tmp_path / "c"))
    assert all(v.label for v in judge.judge(items[:1], progress=False))
    assert judge.stats.repairs == 1 and fake_backend.count("found+repair") == 1
    again = Judge(fake_backend, pipeline=EXTENDED, cache_dir=str(tmp_path / "c"))
    again.judge(items[:1], progress=False)
    assert again.stats.calls == 0 and again.stats.cache_hits == 8


def test_the_local_server_answers_an_extra_stage(tmp_path):
    backend_cls = JUDGES.get("openai-compatible")
    with ScriptedServer(pipeline=EXTENDED) as server:
        server.push(Reply.error(500, stage="found"))
        backend = backend_cls(base_url=server.openai_base_url)
        judge = Judge(backend, pipeline=EXTENDED, cache_dir=str(tmp_path / "c"), backoff_base=0)
        verdicts = judge.judge(build_items(tmp_path / "img", 2), progress=False)
        assert all(v.label and "found" in v.scores for v in verdicts), [v.error for v in verdicts]
        assert server.count(stage="found") == 2 * 2 + 1  # one 500, retried
        assert judge.stats.retries == 1
        sent = next(r for r in server.requests if r.stage == "found")
        assert len(sent.images) == 1 and "say whether it can be found" in sent.text


def test_pipelines_refuse_inconsistent_stages():
    with pytest.raises(ConfigError, match="two stages named 'found'"):
        EXTENDED.extended(Found())
    with pytest.raises(ConfigError, match="not one of its stages"):
        Pipeline(PROTOCOL.stages, decides="verdict", checks="typicality")
    with pytest.raises(ConfigError, match="compares two images"):
        Pipeline(PROTOCOL.stages, decides="ranking", checks="ranking")
