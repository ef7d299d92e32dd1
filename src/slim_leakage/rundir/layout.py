"""Where every file of a run lives: the names and the sample-id -> file-name mapping.

A sample's images are named by :func:`slug` of its id, an entity's reference image by the slug
of the entity. :data:`SAMPLE_ID_RULE` says which ids a run takes, and :func:`sample_problems`
refuses a set of samples in which two of them would share a file, before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import DatasetError, RunError, SlimError
from ..records import Sample

#: Version of the manifest's layout.
MANIFEST_SCHEMA = 1
MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
GENERATIONS = "generations.jsonl"
JUDGEMENTS = "judgements.jsonl"
VERDICTS = "verdicts.jsonl"
#: One single-image leakage check per vanilla and method image (``leakage_stage``).
LEAKAGE = "leakage.jsonl"
METRICS = "metrics.json"
REPORT = "report.html"
#: The report's small copies of the run's images (``thumbs/<image path>.jpg``).
THUMBS = "thumbs"
#: What the manifest says about seeds (every image has its own generator).
SEED_POLICY = "each image uses its sample's seed through its own torch.Generator"

#: Which sample ids a run takes (they name image files, so they must be plain and short).
SAMPLE_ID_RULE = (
    "1 to 128 characters: letters, digits, '.', '_' and '-', starting with a letter or digit"
)
MAX_SAMPLE_ID_LENGTH = 128
_SAMPLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NOT_IN_ID = re.compile(r"[^A-Za-z0-9._-]+")
_SLUG = re.compile(r"[^a-z0-9]+")
_JUDGED_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    """A file-name-safe lowercase form of ``text`` ("blue jay" -> "blue-jay")."""
    out = _SLUG.sub("-", text.lower()).strip("-")
    return out or "x"


#: Folders of ``images/`` the run itself uses; a method of that name gets ``method-<name>``.
_RESERVED_FOLDERS = frozenset({"vanilla", "reference", "masks"})


def image_file(role: str, sample_id: str, method: str = "") -> str:
    """Where a sample's ``vanilla`` or ``method`` image lives, relative to the run directory.

    A method's images go to ``images/<method>/``, except a method named like a folder the run
    uses itself (``vanilla`` as the method): ``images/method-vanilla/``, so its images never
    replace the baseline's.
    """
    folder = "vanilla" if role == "vanilla" else slug(method)
    if role != "vanilla" and folder in _RESERVED_FOLDERS:
        folder = f"method-{folder}"
    return f"images/{folder}/{slug(sample_id)}.png"


def reference_file(entity: str) -> str:
    """Where an entity's single-entity reference image lives, relative to the run directory."""
    return f"images/reference/{slug(entity)}.png"


def mask_file(sample_id: str, entity: str) -> str:
    """Where a method's mask overlay of one entity of a sample lives."""
    return f"images/masks/{slug(sample_id)}/{slug(entity)}.png"


def thumbnail_file(image: str) -> str:
    """Where the report keeps the thumbnail of the run image ``image`` (a relative path)."""
    return f"{THUMBS}/{Path(image).with_suffix('.jpg').as_posix()}"


def judged_folder(backend: str, model_id: str) -> str:
    """Where ``slim-eval judge`` keeps a re-judging by ``backend``/``model_id``.

    Unlike :func:`slug`, case, dots and underscores survive, so that model ids stay readable
    (``judged/openai-compatible-Qwen2.5-VL-7B``).
    """
    name = _JUDGED_NAME.sub("-", f"{backend}-{model_id}").strip("-") or "judge"
    return f"judged/{name}"


def reference_id(entity: str) -> str:
    """The ``sample_id`` of an entity's reference Generation record (``entity:<name>``).

    References are per entity, not per sample, so their records name the entity instead.
    """
    return f"entity:{entity}"


def inside_run(root: str | Path, rel: str | Path) -> Path:
    """``root / rel``, refusing a path or symbolic link that leads out of the run directory.

    Readers embed or upload the images a run names (the report, the judge, the annotation
    page); an edited record or a planted link must not make them read any other file.

    Raises:
        RunError: Naming the path and where it leads.
    """
    root = Path(root)
    target = root / rel
    resolved = target.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise RunError(
            f"{str(rel)!r} in run {str(root)!r} leads outside the run directory (to "
            f"{str(resolved)!r}).",
            hint="Images of a run must be files inside its directory; restore them from the "
            "run, or run again into a new --out directory.",
        )
    return target


# -- sample ids and the files they name -----------------------------------------------------------
def sample_id_problem(sample_id: str) -> str | None:
    """Why ``sample_id`` breaks :data:`SAMPLE_ID_RULE`, or ``None`` if it keeps it."""
    if not sample_id:
        return "is empty"
    if len(sample_id) > MAX_SAMPLE_ID_LENGTH:
        return f"is {len(sample_id)} characters long (at most {MAX_SAMPLE_ID_LENGTH})"
    if _SAMPLE_ID.fullmatch(sample_id):
        return None
    bad = sorted(set("".join(_NOT_IN_ID.findall(sample_id))))
    if bad:
        return "has the character(s) " + " ".join(repr(c) for c in bad)
    return f"starts with {sample_id[0]!r}"


def shown(text: str, limit: int = 48) -> str:
    """``repr(text)``, cut to about ``limit`` characters (messages never echo a huge value)."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 3]) + "..."


def suggested_id(sample_id: str) -> str:
    """An id close to ``sample_id`` that keeps :data:`SAMPLE_ID_RULE` (for hints)."""
    out = _NOT_IN_ID.sub("-", sample_id).lstrip("._-")[:MAX_SAMPLE_ID_LENGTH].rstrip("-")
    return out or "sample-1"


def sample_problems(
    samples: Sequence[Sample], where: Callable[[str], list[str]] | None = None
) -> list[SlimError]:
    """Everything about ``samples`` that would make two of them share a file, one error each.

    Checked: each id keeps :data:`SAMPLE_ID_RULE`; no id is used twice; no two ids map to the
    same image file name (``A-1`` and ``a_1`` both name ``a-1.png``); no two entities map to
    one reference image file (``Blue Jay`` and ``blue jay``), and no sample names one entity
    twice. Ids that keep the rule keep their file names (:func:`slug` is unchanged).

    Args:
        samples: The samples of a run.
        where: Sample id -> the places it is written (``file:line``), to name in messages;
            called only when there is a problem.

    Returns:
        One :class:`~slim_leakage.errors.DatasetError` per problem (empty: all is well).
    """
    places: dict[str, list[str]] | None = None

    def at(sample_id: str, nth: int | None = None) -> str:
        nonlocal places
        if places is None:
            places = {}
        if sample_id not in places:
            places[sample_id] = (where(sample_id) if where else []) or [
                f"sample {shown(sample_id)}"
            ]
        found = places[sample_id]
        return ", ".join(found) if nth is None else found[min(nth, len(found) - 1)]

    problems: list[SlimError] = []
    seen: dict[str, int] = {}
    for sample in samples:
        seen[sample.id] = seen.get(sample.id, 0) + 1
    for sample_id, count in seen.items():
        why = sample_id_problem(sample_id)
        if why:
            problems.append(
                DatasetError(
                    f"{at(sample_id)}: the sample id {shown(sample_id)} {why}.",
                    hint=f"Sample ids are {SAMPLE_ID_RULE}; rename it, e.g. "
                    f"{suggested_id(sample_id)!r}.",
                )
            )
        if count > 1:
            problems.append(
                DatasetError(
                    f"{at(sample_id)}: the sample id {shown(sample_id)} is used {count} times.",
                    hint="Give each sample its own id (samples sharing one would write the same "
                    "image files).",
                )
            )
    by_file: dict[str, str] = {}
    for sample_id in seen:
        if sample_id_problem(sample_id):
            continue
        other = by_file.setdefault(slug(sample_id), sample_id)
        if other != sample_id:
            problems.append(
                DatasetError(
                    f"{at(other, 0)} and {at(sample_id, 0)}: the sample ids {other!r} and "
                    f"{sample_id!r} both name the image file {slug(sample_id)}.png.",
                    hint="Give them ids that differ in more than letter case and punctuation.",
                )
            )
    entity_files: dict[str, tuple[str, str]] = {}
    reported: set[tuple[str, str]] = set()
    for sample in samples:
        names: dict[str, str] = {}
        for entity in sample.entities:
            key = slug(entity)
            if key in names:
                first = names[key]
                what = (
                    f"the entity {entity!r} twice"
                    if first == entity
                    else f"the entities {first!r} and {entity!r}, which name one image file"
                )
                problems.append(
                    DatasetError(
                        f"{at(sample.id, 0)}: sample {shown(sample.id)} names {what}.",
                        hint="Name each entity of a sample once; the entities of a sample must "
                        "differ in more than letter case and punctuation.",
                    )
                )
                continue
            names[key] = entity
            owner, owner_sample = entity_files.setdefault(key, (entity, sample.id))
            if owner != entity and (owner, entity) not in reported:
                reported.add((owner, entity))
                problems.append(
                    DatasetError(
                        f"{at(owner_sample, 0)} and {at(sample.id, 0)}: the entities {owner!r} "
                        f"and {entity!r} both name the reference image {reference_file(entity)}.",
                        hint="Write each entity the same way in every sample (letter case, "
                        "spaces and punctuation).",
                    )
                )
    return problems
