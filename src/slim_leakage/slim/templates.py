"""Prompt templates for the SLIM subsets, and the small language that fills them.

A template's text names entities by position: ``{0}`` is the first entity's bare name and
``{a0}`` is the name with its indefinite article ("an eagle"). The rendered prompt gets its first
letter capitalised, so a template must never start with a bare ``{0}`` (the entity would no longer
be spelled as in the taxonomy; the builder's invariants catch it).

A template suits the family ``settings`` it lists (``any`` suits every family). A *styled* subset
(``interaction-style``) reuses the templates of its base subset (``interaction``) and adds a
:class:`Style` phrase before or after the sentence.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

from ..errors import DatasetError
from .taxonomy import Entity

_SLOT_RE = re.compile(r"\{(a?)(\d)\}")
_ANY_BRACE_RE = re.compile(r"\{[^}]*\}")


@dataclasses.dataclass(frozen=True)
class Template:
    """One prompt pattern.

    Attributes:
        id: Stable id (recorded as the sample's ``template_id``).
        subset: The subset it makes (``simple``, ``interaction``, ``animal-triplets`` ...).
        text: The pattern, with ``{0}``/``{a0}`` slots for the entities.
        settings: Family settings it suits (``land``, ``table`` ...; ``any`` for all).
    """

    id: str
    subset: str
    text: str
    settings: tuple[str, ...] = ("any",)

    def __post_init__(self) -> None:
        slots = sorted({int(m.group(2)) for m in _SLOT_RE.finditer(self.text)})
        if not slots or slots != list(range(len(slots))):
            raise DatasetError(
                f"Template {self.id!r} has entity slots {slots}; they must be 0..N-1.",
                hint="Name entities as {0}, {1} ... (or {a0}, {a1} ... with an article).",
            )
        stray = [m for m in _ANY_BRACE_RE.findall(self.text) if not _SLOT_RE.fullmatch(m)]
        if stray:
            raise DatasetError(
                f"Template {self.id!r} has unknown placeholder(s) {', '.join(stray)}.",
                hint="Only {N} and {aN} are filled in.",
            )
        if self.text.startswith(("{0}", "{1}", "{2}")):
            raise DatasetError(
                f"Template {self.id!r} starts with a bare entity; capitalising the prompt would "
                "change its spelling.",
                hint="Start with {a0} or with other words.",
            )

    @property
    def arity(self) -> int:
        """How many entities the template takes."""
        return len({m.group(2) for m in _SLOT_RE.finditer(self.text)})

    def suits(self, settings: Sequence[str]) -> bool:
        """Whether the template fits entities from families with these settings."""
        return "any" in self.settings or all(s in self.settings for s in settings)


@dataclasses.dataclass(frozen=True)
class Style:
    """A rendering style phrase for styled subsets.

    Attributes:
        id: Stable id (appended to the template id).
        prefix: Phrase put before the sentence ("In a 3D render").
        suffix: Phrase put after it ("in a 3D render").
    """

    id: str
    prefix: str
    suffix: str


@dataclasses.dataclass(frozen=True)
class TemplateSet:
    """The templates and styles a vocabulary is built with.

    Attributes:
        name: What the set is called (recorded in the data files).
        templates: Every template.
        styles: Style phrases for styled subsets.
        styled: Styled subset -> the base subset whose templates it reuses.
    """

    name: str
    templates: tuple[Template, ...]
    styles: tuple[Style, ...] = ()
    styled: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = [t.id for t in self.templates]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise DatasetError(
                f"Template set {self.name!r} repeats template id(s) {', '.join(dupes)}.",
                hint="Give every template a unique id.",
            )
        for styled, base in self.styled.items():
            if not self.styles:
                raise DatasetError(
                    f"Template set {self.name!r} declares styled subset {styled!r} but no styles.",
                    hint="Add Style entries or drop the styled subset.",
                )
            if base not in self.subsets:
                raise DatasetError(
                    f"Template set {self.name!r}: styled subset {styled!r} reuses {base!r}, "
                    "which has no templates.",
                    hint=f"Subsets with templates: {', '.join(sorted(self.subsets))}.",
                )

    @property
    def subsets(self) -> set[str]:
        """Every subset the set can make (plain and styled)."""
        return {t.subset for t in self.templates} | set(self.styled)

    def candidates(self, subset: str, arity: int, settings: Sequence[str]) -> list[Template]:
        """The templates of ``subset`` (or of its base subset) that fit the entities."""
        base = self.styled.get(subset, subset)
        return [
            t for t in self.templates if t.subset == base and t.arity == arity and t.suits(settings)
        ]


def render(text: str, entities: Sequence[Entity]) -> str:
    """Fill ``text``'s slots with ``entities`` and capitalise the first letter.

    Raises:
        DatasetError: If the text needs more entities than given.
    """

    def fill(match: re.Match) -> str:
        index = int(match.group(2))
        if index >= len(entities):
            raise DatasetError(
                f"Template {text!r} needs entity {index} but got {len(entities)} entities."
            )
        entity = entities[index]
        return f"{entity.article} {entity.name}" if match.group(1) else entity.name

    out = _SLOT_RE.sub(fill, text)
    return out[:1].upper() + out[1:]


def apply_style(sentence: str, style: Style, *, before: bool) -> str:
    """Add ``style`` before (lower-casing the sentence's first letter) or after ``sentence``."""
    if before:
        return f"{style.prefix}, {sentence[:1].lower()}{sentence[1:]}"
    return f"{sentence} {style.suffix}"


def _t(id: str, subset: str, text: str, *settings: str) -> Template:
    return Template(id=id, subset=subset, text=text, settings=settings or ("any",))


# fmt: off
_SIMPLE = [
    _t("simple-land-1", "simple", "{a0} and {a1} in a grassy field", "land"),
    _t("simple-land-2", "simple", "{a0} and {a1} standing side by side on a dirt path", "land"),
    _t("simple-land-3", "simple", "{a0} next to {a1} at the edge of a forest", "land"),
    _t("simple-land-4", "simple", "{a0} and {a1} resting in the shade of a tree", "land"),
    _t("simple-water-1", "simple", "{a0} and {a1} swimming in calm blue water", "water"),
    _t("simple-water-2", "simple", "{a0} next to {a1} near a rocky shore", "water"),
    _t("simple-water-3", "simple", "{a0} and {a1} in the water at sunset", "water"),
    _t("simple-air-1", "simple", "{a0} and {a1} on a tree branch", "air"),
    _t("simple-air-2", "simple", "{a0} and {a1} flying over a meadow", "air"),
    _t("simple-air-3", "simple", "{a0} next to {a1} in a garden", "air"),
    _t("simple-table-1", "simple", "{a0} and {a1} on a wooden table", "table"),
    _t("simple-table-2", "simple", "{a0} and {a1} on a kitchen counter", "table"),
    _t("simple-table-3", "simple", "{a0} next to {a1} on a white plate", "table"),
    _t("simple-table-4", "simple", "{a0} and {a1} in a wicker basket", "table"),
    _t("simple-street-1", "simple", "{a0} and {a1} parked on a city street", "street"),
    _t("simple-street-2", "simple", "{a0} next to {a1} in a parking lot", "street"),
    _t("simple-street-3", "simple", "{a0} and {a1} on a country road", "street"),
    _t("simple-stage-1", "simple", "{a0} and {a1} on a concert stage", "stage"),
    _t("simple-stage-2", "simple", "{a0} next to {a1} in a music shop", "stage"),
    _t("simple-stage-3", "simple", "{a0} and {a1} leaning against a brick wall", "stage"),
    _t("simple-room-1", "simple", "{a0} and {a1} in a bright living room", "room"),
    _t("simple-room-2", "simple", "{a0} next to {a1} in a furniture showroom", "room"),
    _t("simple-room-3", "simple", "{a0} and {a1} on a wooden porch", "room"),
]

_INTERACTION = [
    _t("interaction-land-1", "interaction", "{a0} and {a1} are playing together in a meadow", "land"),
    _t("interaction-land-2", "interaction", "{a0} and {a1} are sitting back to back", "land"),
    _t("interaction-land-3", "interaction", "{a0} is chasing {a1} across a field", "land"),
    _t("interaction-land-4", "interaction", "{a0} and {a1} are splashing each other with water in a shallow river", "land"),
    _t("interaction-land-5", "interaction", "{a0} and {a1} are cuddling together", "land"),
    _t("interaction-land-6", "interaction", "{a0} is sniffing {a1} curiously", "land"),
    _t("interaction-water-1", "interaction", "{a0} and {a1} are swimming side by side", "water"),
    _t("interaction-water-2", "interaction", "{a0} and {a1} are cuddling together in the water", "water"),
    _t("interaction-water-3", "interaction", "{a0} is playing with {a1} in the waves", "water"),
    _t("interaction-water-4", "interaction", "{a0} and {a1} are splashing each other", "water"),
    _t("interaction-air-1", "interaction", "{a0} and {a1} are sharing a branch", "air"),
    _t("interaction-air-2", "interaction", "{a0} is chasing {a1} through the air", "air"),
    _t("interaction-air-3", "interaction", "{a0} and {a1} are facing each other on a fence", "air"),
    _t("interaction-air-4", "interaction", "{a0} and {a1} are holding onto each other tightly", "air"),
    _t("interaction-table-1", "interaction", "{a0} is leaning against {a1} on a cutting board", "table"),
    _t("interaction-table-2", "interaction", "{a0} and {a1} are stacked on top of each other", "table"),
    _t("interaction-table-3", "interaction", "{a0} is rolling towards {a1} across a table", "table"),
    _t("interaction-table-4", "interaction", "{a0} and {a1} are touching each other in a bowl", "table"),
    _t("interaction-street-1", "interaction", "{a0} is towing {a1} down the road", "street"),
    _t("interaction-street-2", "interaction", "{a0} is overtaking {a1} on a highway", "street"),
    _t("interaction-street-3", "interaction", "{a0} and {a1} are parked bumper to bumper", "street"),
    _t("interaction-stage-1", "interaction", "{a0} and {a1} are propped against each other", "stage"),
    _t("interaction-stage-2", "interaction", "{a0} is lying across {a1} on a stage", "stage"),
    _t("interaction-stage-3", "interaction", "{a0} rests on top of {a1} in an open case", "stage"),
    _t("interaction-room-1", "interaction", "{a0} is pushed right up against {a1}", "room"),
    _t("interaction-room-2", "interaction", "{a0} and {a1} are stacked on top of each other in a hallway", "room"),
    _t("interaction-room-3", "interaction", "{a0} is facing {a1} across a rug", "room"),
]

_TRIPLETS = [
    _t("triplet-land-1", "animal-triplets", "{a0} is sleeping under a tree, while {a1} is drinking from a pond and {a2} is walking nearby", "land"),
    _t("triplet-land-2", "animal-triplets", "{a0} is standing on a rock, while {a1} is lying in the grass and {a2} is looking at them", "land"),
    _t("triplet-land-3", "animal-triplets", "{a0} is running across a field, while {a1} is resting in the shade and {a2} is watching from a hill", "land"),
    _t("triplet-water-1", "animal-triplets", "{a0} is leaping out of the water, while {a1} is floating on its back and {a2} is diving below", "water"),
    _t("triplet-water-2", "animal-triplets", "{a0} is swimming near the shore, while {a1} rests on a rock and {a2} drifts in the waves", "water"),
    _t("triplet-air-1", "animal-triplets", "{a0} is perched on a branch, while {a1} is flying overhead and {a2} is sitting on a fence", "air"),
    _t("triplet-air-2", "animal-triplets", "{a0} is sitting on a rooftop, while {a1} is landing on a wire and {a2} is hovering nearby", "air"),
    _t("triplet-air-3", "animal-triplets", "{a0} is resting on a flower, while {a1} is taking off and {a2} is flying above them", "air"),
    _t("triplet-table-1", "produce-triplets", "{a0}, {a1}, and {a2} sit side by side on a wooden table", "table"),
    _t("triplet-table-2", "produce-triplets", "{a0}, {a1}, and {a2} are arranged in a row on a white plate", "table"),
    _t("triplet-table-3", "produce-triplets", "{a0}, {a1}, and {a2} lie together in a wicker basket", "table"),
    _t("triplet-table-4", "produce-triplets", "{a0}, {a1}, and {a2} are arranged on a kitchen counter", "table"),
    _t("triplet-street-1", "object-triplets", "{a0} is parked by the curb, while {a1} is driving past and {a2} is waiting at the lights", "street"),
    _t("triplet-street-2", "object-triplets", "{a0}, {a1}, and {a2} are parked in a row", "street"),
    _t("triplet-stage-1", "object-triplets", "{a0}, {a1}, and {a2} are lined up on a concert stage", "stage"),
    _t("triplet-stage-2", "object-triplets", "{a0} is hanging on the wall, while {a1} leans on a stand and {a2} lies in its case", "stage"),
    _t("triplet-room-1", "object-triplets", "{a0}, {a1}, and {a2} are arranged around a fireplace", "room"),
    _t("triplet-room-2", "object-triplets", "{a0}, {a1}, and {a2} stand in a row in a furniture showroom", "room"),
]

_CONTROLS = [
    _t("control-1", "control", "{a0} and {a1} in a bright studio"),
    _t("control-2", "control", "{a0} next to {a1} on a plain white background"),
    _t("control-3", "control", "{a0} and {a1} side by side in a sunlit room"),
    _t("control-4", "control", "A photo of {a0} and {a1}"),
]

_STYLES = [
    Style("3d-render", "In a 3D render", "in a 3D render"),
    Style("watercolor", "In a watercolor painting", "as a watercolor painting"),
    Style("oil-painting", "In an oil painting", "as an oil painting"),
    Style("pencil-sketch", "In a pencil sketch", "as a pencil sketch"),
    Style("pixel-art", "In pixel art", "in pixel art style"),
    Style("cartoon", "In a cartoon", "in a cartoon style"),
]
# fmt: on

#: The templates SLIM is built from.
SLIM_TEMPLATES = TemplateSet(
    name="slim",
    templates=tuple(_SIMPLE + _INTERACTION + _TRIPLETS + _CONTROLS),
    styles=tuple(_STYLES),
    styled={"interaction-style": "interaction"},
)

__all__ = ["SLIM_TEMPLATES", "Style", "Template", "TemplateSet", "apply_style", "render"]
