"""Read a run directory (``slim-eval run --out DIR``) into typed records.

This is the one reader used by ``agree``, ``annotate`` and ``submit``: the layout it expects is
the run-directory contract of ``docs/architecture.md``. Only ``manifest.json`` and
``samples.jsonl`` are required; the other files are read when present.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .._io import iter_jsonl
from ..errors import RunError, SlimError
from ..records import Generation, Record, RunMetrics, Sample, Verdict


@dataclasses.dataclass(frozen=True)
class RunData:
    """The records of one run directory.

    Attributes:
        path: The run directory.
        manifest: ``manifest.json`` as a dict.
        samples: The Sample records, in file order.
        generations: The Generation records (empty if none were written yet).
        verdicts: The Verdict records (empty before judging).
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
                f"{self.path / 'manifest.json'} has no method name (method.name).",
                hint="The manifest must come from `slim-eval run`.",
            )
        return method["name"]

    def image_path(self, sample_id: str, role: str) -> Path:
        """Absolute path of the ``vanilla`` or ``method`` image of a sample.

        Uses the Generation record when there is one, else the conventional location
        (``images/vanilla/<id>.png`` or ``images/<method>/<id>.png``).

        Raises:
            RunError: If the path, or a link on it, leads outside the run directory.
        """
        for gen in self.generations:
            if gen.sample_id == sample_id and gen.role == role:
                return inside_run(self.path, gen.path)
        folder = "vanilla" if role == "vanilla" else self.method
        return inside_run(self.path, Path("images") / folder / f"{sample_id}.png")

    def generation(self, sample_id: str, role: str) -> Generation | None:
        """The Generation record of a sample's ``vanilla`` or ``method`` image, if any."""
        for gen in self.generations:
            if gen.sample_id == sample_id and gen.role == role:
                return gen
        return None


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


def _read_records(path: Path, cls: type[Record]) -> tuple:
    out = []
    for number, data in enumerate(iter_jsonl(path), 1):
        try:
            out.append(cls.from_dict(data))
        except SlimError as exc:
            raise RunError(
                f"{path} record {number} is not a valid {cls.__name__}: {exc.message}",
                hint="The file was edited or written by another version; restore it.",
            ) from exc
    return tuple(out)


def load_run(path: str | Path) -> RunData:
    """Load the records of a run directory.

    Args:
        path: The run directory.

    Raises:
        RunError: If it is not a run directory or a record is malformed (naming the file).
    """
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not path.is_dir():
        raise RunError(
            f"Run directory {str(path)!r} does not exist.",
            hint="Give the --out directory of `slim-eval run`.",
        )
    if not manifest_path.is_file():
        raise RunError(
            f"{str(path)!r} has no manifest.json, so it is not a run directory.",
            hint="Give the --out directory of `slim-eval run`.",
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{manifest_path} is not valid JSON ({exc}).") from exc
    if not isinstance(manifest, dict):
        raise RunError(f"{manifest_path} must hold a JSON object.")
    samples = _read_records(path / "samples.jsonl", Sample)
    if not samples:
        raise RunError(
            f"{path / 'samples.jsonl'} is missing or empty.",
            hint="The run writes its samples first; run it again to finish.",
        )
    metrics = None
    metrics_path = path / "metrics.json"
    if metrics_path.is_file():
        try:
            metrics = RunMetrics.from_dict(json.loads(metrics_path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, SlimError) as exc:
            raise RunError(f"{metrics_path} is not a valid RunMetrics ({exc}).") from exc
    return RunData(
        path=path,
        manifest=manifest,
        samples=samples,
        generations=_read_records(path / "generations.jsonl", Generation),
        verdicts=_read_records(path / "verdicts.jsonl", Verdict),
        metrics=metrics,
    )


def write_run(
    path: str | Path,
    *,
    manifest: dict[str, Any],
    samples: list[Sample],
    generations: list[Generation] = (),
    verdicts: list[Verdict] = (),
    metrics: RunMetrics | None = None,
) -> Path:
    """Write records in the run-directory layout (for fixtures and for re-packaging a run)."""
    from .._io import append_jsonl, atomic_write_json

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path / "manifest.json", manifest)
    for name, records in (
        ("samples.jsonl", samples),
        ("generations.jsonl", generations),
        ("verdicts.jsonl", verdicts),
    ):
        target = path / name
        if target.exists():
            target.unlink()
        for record in records:
            append_jsonl(target, record.to_json())
    if metrics is not None:
        atomic_write_json(path / "metrics.json", metrics.to_dict())
    return path
