"""Layout files: one frozen region plan per SLIM sample, for the layout baselines.

A layout gives each entity of a sample a box on the image (fractions of width and height,
``[x0, y0, x1, y1]`` with the origin top left) and a sub-prompt. Layout baselines such as
``regional-prompting`` read them from a file instead of planning regions during the run, so
two runs of the same file draw the same regions.

``slim-eval dataset layouts`` writes the file with the deterministic ``split`` planner: side
by side for pairs, thirds for triplets (in general, equal vertical strips in prompt order),
each entity's sub-prompt being "a <entity>". With ``--planner llm --judge NAME`` a judge
backend plans each sample once (:func:`plan_layouts_with_backend`) and the answers are frozen
in the file. A file planned any other way (by hand) is just as valid, as long as each line
passes :func:`Layout.from_dict`; its ``planner`` field says where it came from.

File format: JSON lines, one :class:`Layout` per line.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DatasetError
from ..records import Sample

#: The name and version of the deterministic planner.
SPLIT_PLANNER = "split-v1"

_VOWEL_SOUND = tuple("aeiou")


def indefinite(entity: str) -> str:
    """``"cow"`` -> ``"a cow"``, ``"owl"`` -> ``"an owl"`` (by first letter)."""
    article = "an" if entity[:1].lower() in _VOWEL_SOUND else "a"
    return f"{article} {entity}"


@dataclasses.dataclass(frozen=True)
class Layout:
    """The regions of one sample.

    Attributes:
        sample_id: The sample this layout belongs to.
        entities: The sample's entities, in prompt order.
        boxes: One ``(x0, y0, x1, y1)`` per entity, fractions of the image in ``[0, 1]``.
        prompts: One sub-prompt per entity.
        planner: Who planned it (``split-v1``, ``manual``, ``llm:<model id>``).
    """

    sample_id: str
    entities: tuple[str, ...]
    boxes: tuple[tuple[float, float, float, float], ...]
    prompts: tuple[str, ...]
    planner: str = SPLIT_PLANNER

    def __post_init__(self) -> None:
        n = len(self.entities)
        if n == 0:
            raise DatasetError(f"Layout of sample {self.sample_id!r} has no entities.")
        if len(self.boxes) != n or len(self.prompts) != n:
            raise DatasetError(
                f"Layout of sample {self.sample_id!r} has {n} entities but "
                f"{len(self.boxes)} boxes and {len(self.prompts)} prompts.",
                hint="Give exactly one box and one sub-prompt per entity.",
            )
        for entity, box, prompt in zip(self.entities, self.boxes, self.prompts):
            bad = len(box) != 4 or not all(
                isinstance(v, (int, float)) and math.isfinite(v) for v in box
            )
            if not bad:
                x0, y0, x1, y1 = box
                bad = not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1)
            if bad:
                raise DatasetError(
                    f"Layout of sample {self.sample_id!r}: box {list(box)!r} of {entity!r} is "
                    "not [x0, y0, x1, y1] with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1.",
                    hint="Boxes are fractions of the image width and height, origin top left.",
                )
            if not str(prompt).strip():
                raise DatasetError(
                    f"Layout of sample {self.sample_id!r}: the sub-prompt of {entity!r} is empty."
                )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        return {
            "sample_id": self.sample_id,
            "entities": list(self.entities),
            "boxes": [list(b) for b in self.boxes],
            "prompts": list(self.prompts),
            "planner": self.planner,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layout:
        """Build from a dict written by :meth:`to_dict` (unknown keys are errors)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        missing = sorted({"sample_id", "entities", "boxes", "prompts"} - set(data))
        if unknown or missing:
            raise DatasetError(
                f"Bad layout record {dict(data)!r}: "
                + (f"unknown keys {unknown}" if unknown else f"missing keys {missing}")
                + ".",
                hint=f"A layout has the keys {', '.join(sorted(fields))}.",
            )
        try:
            return cls(
                sample_id=str(data["sample_id"]),
                entities=tuple(str(e) for e in data["entities"]),
                boxes=tuple(tuple(b) for b in data["boxes"]),
                prompts=tuple(str(p) for p in data["prompts"]),
                planner=str(data.get("planner", "")),
            )
        except TypeError as exc:
            raise DatasetError(f"Bad layout record {dict(data)!r}: {exc}.") from exc

    def check_sample(self, sample: Sample) -> None:
        """Raise if this layout was planned for other entities than ``sample``'s."""
        if tuple(self.entities) != tuple(sample.entities):
            raise DatasetError(
                f"Layout of sample {sample.id!r} lists entities {list(self.entities)} but the "
                f"sample has {list(sample.entities)}.",
                hint="Regenerate the layout file for this dataset (slim-eval dataset layouts).",
            )


def split_layout(sample: Sample) -> Layout:
    """The deterministic layout: equal vertical strips, entities left to right in prompt order.

    Pairs get halves, triplets thirds.
    """
    n = len(sample.entities)
    boxes = tuple((i / n, 0.0, (i + 1) / n, 1.0) for i in range(n))
    return Layout(
        sample_id=sample.id,
        entities=tuple(sample.entities),
        boxes=boxes,
        prompts=tuple(indefinite(e) for e in sample.entities),
        planner=SPLIT_PLANNER,
    )


def plan_layouts(samples: Iterable[Sample], planner: str = "split") -> list[Layout]:
    """Plan one layout per sample.

    Args:
        samples: The samples, in order.
        planner: ``split`` (the only built-in planner).

    Raises:
        ConfigError: For an unknown planner.
    """
    if planner != "split":
        raise ConfigError(
            f"Unknown layout planner {planner!r}.",
            hint="Use planner 'split' (side by side for pairs, thirds for triplets), "
            "plan_layouts_with_backend() for a language model, or write the file yourself.",
        )
    return [split_layout(s) for s in samples]


def write_layouts(path: str | Path, layouts: Sequence[Layout]) -> None:
    """Write ``layouts`` as JSON lines, atomically (sorted keys: the same plan, the same bytes)."""
    from .._io import atomic_write_text

    seen: set[str] = set()
    for layout in layouts:
        if layout.sample_id in seen:
            raise DatasetError(f"Two layouts for sample {layout.sample_id!r}.")
        seen.add(layout.sample_id)
    text = "".join(json.dumps(lay.to_dict(), sort_keys=True) + "\n" for lay in layouts)
    atomic_write_text(path, text)


def read_layouts(path: str | Path) -> dict[str, Layout]:
    """Read a layout file into ``{sample_id: Layout}``.

    Raises:
        ConfigError: If the file does not exist.
        DatasetError: For a malformed line (with its number) or a repeated sample id.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"Layout file {str(path)!r} does not exist.",
            hint="Write one with `slim-eval dataset layouts --out FILE`, then pass layouts=FILE.",
        )
    out: dict[str, Layout] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number} is not valid JSON ({exc}).") from exc
        if not isinstance(data, dict):
            raise DatasetError(f"{path}:{number} is not a JSON object.")
        try:
            layout = Layout.from_dict(data)
        except DatasetError as exc:
            raise DatasetError(f"{path}:{number}: {exc.message}", hint=exc.hint) from exc
        if layout.sample_id in out:
            raise DatasetError(f"{path}:{number}: a second layout for {layout.sample_id!r}.")
        out[layout.sample_id] = layout
    return out


# -- command line (`slim-eval dataset layouts`) -------------------------------------------------


def add_arguments(parser) -> None:
    """Add the options of ``slim-eval dataset layouts`` to ``parser``."""
    parser.add_argument("--out", required=True, help="layout file to write (JSON lines)")
    parser.add_argument(
        "--samples",
        help="a samples.jsonl of Sample records (for example a run's); default: the SLIM config",
    )
    parser.add_argument("--config", default="pairs", help="SLIM config (pairs, triplets, ...)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N samples")
    parser.add_argument(
        "--planner",
        default="split",
        choices=["split", "llm"],
        help="split: halves/thirds (deterministic); llm: asked once of --judge, then frozen",
    )
    parser.add_argument("--judge", help="judge backend that plans with --planner llm (gemini ...)")
    parser.add_argument(
        "--judge-arg",
        action="append",
        default=[],
        metavar="K=V",
        help="backend option, repeatable (model=..., base_url=...)",
    )


def _load_samples(args) -> list[Sample]:
    if args.samples:
        from .._io import iter_jsonl

        path = Path(args.samples)
        if not path.is_file():
            raise ConfigError(f"Samples file {str(path)!r} does not exist.")
        samples = [Sample.from_dict(d) for d in iter_jsonl(path)]
    else:
        from ..slim import load_samples

        samples = load_samples(args.config)
    if args.limit is not None:
        samples = samples[: args.limit]
    return samples


def run(args) -> int:
    """Handler of ``slim-eval dataset layouts``: plan and write the layout file."""
    if args.planner == "llm":
        if not args.judge:
            raise ConfigError(
                "--planner llm needs --judge (the backend that plans the layouts).",
                hint="For example --judge gemini --judge-arg model=gemini-3.6-flash.",
            )
        from .._config import parse_kv
        from ..judge import JUDGES

        backend = JUDGES.get(args.judge)(**parse_kv(args.judge_arg, option="--judge-arg"))
        samples = _load_samples(args)
        layouts = plan_layouts_with_backend(samples, backend)
    else:
        samples = _load_samples(args)
        layouts = plan_layouts(samples, args.planner)
    write_layouts(args.out, layouts)
    planner = layouts[0].planner if layouts else args.planner
    print(f"wrote {len(layouts)} layouts ({planner}) to {args.out}")
    return 0


# -- planning once with a language model ------------------------------------------------------

#: Version of the layout-planning question (recorded in each layout's ``planner``).
LLM_PLANNER_VERSION = "v1"

_LAYOUT_QUESTION = """You plan the layout of an image before it is drawn.
The image is described by: "{prompt}".
It shows these entities, each exactly once: {entities}.
Give each entity its own region of the image as a box [x0, y0, x1, y1] in fractions of the
image width and height (origin top left, 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1), placed so the
scene reads naturally, and a short sub-prompt describing that entity alone (it must contain the
entity's name). Boxes may touch but should not overlap much.
Answer with JSON: {{"regions": [{{"entity": "...", "box": [x0, y0, x1, y1], "prompt": "..."}}]}},
one region per entity, in the order given."""

_LAYOUT_SCHEMA = {
    "title": "layout-plan",
    "type": "object",
    "properties": {
        "regions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "entity": {"type": "string"},
                    "box": {"type": "array", "items": {"type": "number"}},
                    "prompt": {"type": "string"},
                },
                "required": ["entity", "box", "prompt"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["regions"],
    "additionalProperties": False,
}


def ask_backend_json(backend, stage: str, questions: Sequence[tuple[str, dict]], schema: dict):
    """Ask a judge backend one JSON question per item and parse the answers.

    Args:
        backend: A :class:`~slim_leakage.judge.backends.base.Backend`.
        stage: The question's name (sent as the schema title and request stage).
        questions: ``(text, context)`` per question.
        schema: The JSON schema of an answer.

    Returns:
        One parsed JSON object per question.

    Raises:
        JudgeError: If the backend fails or an answer is not a JSON object.
    """
    import asyncio

    from ..errors import JudgeError
    from ..judge.backends.base import BackendRequest, Decoding

    requests = [
        BackendRequest(
            stage=stage,
            version=LLM_PLANNER_VERSION,
            text=text,
            images=(),
            schema=schema,
            decoding=Decoding(temperature=0.0),
            context=context,
        )
        for text, context in questions
    ]

    async def _run():
        try:
            return await backend.complete(requests)
        finally:
            await backend.aclose()

    responses = asyncio.run(_run())
    if len(responses) != len(requests):
        raise JudgeError(
            f"The backend answered {len(responses)} of {len(requests)} {stage} questions."
        )
    answers = []
    for (_, context), response in zip(questions, responses):
        try:
            data = json.loads(response.text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise JudgeError(
                f"The {stage} answer for {context} is not JSON: {str(response.text)[:120]!r}.",
                hint="Try again, or use a model that follows JSON schemas.",
            ) from exc
        if not isinstance(data, dict):
            raise JudgeError(f"The {stage} answer for {context} is not a JSON object.")
        answers.append(data)
    return answers


def plan_layouts_with_backend(samples: Sequence[Sample], backend) -> list[Layout]:
    """Plan each sample's layout once with a language model; freeze the result with
    :func:`write_layouts`.

    Each layout's ``planner`` is ``llm-v1:<backend>/<model>``. An answer that does not give
    exactly one valid box and sub-prompt per entity is an error naming the sample.
    """
    from ..errors import JudgeError

    questions = [
        (
            _LAYOUT_QUESTION.format(
                prompt=s.prompt, entities=", ".join(f'"{e}"' for e in s.entities)
            ),
            {"sample_id": s.id, "prompt": s.prompt, "entities": list(s.entities)},
        )
        for s in samples
    ]
    answers = ask_backend_json(backend, "layout-plan", questions, _LAYOUT_SCHEMA)
    planner = f"llm-{LLM_PLANNER_VERSION}:{backend.name}/{backend.model}"
    layouts = []
    for sample, answer in zip(samples, answers):
        regions = answer.get("regions")
        by_entity = {}
        for region in regions if isinstance(regions, list) else []:
            if isinstance(region, dict) and isinstance(region.get("entity"), str):
                by_entity.setdefault(region["entity"].strip().lower(), region)
        missing = [e for e in sample.entities if e.lower() not in by_entity]
        if missing:
            raise JudgeError(
                f"The planned layout of sample {sample.id!r} has no region for "
                f"{', '.join(map(repr, missing))}.",
                hint="Plan again, or write that sample's layout by hand.",
            )
        chosen = [by_entity[e.lower()] for e in sample.entities]
        try:
            layout = Layout(
                sample_id=sample.id,
                entities=tuple(sample.entities),
                boxes=tuple(tuple(r.get("box") or ()) for r in chosen),
                prompts=tuple(str(r.get("prompt", "")) for r in chosen),
                planner=planner,
            )
        except DatasetError as exc:
            raise JudgeError(f"Planned layout rejected: {exc.message}", hint=exc.hint) from exc
        layouts.append(layout)
    return layouts
