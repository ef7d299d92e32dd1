"""Where every file of a run lives: the names and the sample-id -> file-name mapping."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import RunError

#: Version of the manifest's layout.
MANIFEST_SCHEMA = 1
MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
GENERATIONS = "generations.jsonl"
JUDGEMENTS = "judgements.jsonl"
VERDICTS = "verdicts.jsonl"
METRICS = "metrics.json"
REPORT = "report.html"
#: What the manifest says about seeds (every image has its own generator).
SEED_POLICY = "each image uses its sample's seed through its own torch.Generator"

_SLUG = re.compile(r"[^a-z0-9]+")
_JUDGED_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    """A file-name-safe lowercase form of ``text`` ("blue jay" -> "blue-jay")."""
    out = _SLUG.sub("-", text.lower()).strip("-")
    return out or "x"


def image_file(role: str, sample_id: str, method: str = "") -> str:
    """Where a sample's ``vanilla`` or ``method`` image lives, relative to the run directory."""
    folder = "vanilla" if role == "vanilla" else slug(method)
    return f"images/{folder}/{slug(sample_id)}.png"


def reference_file(entity: str) -> str:
    """Where an entity's single-entity reference image lives, relative to the run directory."""
    return f"images/reference/{slug(entity)}.png"


def mask_file(sample_id: str, entity: str) -> str:
    """Where a method's mask overlay of one entity of a sample lives."""
    return f"images/masks/{slug(sample_id)}/{slug(entity)}.png"


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
