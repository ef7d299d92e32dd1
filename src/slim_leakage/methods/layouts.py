"""Layout files: one frozen region plan per SLIM sample, for the layout baselines.

A layout gives each entity of a sample a box on the image (fractions of width and height,
``[x0, y0, x1, y1]`` with the origin top left) and a sub-prompt. Layout baselines such as
``regional-prompting`` read them from a file instead of planning regions during the run, so
two runs of the same file draw the same regions.

``slim-eval dataset layouts`` writes the file with the deterministic ``split`` planner: side
by side for pairs, thirds for triplets (in general, equal vertical strips in prompt order),
each entity's sub-prompt being "a <entity>". A file planned some other way (by hand, or once by
a language model) is just as valid, as long as each line passes :func:`Layout.from_dict`; its
``planner`` field says where it came from.

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
            hint="Use planner 'split' (side by side for pairs, thirds for triplets), or write "
            "the layout file yourself.",
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
    parser.add_argument("--planner", default="split", choices=["split"], help="how to plan")


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
    samples = _load_samples(args)
    layouts = plan_layouts(samples, args.planner)
    write_layouts(args.out, layouts)
    print(f"wrote {len(layouts)} layouts ({SPLIT_PLANNER}) to {args.out}")
    return 0
