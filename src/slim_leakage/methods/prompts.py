"""Prompt baselines: change only the text, generate with the stock backbone.

* ``instruction-prompt``: the prompt plus a fixed instruction to keep each entity's features
  distinct (the paper's "Instruction Prompt"; its wording is not published, ours is
  :data:`DEFAULT_INSTRUCTION`).
* ``entity-description``: the prompt plus each entity's canonical description (the paper's
  "Entity Description Prompt"). Descriptions come from the SLIM taxonomy, or from a frozen JSON
  file (for example written once by a language model, with its model id), so runs are
  reproducible.

The original prompt is always kept verbatim at the start, so entity words still occur in the
augmented prompt and attention methods (``deleaker+description``) find the same entities.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .._config import check_range
from ..errors import ConfigError, EntityNotFoundError
from ..records import Sample
from .base import Method, MethodOutput
from .deleaker.config import DeLeakerConfig
from .deleaker.method import DeLeaker

#: The instruction appended by ``instruction-prompt``; ``{entities}`` becomes "the cow and the
#: horse". Fixed and versioned: change it only together with :data:`INSTRUCTION_VERSION`.
DEFAULT_INSTRUCTION = (
    "Draw {entities} as clearly separate individuals: each one looks exactly like a typical "
    "{each}, with only its own features, and no body part, marking, colour or texture of one "
    "appears on another."
)
INSTRUCTION_VERSION = "v1"

#: How one entity's description is written after the prompt.
DEFAULT_ENTITY_TEMPLATE = "The {entity} is {description}."

_END = re.compile(r"[.!?]\s*$")


def join_entities(entities: Sequence[str], *, article: str = "the") -> str:
    """``["cow", "horse", "fox"]`` -> ``"the cow, the horse and the fox"``."""
    parts = [f"{article} {e}".strip() for e in entities]
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def append_sentence(prompt: str, sentence: str) -> str:
    """Append ``sentence`` after ``prompt``, closing the prompt with a full stop if needed."""
    base = prompt.rstrip()
    if not _END.search(base):
        base += "."
    return f"{base} {sentence.strip()}"


def augmented_samples(
    samples: Sequence[Sample], make: Callable[[Sample], str], *, check_entities: bool = False
) -> list[Sample]:
    """Copies of ``samples`` whose prompt is ``make(sample)`` (ids, entities, seeds kept).

    Args:
        samples: The samples.
        make: Builds the new prompt of a sample.
        check_entities: Require every entity to occur as a word in the new prompt (for
            methods that locate entity tokens).

    Raises:
        EntityNotFoundError: If ``check_entities`` and an entity does not occur.
    """
    out = []
    for sample in samples:
        prompt = make(sample)
        low = prompt.lower()
        for entity in sample.entities if check_entities else ():
            if not re.search(rf"(?<![\w]){re.escape(entity.lower())}(?![\w])", low):
                raise EntityNotFoundError(
                    f"Sample {sample.id!r}: entity {entity!r} does not occur in the augmented "
                    f"prompt {prompt!r}.",
                    hint="Keep the original prompt at the start of the augmented one.",
                )
        out.append(dataclasses.replace(sample, prompt=prompt))
    return out


class _PromptBaseline(Method):
    """Shared generate(): rewrite each prompt, then generate with the stock backbone."""

    needs = ("entities",)

    def rewrite(self, sample: Sample) -> str:  # pragma: no cover - abstract
        """The prompt to generate from."""
        raise NotImplementedError

    def prepare(self, backbone, samples: Sequence[Sample]) -> None:
        """Check the backbone and build every prompt before any image is generated."""
        super().prepare(backbone, samples)
        augmented_samples(samples, self.rewrite)

    def generate(self, backbone, samples: Sequence[Sample]) -> list[MethodOutput]:
        """Generate one image per sample from its rewritten prompt and its own seed."""
        new = augmented_samples(samples, self.rewrite)
        images = backbone.generate([s.prompt for s in new], [s.seed for s in new])
        return [MethodOutput(image=img, extra={"prompt": s.prompt}) for img, s in zip(images, new)]


@dataclasses.dataclass(frozen=True)
class InstructionConfig:
    """Options of ``instruction-prompt``.

    Attributes:
        instruction: The sentence added to the prompt; ``{entities}`` is replaced by
            "the cow and the horse" and ``{each}`` by "cow or horse".
        position: ``suffix`` (after the prompt) or ``prefix`` (before it).
    """

    instruction: str = DEFAULT_INSTRUCTION
    position: str = "suffix"

    def __post_init__(self) -> None:
        if not self.instruction.strip():
            raise ConfigError(
                "instruction-prompt: instruction is empty.",
                hint="Give a sentence, or leave the option out for the default.",
            )
        if self.position not in ("suffix", "prefix"):
            raise ConfigError(
                f"instruction-prompt: position={self.position!r} is not allowed.",
                hint="Use position=suffix or position=prefix.",
            )
        try:
            self.instruction.format(entities="x", each="y")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"instruction-prompt: instruction {self.instruction!r} has a bad placeholder "
                f"({exc}).",
                hint="Only {entities} and {each} may appear in braces.",
            ) from None


class InstructionPrompt(_PromptBaseline):
    """The prompt plus a fixed instruction to keep each entity's features distinct.

    Needs the sample's entities (to name them in the instruction); runs on any backbone.
    Source: the paper's "Instruction Prompt" baseline (§9 of the method notes); the exact
    wording used there is not published, so ours is fixed in :data:`DEFAULT_INSTRUCTION`.
    """

    name = "instruction-prompt"
    Config = InstructionConfig
    description = "prompt + a fixed instruction to keep each entity's features distinct"

    def instruction_for(self, sample: Sample) -> str:
        """The instruction sentence for ``sample``'s entities."""
        return self.config.instruction.format(
            entities=join_entities(sample.entities),
            each=" or ".join(sample.entities),
        )

    def rewrite(self, sample: Sample) -> str:
        """The sample's prompt with the instruction before or after it."""
        sentence = self.instruction_for(sample)
        if self.config.position == "prefix":
            return append_sentence(sentence, sample.prompt)
        return append_sentence(sample.prompt, sentence)


# -- entity descriptions ----------------------------------------------------------------------


def read_descriptions(path: str | Path) -> dict:
    """Read a frozen descriptions file.

    The file is JSON: ``{"model": "<who wrote them>", "descriptions": {"cow": "...", ...}}``.

    Raises:
        ConfigError: If the file is missing or malformed (naming what is wrong).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"Descriptions file {str(path)!r} does not exist.",
            hint="Pass descriptions=/path/to/descriptions.json, or leave it empty to use the "
            "SLIM taxonomy.",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Descriptions file {str(path)!r} is not valid JSON ({exc}).") from exc
    table = data.get("descriptions") if isinstance(data, Mapping) else None
    if not isinstance(table, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in table.items()
    ):
        raise ConfigError(
            f"Descriptions file {str(path)!r} must hold an object "
            '{"model": "...", "descriptions": {"entity": "non-empty text", ...}}.',
            hint="Write one non-empty description string per entity.",
        )
    return {
        "model": str(data.get("model", "")),
        "descriptions": {k.lower(): v.strip() for k, v in table.items()},
    }


def write_descriptions(path: str | Path, descriptions: Mapping[str, str], *, model: str) -> None:
    """Freeze ``descriptions`` (entity -> text) in a file, with who wrote them."""
    from .._io import atomic_write_json

    atomic_write_json(
        path,
        {"model": model, "descriptions": {k: descriptions[k] for k in sorted(descriptions)}},
    )


_DESCRIBE_QUESTION = """Describe what a typical {entity} looks like, in one sentence of at most
{max_words} words, naming the visual features that tell it apart from similar-looking animals,
fruits or objects (shape, markings, colours, textures, body parts). Describe only the {entity}.
Answer with JSON: {{"description": "..."}}"""

_DESCRIBE_SCHEMA = {
    "title": "entity-description",
    "type": "object",
    "properties": {"description": {"type": "string"}},
    "required": ["description"],
    "additionalProperties": False,
}


def describe_with_backend(
    entities: Sequence[str], backend, *, max_words: int = 30
) -> dict[str, str]:
    """Ask a judge backend once for each entity's description (then freeze them with
    :func:`freeze_descriptions` or :func:`write_descriptions`).

    Args:
        entities: Entity names (duplicates are asked once).
        backend: A :class:`~slim_leakage.judge.backends.base.Backend`.
        max_words: Asked length of each description.

    Raises:
        JudgeError: If an answer has no non-empty ``description``.
    """
    from ..errors import JudgeError
    from .layouts import ask_backend_json

    unique = list(dict.fromkeys(e.lower() for e in entities))
    questions = [
        (_DESCRIBE_QUESTION.format(entity=e, max_words=max_words), {"entity": e}) for e in unique
    ]
    answers = ask_backend_json(backend, "entity-description", questions, _DESCRIBE_SCHEMA)
    out = {}
    for entity, answer in zip(unique, answers):
        text = answer.get("description")
        if not isinstance(text, str) or not text.strip():
            raise JudgeError(
                f"The backend gave no description of {entity!r}: {answer!r}.",
                hint="Ask again, or write that entity's description in the file by hand.",
            )
        out[entity] = " ".join(text.split())
    return out


def freeze_descriptions(path: str | Path, entities: Sequence[str], backend) -> dict[str, str]:
    """Describe ``entities`` with ``backend`` and write the frozen file with its model id.

    Returns:
        The descriptions written.
    """
    table = describe_with_backend(entities, backend)
    write_descriptions(path, table, model=f"{backend.name}/{backend.model}")
    return table


def taxonomy_description(entity: str) -> str:
    """The canonical description of ``entity`` from the SLIM taxonomy.

    Raises:
        EntityNotFoundError: If the taxonomy has no description for it.
    """
    try:
        from ..slim.taxonomy import entity_description
    except ImportError as exc:
        raise ConfigError(
            f"The SLIM taxonomy is not available ({exc}), so {entity!r} has no description.",
            hint="Pass descriptions=/path/to/descriptions.json.",
        ) from exc
    try:
        text = entity_description(entity)
    except (KeyError, LookupError) as exc:
        raise EntityNotFoundError(
            f"The SLIM taxonomy has no description of {entity!r}.",
            hint="Pass descriptions=/path/to/descriptions.json with an entry for it.",
        ) from exc
    if not text or not str(text).strip():
        raise EntityNotFoundError(
            f"The SLIM taxonomy's description of {entity!r} is empty.",
            hint="Pass descriptions=/path/to/descriptions.json with an entry for it.",
        )
    return str(text).strip()


def check_description_options(owner: str, template: str, max_words: int) -> None:
    """Validate the description options shared by the description methods."""
    check_range(owner, "max_words", max_words, low=0)
    try:
        template.format(entity="x", description="y")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"{owner}: template {template!r} has a bad placeholder ({exc}).",
            hint="Only {entity} and {description} may appear in braces.",
        ) from None
    if "{description}" not in template:
        raise ConfigError(
            f"{owner}: template {template!r} lacks {{description}}.",
            hint="Include {description} in the template.",
        )


@dataclasses.dataclass(frozen=True)
class DescriptionConfig:
    """Options of ``entity-description``.

    Attributes:
        descriptions: A frozen descriptions JSON file; empty means the SLIM taxonomy.
        template: How each entity's description is written; ``{entity}`` and
            ``{description}`` are filled in.
        max_words: Descriptions longer than this many words are cut (0: no limit), so long
            descriptions cannot push the prompt past the text encoder's length.
    """

    descriptions: str = ""
    template: str = DEFAULT_ENTITY_TEMPLATE
    max_words: int = 0

    def __post_init__(self) -> None:
        check_description_options("entity-description", self.template, self.max_words)


class DescriptionMixin:
    """Rewrites a prompt by appending each entity's description (shared with DeLeaker)."""

    config: DescriptionConfig
    _table: dict | None = None

    def _descriptions(self) -> dict | None:
        if not self.config.descriptions:
            return None
        if self._table is None:
            self._table = read_descriptions(self.config.descriptions)
        return self._table

    def description_of(self, entity: str, sample_id: str = "") -> str:
        """The description of ``entity`` (frozen file first, else the taxonomy)."""
        table = self._descriptions()
        if table is None:
            text = taxonomy_description(entity)
        else:
            text = table["descriptions"].get(entity.lower())
            if text is None:
                where = f"Sample {sample_id!r}: " if sample_id else ""
                raise EntityNotFoundError(
                    f"{where}the descriptions file {self.config.descriptions!r} has no entry "
                    f"for {entity!r}.",
                    hint=f"Add {entity!r} to the file's descriptions.",
                )
        if self.config.max_words:
            words = text.split()
            if len(words) > self.config.max_words:
                text = " ".join(words[: self.config.max_words]).rstrip(",;:.")
        text = text.rstrip(".")
        # Taxonomy sentences start "A heavy ..."; lower the article so the template reads on.
        if len(text) > 1 and text[0].isupper() and (text[1].islower() or text[1] == " "):
            text = text[0].lower() + text[1:]
        return text

    def rewrite(self, sample: Sample) -> str:
        """The prompt followed by one description sentence per entity, in prompt order."""
        sentences = [
            self.config.template.format(
                entity=entity, description=self.description_of(entity, sample.id)
            )
            for entity in sample.entities
        ]
        return append_sentence(sample.prompt, " ".join(sentences))

    def description_source(self) -> str:
        """Where the descriptions come from, for ``extra``."""
        table = self._descriptions()
        if table is None:
            return "slim-taxonomy"
        return f"file:{self.config.descriptions} (model {table['model'] or 'unknown'})"


class EntityDescription(DescriptionMixin, _PromptBaseline):
    """The prompt plus each entity's canonical description.

    Needs the sample's entities; runs on any backbone. Descriptions come from the SLIM
    taxonomy (``slim_leakage.slim.taxonomy.entity_description``) or a frozen JSON file
    (``descriptions=path``). Source: the paper's "Entity Description Prompt" baseline; the
    paper's description generator is not published.
    """

    name = "entity-description"
    Config = DescriptionConfig
    description = "prompt + each entity's canonical description (SLIM taxonomy or frozen file)"

    def generate(self, backbone, samples: Sequence[Sample]) -> list[MethodOutput]:
        """Generate from the described prompts; ``extra`` names the description source."""
        outputs = super().generate(backbone, samples)
        for out in outputs:
            out.extra["descriptions"] = self.description_source()
        return outputs


# -- DeLeaker on the described prompt -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DeLeakerDescriptionConfig(DeLeakerConfig):
    """Options of ``deleaker+description``: every DeLeaker option plus the description ones.

    Attributes:
        descriptions: As :class:`DescriptionConfig`.
        template: As :class:`DescriptionConfig`.
        max_words: As :class:`DescriptionConfig`.
    """

    descriptions: str = ""
    template: str = DEFAULT_ENTITY_TEMPLATE
    max_words: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_description_options("deleaker+description", self.template, self.max_words)


class DeLeakerDescription(DescriptionMixin, DeLeaker):
    """DeLeaker run on the description-augmented prompt (the paper's "DeLeaker + Desc.").

    Needs the sample's entities; runs where DeLeaker runs (FLUX, SANA). The prompt is the one
    ``entity-description`` would use; DeLeaker's entity tokens are found in it, so the entity
    words must still occur verbatim (they do: the original prompt comes first, and the first
    occurrence of each entity is the one DeLeaker binds).
    """

    name = "deleaker+description"
    Config = DeLeakerDescriptionConfig
    description = "DeLeaker on the prompt + each entity's canonical description"

    def _described(self, samples: Sequence[Sample]) -> list[Sample]:
        return augmented_samples(samples, self.rewrite, check_entities=True)

    def prepare(self, backbone, samples: Sequence[Sample]) -> None:
        """Build every described prompt and check DeLeaker finds each entity in it."""
        super().prepare(backbone, self._described(samples))

    def generate(self, backbone, samples: Sequence[Sample]) -> list[MethodOutput]:
        """DeLeaker on the described prompts; ``extra`` adds the prompt and its sources."""
        described = self._described(samples)
        outputs = super().generate(backbone, described)
        for out, sample in zip(outputs, described):
            out.extra["prompt"] = sample.prompt
            out.extra["descriptions"] = self.description_source()
        return outputs
