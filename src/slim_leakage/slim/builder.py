"""The SLIM builder: taxonomy x templates -> validated samples -> Hub-layout Parquet folder.

:func:`make_samples` is pure (no I/O) and deterministic: templates, entity order and seeds are
chosen from hashes of the content, never from a random generator or the clock. :func:`build`
checks the invariants of every config before writing any file, then writes the Parquet files
and regenerates the card. Any vocabulary can be built: pass another :class:`Taxonomy` and
:class:`TemplateSet` with your own :class:`ConfigSpec` names (the toy world does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..errors import ConfigError, DatasetError
from ..records import Sample
from . import hub_format as _folder
from .taxonomy import SLIM_TAXONOMY, Entity, Taxonomy
from .templates import SLIM_TEMPLATES, TemplateSet, apply_style, render

#: Bump when a change to the builder changes its output for the same inputs.
BUILDER_VERSION = "1"
#: Number of entities per kind of sample.
KIND_ARITY = {"pair": 2, "triplet": 3, "control": 2}
_CONFIG_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def check_config_name(name: str) -> str:
    """Return ``name`` if it can name a config (and its Parquet file), else raise.

    Raises:
        ConfigError: Naming the value and the allowed characters.
    """
    if not isinstance(name, str) or not _CONFIG_NAME_RE.match(name):
        raise ConfigError(
            f"Config name {name!r} is not a lowercase file-safe name.",
            hint="Use lowercase letters, digits, '-', '_' or '.' (for example 'toy-pairs').",
        )
    return name


@dataclasses.dataclass(frozen=True)
class ConfigSpec:
    """What one config of a built folder contains.

    Attributes:
        name: Config name (the Parquet file stem); any lowercase name (``toy-pairs`` ...).
        kind: ``pair`` (look-alike pairs within a family or link), ``triplet`` (three members of
            one family) or ``control`` (two entities of different categories).
        subsets: The subsets to make; each combination of entities gets one sample per subset
            that has a fitting template.
        description: One line for the card and ``slim-eval ls configs``.
        seeds_per_prompt: Samples per prompt, each with its own seed.
        max_per_family: Keep at most this many entity combinations per family (chosen by
            hash), or all of them.
        min_rows: The build fails if the config ends up smaller (guards a size target).
    """

    name: str
    kind: str
    subsets: tuple[str, ...]
    description: str
    seeds_per_prompt: int = 1
    max_per_family: int | None = None
    min_rows: int = 0

    def __post_init__(self) -> None:
        check_config_name(self.name)
        if self.kind not in KIND_ARITY:
            raise ConfigError(
                f"Config {self.name!r}: kind {self.kind!r} is not one of {', '.join(KIND_ARITY)}.",
                hint="Choose pair, triplet or control.",
            )
        if not self.subsets:
            raise ConfigError(f"Config {self.name!r} lists no subsets.", hint="Name at least one.")
        if self.seeds_per_prompt < 1:
            raise ConfigError(
                f"Config {self.name!r}: seeds_per_prompt={self.seeds_per_prompt} must be >= 1.",
                hint="Use 1 for one sample per prompt.",
            )
        if self.max_per_family is not None and self.max_per_family < 1:
            raise ConfigError(
                f"Config {self.name!r}: max_per_family={self.max_per_family} must be >= 1 or None.",
                hint="Use None to keep every combination.",
            )

    @property
    def arity(self) -> int:
        """Entities per sample."""
        return KIND_ARITY[self.kind]


#: The configs of SLIM proper.
SLIM_CONFIGS: tuple[ConfigSpec, ...] = (
    ConfigSpec(
        name="pairs",
        kind="pair",
        subsets=("simple", "interaction", "interaction-style"),
        description="Two look-alike entities from one family, in simple, interaction and styled-interaction prompts",
        min_rows=840,
    ),
    ConfigSpec(
        name="triplets",
        kind="triplet",
        subsets=("animal-triplets", "produce-triplets", "object-triplets"),
        description="Three look-alike entities from one family, one clause or list item each",
        max_per_family=12,
        min_rows=290,
    ),
    ConfigSpec(
        name="controls",
        kind="control",
        subsets=("control",),
        description="Two visually distant entities of different categories (a cat and a guitar): a leakage fix should change nothing",
        min_rows=100,
    ),
)


def _digest(*parts: object) -> str:
    blob = json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def _pick(key: str, n: int) -> int:
    return int(_digest("pick", key)[:12], 16) % n


def sample_seed(prompt: str, index: int = 0) -> int:
    """The seed of the ``index``-th sample of ``prompt`` (a non-negative 31-bit integer)."""
    return int(_digest("seed", prompt, index)[:8], 16) & 0x7FFFFFFF


def sample_id(kind: str, prompt: str, entities: Sequence[str], seed: int) -> str:
    """A stable id from the content: ``<kind>-<12 hex digits>``."""
    return f"{kind}-{_digest(prompt, list(entities), int(seed))[:12]}"


def _combos(
    taxonomy: Taxonomy, spec: ConfigSpec
) -> Iterator[tuple[str, tuple[str, ...], tuple[Entity, ...]]]:
    """``(family label, settings, entities)`` for every combination the config uses."""
    if spec.kind == "control":
        yield from _control_combos(taxonomy)
        return
    for family in taxonomy.families:
        combos = list(itertools.combinations(family.entities, spec.arity))
        if spec.max_per_family is not None and len(combos) > spec.max_per_family:
            ranked = sorted(
                range(len(combos)),
                key=lambda i: _digest("keep", spec.name, [e.name for e in combos[i]]),
            )
            keep = set(ranked[: spec.max_per_family])
            combos = [c for i, c in enumerate(combos) if i in keep]
        for combo in combos:
            yield family.name, (family.setting,), combo
    if spec.kind == "pair":
        for a, b in taxonomy.links:
            ea, eb = taxonomy.get(a), taxonomy.get(b)
            fa, fb = taxonomy.family(ea.family), taxonomy.family(eb.family)
            yield f"{fa.name}+{fb.name}", (fa.setting, fb.setting), (ea, eb)


def _control_combos(
    taxonomy: Taxonomy,
) -> Iterator[tuple[str, tuple[str, ...], tuple[Entity, ...]]]:
    # Each entity once, with a partner of another category chosen by hash: distant by design.
    # A partner already paired with this entity is passed over for the next one in line.
    entities = taxonomy.entities
    used: set[frozenset[str]] = set()
    for entity in entities:
        others = [e for e in entities if e.category != entity.category]
        start = _pick(f"control|{entity.name}", len(others)) if others else 0
        for step in range(len(others)):
            partner = others[(start + step) % len(others)]
            pair = frozenset((entity.name, partner.name))
            if pair not in used:
                used.add(pair)
                yield f"{entity.family}+{partner.family}", ("any",), (entity, partner)
                break


def make_samples(
    taxonomy: Taxonomy, templates: TemplateSet, spec: ConfigSpec, *, source: str = "slim-builder"
) -> list[Sample]:
    """All samples of one config, in a deterministic order (no I/O, no invariant checks).

    Args:
        taxonomy: The entities and families.
        templates: The templates and styles.
        spec: The config to make.
        source: Recorded in each sample's ``source``.

    Raises:
        ConfigError: If ``spec`` asks for a subset the template set cannot make.
    """
    unknown = [s for s in spec.subsets if s not in templates.subsets]
    if unknown:
        raise ConfigError(
            f"Config {spec.name!r} asks for subset(s) {', '.join(unknown)}, which template set "
            f"{templates.name!r} cannot make.",
            hint=f"Subsets it can make: {', '.join(sorted(templates.subsets))}.",
        )
    samples: list[Sample] = []
    for family, settings, combo in _combos(taxonomy, spec):
        names = [e.name for e in combo]
        for subset in spec.subsets:
            candidates = templates.candidates(subset, spec.arity, settings)
            if not candidates:
                continue
            key = f"{spec.kind}|{subset}|{'|'.join(names)}"
            template = candidates[_pick(key, len(candidates))]
            shift = _pick(key + "|order", spec.arity)
            ordered = combo[shift:] + combo[:shift]
            prompt = render(template.text, ordered)
            template_id = template.id
            if subset in templates.styled:
                style = templates.styles[_pick(key + "|style", len(templates.styles))]
                before = _pick(key + "|where", 2) == 0
                prompt = apply_style(prompt, style, before=before)
                template_id = f"{template.id}+{style.id}-{'before' if before else 'after'}"
            entities = tuple(e.name for e in ordered)
            for index in range(spec.seeds_per_prompt):
                seed = sample_seed(prompt, index)
                samples.append(
                    Sample(
                        id=sample_id(spec.kind, prompt, entities, seed),
                        prompt=prompt,
                        entities=entities,
                        seed=seed,
                        kind=spec.kind,
                        subset=subset,
                        family=family,
                        template_id=template_id,
                        config=spec.name,
                        source=source,
                    )
                )
    return samples


def entity_spans(prompt: str, entity: str, *, case_sensitive: bool = True) -> list[tuple[int, int]]:
    """Character spans where ``entity`` occurs in ``prompt`` as a whole word."""
    flags = 0 if case_sensitive else re.IGNORECASE
    pattern = re.compile(r"(?<![A-Za-z0-9])" + re.escape(entity) + r"(?![A-Za-z0-9])", flags)
    return [m.span() for m in pattern.finditer(prompt)]


def sample_problems(
    sample: Sample, *, arity: int | None = None, case_sensitive: bool = True, once: bool = True
) -> list[str]:
    """What is wrong with one sample's entities (empty when nothing is).

    Args:
        sample: The sample.
        arity: The number of entities its config requires, if any.
        case_sensitive: Whether entities must match the prompt's case exactly.
        once: Whether each entity must occur exactly once (otherwise at least once).
    """
    problems = []
    if arity is not None and len(sample.entities) != arity:
        problems.append(f"has {len(sample.entities)} entities, its config needs {arity}")
    if len(set(sample.entities)) != len(sample.entities):
        problems.append(f"repeats an entity in {list(sample.entities)}")
    firsts: list[tuple[int, int]] = []
    for entity in sample.entities:
        spans = entity_spans(sample.prompt, entity, case_sensitive=case_sensitive)
        if not spans:
            problems.append(f"entity {entity!r} does not occur in the prompt as a whole word")
            continue
        if once and len(spans) > 1:
            problems.append(f"entity {entity!r} occurs {len(spans)} times in the prompt")
        firsts.append(spans[0])
    if len(firsts) == len(sample.entities):
        for (_s1, e1), (s2, _e2) in itertools.pairwise(firsts):
            if s2 < e1:
                problems.append(f"entities are not in prompt order or overlap (spans {firsts})")
                break
    return problems


def check_samples(
    samples: Sequence[Sample],
    *,
    config: str,
    arity: int | None = None,
    kind: str | None = None,
    case_sensitive: bool = True,
) -> None:
    """Check a config's invariants before anything is written.

    Each entity occurs in its prompt exactly once, as a whole word spelled as listed, in the
    listed order and without overlapping another; ids are unique; the number of entities is
    ``arity``; every sample has ``kind``; no (prompt, seed) pair repeats. Imported prompts
    (which capitalise their first word) are checked with ``case_sensitive=False``.

    Raises:
        DatasetError: Naming the first offending sample(s) and what is wrong.
    """
    errors: list[str] = []
    seen_ids: set[str] = set()
    seen_pairs: dict[tuple[str, int], str] = {}
    for sample in samples:
        problems = sample_problems(sample, arity=arity, case_sensitive=case_sensitive)
        if kind is not None and sample.kind != kind:
            problems.append(f"has kind {sample.kind!r}, its config holds {kind!r}")
        if sample.id in seen_ids:
            problems.append("repeats an id already used")
        seen_ids.add(sample.id)
        key = (sample.prompt, int(sample.seed))
        if key in seen_pairs:
            problems.append(f"repeats (prompt, seed) of sample {seen_pairs[key]!r}")
        seen_pairs.setdefault(key, sample.id)
        errors += [f"sample {sample.id!r} ({sample.prompt!r}): {p}" for p in problems]
    if errors:
        shown = "; ".join(errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise DatasetError(
            f"Config {config!r} breaks its invariants: {shown}{more}.",
            hint="Fix the taxonomy or templates that produced these samples; nothing was written.",
        )


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """What :func:`build` wrote.

    Attributes:
        root: The folder written.
        rows: Config name -> number of rows.
        subsets: Config name -> subset -> rows.
        files: The paths written (Parquet files and the card).
    """

    root: str
    rows: dict
    subsets: dict
    files: tuple[str, ...]


def build(
    taxonomy: Taxonomy,
    templates: TemplateSet,
    out_dir: str | os.PathLike,
    configs: Iterable[ConfigSpec],
    *,
    source: str = "slim-builder",
) -> BuildReport:
    """Build ``configs`` from a vocabulary into the Hub-layout folder ``out_dir``.

    Every config is made and checked before any file is written. Other configs already in the
    folder are kept, and the card is regenerated from all Parquet files present.

    Args:
        taxonomy: Entities and families.
        templates: Templates and styles.
        out_dir: The folder (``README.md`` + ``data/``); created if missing.
        configs: What to build.
        source: Recorded in every row's ``source`` column.

    Raises:
        ConfigError: For repeated config names or subsets the templates cannot make.
        DatasetError: If a config breaks an invariant or misses its ``min_rows``.
    """
    specs = list(configs)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"Config names repeat: {names}.", hint="Give each config once.")
    made: list[tuple[ConfigSpec, list[Sample]]] = []
    for spec in specs:
        samples = make_samples(taxonomy, templates, spec, source=source)
        check_samples(samples, config=spec.name, arity=spec.arity, kind=spec.kind)
        if len(samples) < spec.min_rows:
            raise DatasetError(
                f"Config {spec.name!r} has {len(samples)} samples, fewer than its min_rows "
                f"{spec.min_rows}.",
                hint="Add entities, families or templates, or raise seeds_per_prompt.",
            )
        made.append((spec, samples))
    provenance = {
        "builder_version": BUILDER_VERSION,
        "taxonomy": taxonomy.name,
        "templates": templates.name,
    }
    files = []
    for spec, samples in made:
        rows = [_folder.sample_row(s) for s in samples]
        files.append(
            _folder.write_config(
                out_dir,
                spec.name,
                rows,
                kind=spec.kind,
                description=spec.description,
                provenance=provenance,
            )
        )
    files.append(_folder.write_card(out_dir))
    return BuildReport(
        root=str(out_dir),
        rows={spec.name: len(samples) for spec, samples in made},
        subsets={
            spec.name: dict(sorted(Counter(s.subset for s in samples).items()))
            for spec, samples in made
        },
        files=tuple(str(f) for f in files),
    )


def build_slim(out_dir: str | os.PathLike) -> BuildReport:
    """Build SLIM proper (``pairs``, ``triplets``, ``controls``) into ``out_dir``."""
    return build(SLIM_TAXONOMY, SLIM_TEMPLATES, Path(out_dir), SLIM_CONFIGS)


__all__ = [
    "BUILDER_VERSION",
    "KIND_ARITY",
    "SLIM_CONFIGS",
    "BuildReport",
    "ConfigSpec",
    "build",
    "build_slim",
    "check_config_name",
    "check_samples",
    "entity_spans",
    "make_samples",
    "sample_id",
    "sample_problems",
    "sample_seed",
]
