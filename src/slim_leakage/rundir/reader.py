"""Reading a run directory into typed records (the report, leaderboard, annotation page, CLI)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import NotARunError, RunError
from ..records import Generation, RunMetrics, Sample, Verdict
from .layout import MANIFEST, image_file, inside_run, reference_file
from .writer import RunDir


@dataclasses.dataclass(frozen=True)
class RunData:
    """The records of one run directory.

    Attributes:
        path: The run directory.
        manifest: ``manifest.json`` as a dict.
        samples: The Sample records, in file order.
        generations: The Generation records (empty if none were written yet).
        verdicts: One Verdict per sample, its latest (empty before judging).
        metrics: ``metrics.json`` if present.
    """

    path: Path
    manifest: dict[str, Any]
    samples: tuple[Sample, ...]
    generations: tuple[Generation, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    metrics: RunMetrics | None = None

    @property
    def method(self) -> str:
        """The evaluated method's name (``manifest["method"]["name"]``)."""
        method = self.manifest.get("method")
        if not isinstance(method, dict) or not isinstance(method.get("name"), str):
            raise RunError(
                f"{self.path / MANIFEST} has no method name (method.name).",
                hint="The manifest must come from `slim-eval run`.",
            )
        return method["name"]

    def generation(self, sample_id: str, role: str) -> Generation | None:
        """The Generation record of a sample's ``vanilla`` or ``method`` image, if any."""
        for gen in self.generations:
            if gen.sample_id == sample_id and gen.role == role:
                return gen
        return None

    def image_path(self, sample_id: str, role: str) -> Path:
        """Path of the ``vanilla`` or ``method`` image of a sample.

        Uses the Generation record when there is one, else where the run puts it
        (:func:`image_file`).

        Raises:
            RunError: If the path, or a link on it, leads outside the run directory.
        """
        gen = self.generation(sample_id, role)
        rel = gen.path if gen is not None else image_file(role, sample_id, self.method)
        return inside_run(self.path, rel)

    def reference_path(self, entity: str) -> Path:
        """Path of an entity's reference image (its record's path, else :func:`reference_file`).

        Raises:
            RunError: If the path, or a link on it, leads outside the run directory.
        """
        for gen in self.generations:
            if gen.role == "reference" and gen.entity == entity:
                return inside_run(self.path, gen.path)
        return inside_run(self.path, reference_file(entity))


def load_run(path: str | Path) -> RunData:
    """Load the records of a run directory.

    Only ``manifest.json`` and ``samples.jsonl`` are required; the other files are read when
    present.

    Args:
        path: The run directory.

    Raises:
        RunError: If it is not a run directory.
        DatasetError: If a record is malformed (naming the file and the line).
    """
    run = RunDir(path)
    if run.root.exists() and not run.root.is_dir():
        raise NotARunError(
            f"{str(run.root)!r} is a file, not a run directory.",
            hint="Give the --out directory of `slim-eval run`.",
        )
    if not run.root.is_dir():
        raise NotARunError(
            f"Run directory {str(run.root)!r} does not exist.",
            hint="Give the --out directory of `slim-eval run`.",
        )
    manifest = run.read_manifest()
    if manifest is None:
        raise NotARunError(
            f"{str(run.root)!r} has no manifest.json, so it is not a run directory.",
            hint="Give the --out directory of `slim-eval run`.",
        )
    samples = run.samples()
    if not samples:
        raise RunError(
            f"{run.samples_path} is missing or empty.",
            hint="The run writes its samples first; run it again to finish.",
        )
    return RunData(
        path=run.root,
        manifest=manifest,
        samples=samples,
        generations=run.merged.generations(),
        verdicts=tuple(run.merged.unique_verdicts()),
        metrics=run.read_metrics(),
    )
