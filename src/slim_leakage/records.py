"""Typed records that flow through a run, each one JSON line on disk.

``Sample -> Generation -> StageResult -> Verdict -> RunMetrics``. Every record is a frozen
dataclass with ``to_dict``/``from_dict`` and ``to_json``/``from_json`` that round-trip exactly;
unknown keys are errors (a record written by a newer version is not silently misread).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from ._config import WrongType, typed_value, value_kind
from .errors import DatasetError, did_you_mean

#: The five judge labels, best first (paper §6).
LABELS: tuple[str, ...] = (
    "mitigation-major",
    "mitigation-minor",
    "no-change",
    "degradation-minor",
    "degradation-major",
)
#: Ordinal codes used for agreement statistics: +2 (mitigation-major) ... -2 (degradation-major).
LABEL_CODES: dict[str, int] = dict(zip(LABELS, (2, 1, 0, -1, -2)))
CODE_LABELS: dict[int, str] = {code: label for label, code in LABEL_CODES.items()}

R = TypeVar("R", bound="Record")

#: The largest sample seed: torch generators take 64-bit seeds, Parquet stores signed ones.
MAX_SEED = 2**63 - 1


def check_label(label: str) -> str:
    """Return ``label`` if it is one of :data:`LABELS`, else raise naming the allowed ones."""
    if label not in LABEL_CODES:
        raise DatasetError(f"Unknown label {label!r}.", hint=f"Use one of: {', '.join(LABELS)}.")
    return label


def check_relative_path(path: str, *, what: str = "path") -> str:
    """Return ``path`` if it is relative and has no ``..`` part, else raise naming it.

    Run records name files relative to the run directory; an absolute path or one climbing
    out with ``..`` would let an edited record point a reader at any file on the machine.
    """
    parts = path.replace("\\", "/").split("/")
    if not path or path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path) or ".." in parts:
        raise DatasetError(
            f"{what} {path!r} is not a path inside the run directory.",
            hint="Record paths are relative to the run directory, without '..'; restore the "
            "file from the run, or run again into a new --out directory.",
        )
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; a missing figure is null
    return value


class Record:
    """Mixin giving frozen dataclasses an exact JSON round trip."""

    record_type: ClassVar[str] = "record"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict of every field."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def to_json(self) -> str:
        """One line of JSON (no newline), keys in field order."""
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        """Build the record from a dict: every field present, of its type (lists become tuples).

        Raises:
            DatasetError: Naming the unknown, missing or mistyped field; the record's values
                are not echoed (a prompt can be very long).
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise DatasetError(
                f"{cls.__name__} has no field(s) {', '.join(map(repr, unknown))}."
                f"{did_you_mean(unknown[0], fields)}",
                hint=f"Known fields: {', '.join(fields)}.",
            )
        missing = [
            name
            for name, f in fields.items()
            if name not in data
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise DatasetError(
                f"{cls.__name__} misses the field(s) {', '.join(map(repr, missing))}.",
                hint=f"Give every required field: {', '.join(n for n in fields if n in missing)}.",
            )
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, value in data.items():
            try:
                kwargs[name] = typed_value(value, hints[name])
            except WrongType as exc:
                raise DatasetError(
                    f"{cls.__name__} field {name!r} is {value_kind(value)}, but it takes {exc}.",
                    hint=f"Write {name!r} as {exc}.",
                ) from None
        return cls(**kwargs)

    @classmethod
    def from_json(cls: type[R], line: str) -> R:
        """Parse one JSON line written by :meth:`to_json`."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"Not a JSON {cls.__name__} line: {line[:120]!r} ({exc}).") from exc
        if not isinstance(data, dict):
            raise DatasetError(f"A {cls.__name__} line must be a JSON object, got {line[:120]!r}.")
        return cls.from_dict(data)


@dataclasses.dataclass(frozen=True)
class Sample(Record):
    """One SLIM sample: a prompt, its entities in prompt order, and the seed that leaks.

    Attributes:
        id: Stable id derived from the content.
        prompt: The full text prompt.
        entities: Entity names in prompt order; each occurs in ``prompt`` as a whole word.
        seed: The generation seed for this sample.
        kind: ``pair``, ``triplet`` or ``control``.
        subset: The SLIM subset (``simple``, ``interaction``, ``interaction-style``, ...).
        family: The look-alike family of the entities (``big-cats`` ...).
        template_id: The template the prompt was made from.
        config: The dataset config the sample belongs to.
        source: Where it comes from (``slim-builder``, ``official``, ...).
    """

    record_type: ClassVar[str] = "sample"

    id: str
    prompt: str
    entities: tuple[str, ...]
    seed: int
    kind: str = "pair"
    subset: str = ""
    family: str = ""
    template_id: str = ""
    config: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise DatasetError(
                f"A sample has the id {self.id!r}; an id must be a non-empty text.",
                hint="Give every sample its own id, such as 'pair-0001'.",
            )
        for name in ("prompt", "kind", "subset", "family", "template_id", "config", "source"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise DatasetError(
                    f"Sample {self.id!r}: {name} is {value_kind(value)}, not a text.",
                    hint=f"Write {name} as a JSON string.",
                )
        if not self.prompt.strip():
            raise DatasetError(
                f"Sample {self.id!r} has an empty prompt.", hint="Give every sample a prompt."
            )
        entities = self.entities
        if isinstance(entities, list):
            entities = tuple(entities)
            object.__setattr__(self, "entities", entities)
        if not isinstance(entities, tuple) or not all(isinstance(e, str) for e in entities):
            raise DatasetError(
                f"Sample {self.id!r}: entities are {value_kind(entities)}, not a list of texts.",
                hint='List the entities as JSON strings, e.g. "entities": ["cat", "lion"].',
            )
        if not entities or any(not e.strip() for e in entities):
            raise DatasetError(
                f"Sample {self.id!r} has missing or empty entities {entities!r}.",
                hint="List each entity of the prompt, in prompt order.",
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise DatasetError(
                f"Sample {self.id!r}: seed {self.seed!r} is {value_kind(self.seed)}, not an "
                "integer.",
                hint=f"Give seed as a whole number from 0 to {MAX_SEED}.",
            )
        if not 0 <= self.seed <= MAX_SEED:
            raise DatasetError(
                f"Sample {self.id!r}: seed {self.seed} is outside 0 ... {MAX_SEED}.",
                hint=f"Give seed as a whole number from 0 to {MAX_SEED} (a torch generator seed).",
            )


@dataclasses.dataclass(frozen=True)
class Generation(Record):
    """One generated image, with its content hash and cost.

    Attributes:
        sample_id: The sample it belongs to.
        role: ``vanilla``, ``method`` or ``reference`` (single-entity image for the judge).
        method: The method name (``vanilla`` for the baseline image).
        path: Image path relative to the run directory.
        sha256: SHA-256 of the PNG bytes.
        seed: The seed used.
        width: Image width in pixels.
        height: Image height in pixels.
        seconds: Wall-clock seconds per image (batch time divided by batch size).
        peak_memory_bytes: Peak accelerator memory during the batch, if measured.
        entity: For ``reference`` images, the entity drawn alone.
        extra: Method-specific facts (for DeLeaker, mask sizes; mask overlay paths).
    """

    record_type: ClassVar[str] = "generation"

    sample_id: str
    role: str
    method: str
    path: str
    sha256: str
    seed: int
    width: int
    height: int
    seconds: float = 0.0
    peak_memory_bytes: int | None = None
    entity: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # Records are read back from files a user may have edited: an image path must stay
        # inside the run directory, so no reader ever opens (or embeds) a file outside it.
        check_relative_path(self.path, what=f"Generation {self.sample_id!r} ({self.role}) path")


@dataclasses.dataclass(frozen=True)
class StageResult(Record):
    """The parsed answer of one judge stage for one sample.

    Attributes:
        sample_id: The sample judged.
        stage: ``extraction``, ``typicality`` or ``ranking``.
        version: The stage's prompt version (``v1``).
        key: The cache key of the request.
        output: The parsed, schema-valid answer (empty on error).
        order: For two-image stages, ``ab`` (vanilla first) or ``ba``.
        error: Why the stage failed after its repair retry, else ``None``.
        calls: Backend calls this stage made (0 when served from the cache).
        served_model: The model that answered, as the API named it (``modelVersion``, the
            answer's ``model``), when it said; several are joined by ``,``. ``None`` in records
            written before it was kept.
        input_tokens: Input tokens of the calls this stage made (reported, else estimated).
        output_tokens: Answer tokens of those calls, thinking excluded.
        thinking_tokens: Thinking tokens of those calls (billed as output).
        cost_usd: Their price from the judge's model table (0 when unpriced or cached).
    """

    record_type: ClassVar[str] = "stage"

    sample_id: str
    stage: str
    version: str
    key: str
    output: dict = dataclasses.field(default_factory=dict)
    order: str | None = None
    error: str | None = None
    calls: int = 0
    served_model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cost_usd: float = 0.0


@dataclasses.dataclass(frozen=True)
class Verdict(Record):
    """The judge's final label for one sample (method image vs vanilla image).

    Attributes:
        sample_id: The sample judged.
        method: The method whose image was compared against vanilla.
        label: One of :data:`LABELS`, or ``None`` when the judge failed (see ``error``).
        error: Why no label could be given, else ``None``.
        order_flip: The two presentation orders disagreed (the label is then ``no-change``).
        rationale: A short human-readable reason.
        judge: ``backend/model-id`` of the judge (the requested model).
        scores: Stage figures behind the label (typicality per entity and image).
        served_model: The model(s) that answered this sample's questions, as the API named
            them, joined by ``,`` when several did; ``None`` when no API said (or in records
            written before it was kept).
    """

    record_type: ClassVar[str] = "verdict"

    sample_id: str
    method: str
    label: str | None
    error: str | None = None
    order_flip: bool = False
    rationale: str = ""
    judge: str = ""
    scores: dict = dataclasses.field(default_factory=dict)
    served_model: str | None = None

    def __post_init__(self) -> None:
        if self.label is not None:
            check_label(self.label)
        if (self.label is None) == (self.error is None):
            raise DatasetError(
                f"Verdict for {self.sample_id!r} must have exactly one of label and error "
                f"(label={self.label!r}, error={self.error!r})."
            )

    @property
    def code(self) -> int | None:
        """The ordinal code of the label (+2 ... -2), or ``None`` on judge error."""
        return None if self.label is None else LABEL_CODES[self.label]


@dataclasses.dataclass(frozen=True)
class RunMetrics(Record):
    """The scores of a run (``metrics.json``).

    Attributes:
        method: The method evaluated.
        n_samples: Samples in the run.
        n_labelled: Samples with a label (``n_samples - judge_errors``).
        judge_errors: Samples the judge could not label.
        counts: Label -> number of samples.
        distribution: Label -> share of labelled samples (sums to 1).
        intervals: Label -> ``[low, high]`` bootstrap 95% interval of the share.
        order_flip_rate: Share of labelled samples whose two orders disagreed.
        per_subset: Subset -> ``{"n": .., "distribution": {...}}``.
        per_family: Family -> ``{"n": .., "distribution": {...}}``.
        lpips: Mean LPIPS of method vs vanilla image, if measured.
        kid: KID between method and vanilla images, if measured.
        kid_std: Standard deviation of the KID estimate.
        vqascore: Mean VQAScore of the method images, if measured.
        extra: Further figures (cost, mask sizes).
        leakage: The absolute leakage rates of the vanilla and method images and their paired
            difference (``slim_leakage.leakage.leakage_summary``), when the run checked them.
    """

    record_type: ClassVar[str] = "metrics"

    method: str
    n_samples: int
    n_labelled: int
    judge_errors: int
    counts: dict
    distribution: dict
    intervals: dict
    order_flip_rate: float | None = None
    per_subset: dict = dataclasses.field(default_factory=dict)
    per_family: dict = dataclasses.field(default_factory=dict)
    lpips: float | None = None
    kid: float | None = None
    kid_std: float | None = None
    vqascore: float | None = None
    extra: dict = dataclasses.field(default_factory=dict)
    leakage: dict | None = None

    @classmethod
    def unjudged(cls, method: str, n_samples: int) -> RunMetrics:
        """The metrics of a run without verdicts (judge ``none``): nothing labelled, no shares.

        Args:
            method: The method evaluated.
            n_samples: Samples in the run.
        """
        return cls(
            method=method,
            n_samples=n_samples,
            n_labelled=0,
            judge_errors=0,
            counts={},
            distribution={},
            intervals={},
        )

    def with_run_figures(
        self, image_figures: Mapping[str, Any], cost: Mapping[str, Any], *, judged: bool
    ) -> RunMetrics:
        """These metrics with what the run measured besides the labels.

        Args:
            image_figures: ``image_metrics.compute_image_metrics``'s result: a value (or
                ``None``) per image-metric field, and ``notes`` (metric -> why it is missing).
            cost: Role (``vanilla``, ``method``) -> ``seconds_per_image``, ``images_timed``,
                ``peak_memory_bytes``; and ``judge`` -> ``metrics.judge_usage``'s figures
                when the run was judged.
            judged: Whether the run has verdicts (a run with judge ``none`` has none).

        Returns:
            A copy with the image-metric fields set and ``extra`` extended by
            ``image_metrics_notes``, ``cost`` and ``judged`` (in that order).
        """
        figures = {k: v for k, v in image_figures.items() if k != "notes"}
        extra = {
            **self.extra,
            "image_metrics_notes": dict(image_figures.get("notes") or {}),
            "cost": dict(cost),
            "judged": judged,
        }
        return dataclasses.replace(self, **figures, extra=extra)

    @property
    def judged(self) -> bool:
        """Whether the run had verdicts (``extra["judged"]``)."""
        return bool(self.extra.get("judged"))

    @property
    def cost(self) -> dict[str, Any]:
        """Role -> seconds per image, images timed and peak memory; ``judge`` -> calls, tokens
        and cost of the judging (``extra["cost"]``)."""
        return dict(self.extra.get("cost") or {})

    @property
    def image_metrics_notes(self) -> dict[str, str]:
        """Image metric -> why it was not computed (``extra["image_metrics_notes"]``)."""
        return dict(self.extra.get("image_metrics_notes") or {})
