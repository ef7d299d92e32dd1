"""What a judge stage is: the questions it asks, the requests it builds, what it concludes.

Two kinds of object make up the judging protocol:

- a :class:`Question` is one prompt sent to a backend: its name (the request's ``stage``, the
  answer schema's ``title`` and the prompt file ``prompts/<name>.<version>.txt``), its version,
  the answer schema and parser, how to read a request's facts back (:meth:`Question.asked`,
  from the structured context or, over the wire, from the rendered prompt), and the answer
  given without a model (:meth:`Question.local_answer`, the local protocol server's answer);
- a :class:`Stage` is one step of the protocol and one kind of
  :class:`~slim_leakage.records.StageResult`: which questions it asks for one :class:`Unit`
  (the sample, one image, or the two images in one presentation order), built from the item
  and the earlier stages' values, and what it concludes from the answers.

A :class:`Pipeline` lists the stages in order and names the stage that decides a verdict and
the one that answers a single-image leakage check. The runner
(:class:`~slim_leakage.judge.runner.Judge`) owns everything that does not depend on what is
asked: loading images, fanning a stage out over images and presentation orders, the cache,
limits, retries, the repair round and the error records.
"""

from __future__ import annotations

import dataclasses
import functools
import string
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any, ClassVar, Literal

from ...errors import ConfigError
from ...records import Sample
from ..backends.base import BackendRequest, ImageInput
from .schema import entities_in_schema

#: How a stage fans out over an item: once per sample, once per image, or once per
#: presentation order of the two images.
Scope = Literal["sample", "image", "pair"]

#: Version of the repair prompt (``prompts/repair.<version>.txt``), appended to a question
#: whose answer could not be used.
REPAIR_VERSION = "v1"

#: Feature words the local answers use (generic, so any entity gets some).
LOCAL_FEATURE_KINDS = ("head shape", "ears", "coat pattern", "body proportions", "tail")


@functools.cache
def load_prompt(name: str, version: str, package: str = "slim_leakage.judge") -> str:
    """The prompt template ``prompts/<name>.<version>.txt`` shipped in ``package``.

    Raises:
        ConfigError: If no such prompt file exists.
    """
    filename = f"{name}.{version}.txt"
    try:
        return resources.files(package).joinpath("prompts", filename).read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"No judge prompt {filename!r} in {package}.",
            hint="Prompt files live in <package>/prompts/<question>.<version>.txt.",
        ) from None


def fill(template: str, label: str, fields: Mapping[str, str]) -> str:
    """Fill the ``$field`` placeholders of ``template`` (all must be given).

    Raises:
        ConfigError: Naming the missing field.
    """
    try:
        return string.Template(template).substitute(fields)
    except KeyError as exc:
        raise ConfigError(f"Prompt {label} needs the field {exc.args[0]!r}.") from None


def repair_text(problem: str, previous: str) -> str:
    """The repair prompt, appended to a question whose answer could not be used."""
    return fill(
        load_prompt("repair", REPAIR_VERSION),
        f"repair.{REPAIR_VERSION}",
        {"problem": problem, "previous": previous},
    )


def entity_list(entities: Sequence[str]) -> str:
    """``"cat", "cheetah"`` as the prompts quote entity names."""
    return ", ".join(f'"{e}"' for e in entities)


def sample_fields(sample: Sample) -> dict[str, str]:
    """The placeholders every prompt fills from the sample: ``prompt`` and ``entity_list``."""
    return {"prompt": sample.prompt, "entity_list": entity_list(sample.entities)}


@dataclasses.dataclass(frozen=True)
class Asked:
    """The facts of one request, as its question reads them back (for answers without a model).

    Attributes:
        question: The question's name.
        entities: The sample's entities, in order.
        images: SHA-256 of each image sent, in order.
        inputs: The stage inputs behind the prompt (merged features, the two reports ...).
        data: The bytes of each image sent, where the request carries them (in process, not
            over the wire).
    """

    question: str
    entities: tuple[str, ...]
    images: tuple[str, ...] = ()
    inputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    data: tuple[bytes, ...] = ()


class Question:
    """One prompt a stage sends: template, answer schema, parser, and answers without a model.

    Subclasses set :attr:`name` and :attr:`version` and implement :meth:`schema`,
    :meth:`parse` and :meth:`local_answer`; one whose prompt carries structured inputs that an
    answer needs implements :meth:`read` too.
    """

    #: The request's ``stage``, the schema's ``title`` and the prompt file's stem.
    name: str = ""
    #: The prompt version (part of every cache key; a changed prompt is a new version).
    version: str = "v1"
    #: The package whose ``prompts/`` folder holds the template.
    prompt_package: str = "slim_leakage.judge"

    def template(self) -> str:
        """The prompt template text (the packaged file ``prompts/<name>.<version>.txt``)."""
        return load_prompt(self.name, self.version, self.prompt_package)

    def render(self, fields: Mapping[str, str]) -> str:
        """The prompt with its ``$field`` placeholders filled.

        Raises:
            ConfigError: If a placeholder has no value.
        """
        return fill(self.template(), f"{self.name}.{self.version}", fields)

    def schema(self, entities: Sequence[str]) -> dict:
        """The JSON schema an answer must satisfy (its ``title`` is :attr:`name`)."""
        raise NotImplementedError

    def parse(self, text: str, entities: Sequence[str]) -> dict:
        """The answer text as a checked dict.

        Raises:
            JudgeParseError: If the text is not one JSON object matching the schema and naming
                each entity exactly once.
        """
        raise NotImplementedError

    def read(self, text: str) -> dict:
        """The stage inputs a rendered prompt carries (for requests seen only on the wire)."""
        return {}

    def asked(
        self,
        *,
        text: str,
        schema: Mapping[str, Any] | None,
        images: Sequence[str] = (),
        context: Mapping[str, Any] | None = None,
        data: Sequence[bytes] = (),
    ) -> Asked:
        """The facts of a request: from its ``context`` where it has one, else from the wire.

        Args:
            text: The rendered prompt.
            schema: The answer schema sent.
            images: SHA-256 of each image sent.
            context: The request's structured context, if it was built in this process.
            data: The image bytes, if at hand.
        """
        context = context or {}
        entities = context.get("entities") or entities_in_schema(schema)
        inputs = context["inputs"] if "inputs" in context else self.read(text)
        return Asked(self.name, tuple(entities), tuple(images), inputs, tuple(data))

    def asked_in(self, request: BackendRequest) -> Asked:
        """The facts of a request built in this process (its context and image bytes)."""
        return self.asked(
            text=request.text,
            schema=request.schema,
            images=[im.sha256 for im in request.images],
            context=request.context,
            data=[im.data for im in request.images],
        )

    def local_answer(self, asked: Asked) -> dict:
        """A schema-valid answer computed without a model (the local protocol server's answer).

        Deterministic in the facts asked, and sensible enough that whole runs can be judged
        through it.
        """
        raise NotImplementedError(f"The question {self.name!r} has no local answer.")


@dataclasses.dataclass(frozen=True)
class Unit:
    """What one request group of a stage is about.

    Attributes:
        sample: The sample judged.
        images: For a ``sample`` stage every image judged (vanilla then method, or the one
            image of a leakage check); for an ``image`` stage that one image; for a ``pair``
            stage the two images in presentation order. Each has its ``role`` set and no label.
        references: Single-entity reference images (role ``reference``, ``entity`` set), in
            the sample's entity order, for the entities that have one.
        order: For a ``pair`` stage, ``ab`` (the images as judged: vanilla first) or ``ba``.
    """

    sample: Sample
    images: tuple[ImageInput, ...]
    references: tuple[ImageInput, ...] = ()
    order: str | None = None

    @property
    def image(self) -> ImageInput:
        """The one image of an ``image`` stage."""
        (image,) = self.images
        return image


@dataclasses.dataclass(frozen=True)
class Ask:
    """One question a stage asks for a unit; the runner turns it into a backend request.

    Attributes:
        question: The question.
        fields: The prompt's placeholders.
        images: The images sent, in the order the prompt refers to them, labelled as it does.
        inputs: The stage inputs behind the prompt, as facts (the request's ``context``).
        about: The images the question is about, when they are not sent (the ranking reads
            reports of them); ``None``: the images sent.
    """

    question: Question
    fields: Mapping[str, str]
    images: tuple[ImageInput, ...] = ()
    inputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    about: tuple[ImageInput, ...] | None = None


class Stage:
    """One step of the protocol: what it asks per unit, and what it concludes.

    A stage's *value* is what later stages read: for a ``sample`` stage the value concluded,
    for an ``image`` stage a dict image role -> value, for a ``pair`` stage a dict order ->
    value. Every stage may add figures to a verdict's ``scores``; the pipeline's deciding stage
    gives the label, and its checking stage answers single-image leakage checks.
    """

    #: The :attr:`StageResult.stage` of its records.
    name: ClassVar[str] = ""
    #: How it fans out over an item.
    scope: ClassVar[Scope] = "sample"
    #: The questions it may ask (their versions are recorded in manifests).
    questions: ClassVar[tuple[Question, ...]] = ()

    @property
    def version(self) -> str:
        """The version recorded in its records: that of its first question."""
        return self.questions[0].version if self.questions else "v1"

    def ask(self, unit: Unit, values: Mapping[str, Any]) -> list[Ask]:
        """The questions for ``unit``, given the values of the stages before it."""
        raise NotImplementedError

    def conclude(
        self, unit: Unit, values: Mapping[str, Any], answers: Sequence[dict]
    ) -> tuple[Any, dict]:
        """From the parsed answers (one per ask, all usable): the value and the record output."""
        raise NotImplementedError

    def scores(self, value: Any) -> dict:
        """Figures this stage adds to a verdict's ``scores`` (none by default)."""
        return {}

    def decide(self, value: Any) -> tuple[str, bool, str]:
        """A verdict's label, whether the orders flipped, and the rationale (deciding stage)."""
        raise NotImplementedError(f"The stage {self.name!r} does not decide verdicts.")

    def leaks(self, value: Any) -> tuple[bool, dict]:
        """Whether the one image leaks, and the figures behind it (checking stage)."""
        raise NotImplementedError(f"The stage {self.name!r} does not check single images.")


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """The stages a judge runs, in order, and which of them conclude.

    Attributes:
        stages: The stages; each reads the values of those before it.
        decides: The stage whose :meth:`Stage.decide` labels each verdict.
        checks: The stage whose :meth:`Stage.leaks` answers a single-image leakage check; such
            a check runs the stages up to it, which must not need two images.

    Raises:
        ConfigError: For duplicate stage or question names, or a conclusion by a stage that is
            not in the pipeline.
    """

    stages: tuple[Stage, ...]
    decides: str
    checks: str

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        questions = [q.name for s in self.stages for q in s.questions]
        for kind, listed in (("stage", names), ("question", questions)):
            twice = sorted({n for n in listed if listed.count(n) > 1})
            if twice:
                raise ConfigError(f"The judge pipeline has two {kind}s named {twice[0]!r}.")
        for role in ("decides", "checks"):
            if getattr(self, role) not in names:
                raise ConfigError(
                    f"The judge pipeline {role} with {getattr(self, role)!r}, which is not one "
                    f"of its stages {names!r}."
                )
        pairs = [s.name for s in self.single_image_stages() if s.scope == "pair"]
        if pairs:
            raise ConfigError(
                f"The stage {pairs[0]!r} compares two images, so a single-image check (the "
                f"stages up to {self.checks!r}) cannot run it.",
                hint="Check single images with a stage that comes before every pair stage.",
            )

    def single_image_stages(self) -> tuple[Stage, ...]:
        """The stages a single-image leakage check runs: up to the checking stage."""
        names = [s.name for s in self.stages]
        return self.stages[: names.index(self.checks) + 1]

    def stage(self, name: str) -> Stage:
        """The stage called ``name``."""
        return next(s for s in self.stages if s.name == name)

    def questions(self) -> dict[str, Question]:
        """Every question asked, by name."""
        return dict(self._questions)

    @functools.cached_property
    def _questions(self) -> dict[str, Question]:
        # Looked up per request by the local server and the oracle; a pipeline never changes.
        return {q.name: q for s in self.stages for q in s.questions}

    def question(self, name: str) -> Question | None:
        """The question called ``name`` (a ``+repair`` suffix ignored), if it is asked."""
        return self._questions.get(name.split("+", 1)[0])

    def prompt_versions(self) -> dict[str, str]:
        """Question name -> prompt version, the repair prompt included (for manifests)."""
        return {**{n: q.version for n, q in self.questions().items()}, "repair": REPAIR_VERSION}

    def extended(self, *stages: Stage) -> Pipeline:
        """This pipeline with ``stages`` appended (same deciding and checking stages)."""
        return dataclasses.replace(self, stages=(*self.stages, *stages))
