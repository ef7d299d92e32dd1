"""Writing a run directory: the manifest, the record files, images, shards and metrics.

Each record is appended as one complete line and every other file is written atomically, so a
process killed at any moment loses nothing finished.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .._config import config_hash
from .._io import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    iter_jsonl,
    iter_jsonl_lines,
    repair_jsonl,
    sha256_bytes,
    sha256_file,
)
from .._version import __version__
from ..errors import DatasetError, RunConfigMismatchError, RunError, SlimError
from ..records import Generation, Record, RunMetrics, Sample, StageResult, Verdict
from ..reference_images import ReferenceImage
from .layout import (
    GENERATIONS,
    JUDGEMENTS,
    MANIFEST,
    MANIFEST_SCHEMA,
    METRICS,
    REPORT,
    SAMPLES,
    VERDICTS,
    image_file,
    judged_folder,
    mask_file,
    reference_file,
    reference_id,
)
from .manifest import SEAL, differences, edited_fields, seal
from .processes import RunLock, Shard


# -- provenance ----------------------------------------------------------------------------------
def git_commit() -> str | None:
    """The commit of the installed source tree, if it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def library_versions() -> dict[str, str | None]:
    """Versions of Python, the libraries and judge SDKs that shape the numbers, CUDA and cuDNN.

    ``cuda`` is the CUDA version torch was built with and ``cudnn`` the cuDNN it loads
    (``None`` on a CPU-only build); the GPU each process used is in the manifest's
    ``processes``.
    """
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in (
        "torch",
        "diffusers",
        "transformers",
        "datasets",
        "accelerate",
        "huggingface_hub",
        "openai",
        "google-genai",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    out["cuda"] = out["cudnn"] = None
    if out["torch"] is not None:
        import torch

        out["cuda"] = torch.version.cuda
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        out["cudnn"] = str(cudnn) if cudnn is not None else None
    return out


# -- record files --------------------------------------------------------------------------------
_RECORD_FILES: dict[str, str] = {
    Generation.record_type: GENERATIONS,
    StageResult.record_type: JUDGEMENTS,
    Verdict.record_type: VERDICTS,
}


def _read_records(path: Path, cls: type[Record]) -> tuple:
    """The records of a JSON-lines file; a bad one is named by file and line."""
    out = []
    for number, data in iter_jsonl_lines(path):
        try:
            if not isinstance(data, dict):
                raise DatasetError(f"a {cls.__name__} line must be a JSON object")
            out.append(cls.from_dict(data))
        except SlimError as exc:
            raise DatasetError(
                f"{path}:{number} is not a valid {cls.__name__}: {exc.message}",
                hint="The file was edited or written by another version: restore it, or delete "
                "that line (a resume then does its work again).",
            ) from exc
    return tuple(out)


class Records:
    """The append-only record files of one folder: generations, judgements and verdicts.

    A run keeps them at its top level (one rank's at ``shards/rank-R/`` under ``accelerate
    launch``); ``slim-eval judge`` keeps its own in ``judged/<judge>/``.

    Args:
        folder: The folder holding the three files.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @property
    def generations_path(self) -> Path:
        """``generations.jsonl``."""
        return self.folder / GENERATIONS

    @property
    def judgements_path(self) -> Path:
        """``judgements.jsonl``."""
        return self.folder / JUDGEMENTS

    @property
    def verdicts_path(self) -> Path:
        """``verdicts.jsonl``."""
        return self.folder / VERDICTS

    def repair(self) -> None:
        """Cut the torn last line a killed writer may have left off each file."""
        for name in _RECORD_FILES.values():
            repair_jsonl(self.folder / name)

    def append(self, record: Generation | StageResult | Verdict) -> None:
        """Append one record, as one complete line, to the file of its type."""
        append_jsonl(self.folder / _RECORD_FILES[record.record_type], record.to_json())

    def generations(self) -> tuple[Generation, ...]:
        """The Generation records, in file order.

        Raises:
            DatasetError: If a line is not a valid record (naming the file and the line).
        """
        return _read_records(self.generations_path, Generation)

    def judgements(self) -> tuple[StageResult, ...]:
        """The StageResult records, in file order."""
        return _read_records(self.judgements_path, StageResult)

    def verdicts(self) -> tuple[Verdict, ...]:
        """The Verdict records, in file order."""
        return _read_records(self.verdicts_path, Verdict)

    def unique_verdicts(self) -> list[Verdict]:
        """One Verdict per sample, in the order samples first appear: the latest one written.

        A resumed run judges a sample again only after a judge error, so its latest verdict
        is the one that counts (the error stays in the file as a record of what happened).
        """
        seen: dict[str, Verdict] = {}
        for verdict in self.verdicts():
            seen[verdict.sample_id] = verdict
        return list(seen.values())


# -- the writer ----------------------------------------------------------------------------------
class RunDir:
    """One run directory, as the process that works on it sees it.

    Args:
        root: The run directory.
        shard: This process's place among the ranks (default: a single process).
    """

    def __init__(self, root: str | Path, shard: Shard | None = None) -> None:
        self.root = Path(root)
        self.shard = shard or Shard()

    # layout -------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        """``manifest.json``."""
        return self.root / MANIFEST

    @property
    def samples_path(self) -> Path:
        """``samples.jsonl``."""
        return self.root / SAMPLES

    @property
    def metrics_path(self) -> Path:
        """``metrics.json``."""
        return self.root / METRICS

    @property
    def report_path(self) -> Path:
        """``report.html``."""
        return self.root / REPORT

    def shard_dir(self, rank: int) -> Path:
        """Where rank ``rank`` keeps its record files under ``accelerate launch``."""
        return self.root / "shards" / f"rank-{rank}"

    def rank_lock_path(self, rank: int) -> Path:
        """The lock file of rank ``rank`` (held while that process runs)."""
        return self.root / (".lock" if self.shard.world == 1 else f".lock.rank-{rank}")

    @property
    def records(self) -> Records:
        """This process's record files (the top level, or its rank's shard)."""
        if self.shard.world == 1:
            return Records(self.root)
        return Records(self.shard_dir(self.shard.rank))

    @property
    def merged(self) -> Records:
        """The top-level record files (every rank's records once merged)."""
        return Records(self.root)

    def judged_dir(self, backend: str, model_id: str) -> Path:
        """Where ``slim-eval judge`` keeps a re-judging by ``backend``/``model_id``."""
        return self.root / judged_folder(backend, model_id)

    # processes ----------------------------------------------------------------------------
    def lock(self) -> RunLock:
        """The exclusive lock of this process (one per rank under ``accelerate launch``)."""
        return RunLock(self.rank_lock_path(self.shard.rank))

    def record_process(self, record: dict[str, Any]) -> None:
        """Keep this rank's process record (its device) for rank 0's manifest (several ranks)."""
        if self.shard.world > 1:
            atomic_write_json(self.shard_dir(self.shard.rank) / "process.json", record)

    def processes(self, own: dict[str, Any]) -> list[dict[str, Any]]:
        """Every rank's process record in rank order (``own`` is this process's).

        A rank whose record is missing (it had nothing left to do on a resume and an older
        version ran it) is listed with its rank only.
        """
        if self.shard.world == 1:
            return [own]
        out = []
        for rank in range(self.shard.world):
            path = self.shard_dir(rank) / "process.json"
            try:
                out.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                out.append(own if rank == self.shard.rank else {"rank": rank})
        return out

    def wait_for_ranks(self, step: str, timeout: float = 24 * 3600) -> None:
        """A barrier through files: return once every rank has reached ``step``.

        No process group is needed, so it works the same on CPU.

        Raises:
            RunError: If the other ranks do not arrive within ``timeout`` seconds.
        """
        if self.shard.world == 1:
            return

        def flag(rank: int) -> Path:
            return self.root / "shards" / f"{step}.rank-{rank}.done"

        mine = flag(self.shard.rank)
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.write_text(str(os.getpid()))
        deadline = time.monotonic() + timeout
        while not all(flag(r).exists() for r in range(self.shard.world)):
            if time.monotonic() > deadline:
                raise RunError(f"Timed out waiting for the other ranks at {step!r}.")
            time.sleep(0.2)

    # the manifest -------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any] | None:
        """``manifest.json`` as a dict (without its seal), or ``None`` if there is none.

        Raises:
            RunError: If it is not a JSON object, or was edited after the run wrote it
                (its seal no longer matches: :mod:`.manifest`), naming the edited fields.
        """
        if not self.manifest_path.is_file():
            return None
        restore = (
            "Restore the manifest.json the run wrote (a run's record of what it is must not be "
            "edited), or run again into a new --out directory."
        )
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunError(
                f"{self.manifest_path} is not valid JSON ({exc}).", hint=restore
            ) from exc
        if not isinstance(manifest, dict):
            raise RunError(f"{self.manifest_path} must hold a JSON object.", hint=restore)
        edited = edited_fields(manifest)
        if edited:
            raise RunError(
                f"{self.manifest_path} was changed after the run wrote it: {', '.join(edited)}.",
                hint=restore,
            )
        return {k: v for k, v in manifest.items() if k != SEAL}

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Write ``manifest.json`` atomically, sealed (:func:`.manifest.seal`)."""
        atomic_write_json(self.manifest_path, seal(manifest))

    def open_manifest(
        self,
        identity: dict[str, Any],
        *,
        samples: Sequence[Sample],
        describe: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        """The manifest of a run with ``identity``: checked on resume, else written.

        A new run gets ``manifest.json`` (provenance, ``identity`` and its hash, then what
        ``describe()`` returns) and ``samples.jsonl``; an existing one must have the same
        identity. Under ``accelerate launch`` rank 0 writes and the other ranks wait for it.

        Args:
            identity: What must not change on resume (JSON-compatible).
            samples: The run's samples (written once, with the manifest).
            describe: The further manifest fields (method, backbone, dataset, judge, ...);
                called only when the manifest is written.

        Raises:
            RunConfigMismatchError: If the directory holds a run of another identity, naming
                what differs.
            RunError: If rank 0 does not write the manifest within 10 minutes.
        """
        digest = config_hash(identity)
        if self.manifest_path.exists():
            from .extend import FRESH, reconcile

            manifest = self.read_manifest() or {}
            changed = manifest.get("config_hash") != digest and self.shard.rank == 0
            decided = reconcile(self, manifest, identity, digest, samples) if changed else None
            if isinstance(decided, dict):
                return decided
            if decided != FRESH and manifest.get("config_hash") != digest:
                diff = differences(manifest.get("identity", {}), identity) or [
                    f"config_hash was {manifest.get('config_hash')!r}, now {digest!r}"
                ]
                raise RunConfigMismatchError(
                    f"{self.root} holds a run with a different configuration: {'; '.join(diff)}.",
                    hint="Resume with the original options, or choose a new --out directory.",
                )
            if decided != FRESH:
                self._check_same_samples(samples)
                return manifest
        if self.shard.rank != 0:  # rank 0 writes the manifest; wait for it
            deadline = time.monotonic() + 600
            while not self.manifest_path.exists():
                if time.monotonic() > deadline:
                    raise RunError("Rank 0 did not write the manifest.")
                time.sleep(0.2)
            return self.open_manifest(identity, samples=samples, describe=describe)
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "package_version": __version__,
            "git_commit": git_commit(),
            "versions": library_versions(),
            "identity": identity,
            "config_hash": digest,
            **describe(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_manifest(manifest)
        self.write_samples(samples)
        return manifest

    def _check_same_samples(self, samples: Sequence[Sample]) -> None:
        """Refuse to resume with samples that differ from those the run started with.

        The ids are part of the identity; this catches a samples file edited in place (another
        prompt, entity or seed under the same id), whose finished images would otherwise be
        judged against text they were not drawn from.
        """
        before = {s.id: s.to_dict() for s in self.samples()}
        for sample in samples:
            old = before.get(sample.id)
            if old is None:
                continue
            diff = differences(old, sample.to_dict())
            if diff:
                shown = "; ".join(d if len(d) <= 160 else d[:157] + "..." for d in diff[:3])
                raise RunConfigMismatchError(
                    f"{self.root} was started with other samples: sample {sample.id!r}: {shown}.",
                    hint=f"Resume with the samples the run started with (they are in "
                    f"{self.samples_path}), or choose a new --out directory.",
                )

    # whole files --------------------------------------------------------------------------
    def write_samples(self, samples: Iterable[Sample]) -> None:
        """Write ``samples.jsonl`` atomically."""
        text = "".join(s.to_json() + "\n" for s in samples)
        atomic_write_bytes(self.samples_path, text.encode("utf-8"))

    def samples(self) -> tuple[Sample, ...]:
        """The Sample records of ``samples.jsonl`` (empty if there is none)."""
        return _read_records(self.samples_path, Sample)

    def write_metrics(self, metrics: RunMetrics) -> None:
        """Write ``metrics.json`` atomically."""
        atomic_write_json(self.metrics_path, metrics.to_dict())

    def read_metrics(self) -> RunMetrics | None:
        """``metrics.json``, or ``None`` before the run has finished.

        Raises:
            RunError: If it is not a valid RunMetrics.
        """
        if not self.metrics_path.exists():
            return None
        try:
            data = json.loads(self.metrics_path.read_text(encoding="utf-8"))
            return RunMetrics.from_dict(data)
        except (json.JSONDecodeError, SlimError) as exc:
            raise RunError(f"{self.metrics_path} is not a valid RunMetrics ({exc}).") from exc

    def save_image(self, image, rel: str) -> str:
        """Write a PIL image as PNG at ``rel`` atomically; returns the SHA-256 of its bytes."""
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        data = buf.getvalue()
        atomic_write_bytes(self.root / rel, data)
        return sha256_bytes(data)

    # images and their records -------------------------------------------------------------
    def save_generation(
        self,
        sample: Sample,
        role: str,
        method: str,
        output: Any,
        *,
        seconds: float,
        peak_memory_bytes: int | None,
    ) -> Generation:
        """Save a sample's ``vanilla`` or ``method`` image and its overlays; append its record.

        Args:
            sample: The sample drawn.
            role: ``vanilla`` or ``method``.
            method: The name of the method that drew it.
            output: A method output: ``image``, ``extra`` (JSON dict) and ``overlays`` (entity
                -> PIL image, saved as masks and listed in ``extra["overlays"]``).
            seconds: Seconds per image.
            peak_memory_bytes: Peak accelerator memory of its batch, if measured.

        Returns:
            The record appended to ``generations.jsonl``.
        """
        rel = image_file(role, sample.id, method)
        digest = self.save_image(output.image, rel)
        extra = dict(output.extra)
        if output.overlays:
            extra["overlays"] = {entity: mask_file(sample.id, entity) for entity in output.overlays}
            for entity, overlay in output.overlays.items():
                self.save_image(overlay, extra["overlays"][entity])
        gen = Generation(
            sample_id=sample.id,
            role=role,
            method=method,
            path=rel,
            sha256=digest,
            seed=sample.seed,
            width=output.image.width,
            height=output.image.height,
            seconds=round(seconds, 6),
            peak_memory_bytes=peak_memory_bytes,
            extra=extra,
        )
        self.records.append(gen)
        return gen

    def save_reference(self, ref: ReferenceImage) -> Generation:
        """Save an entity's reference image and append its record (``role="reference"``)."""
        rel = reference_file(ref.entity)
        gen = Generation(
            sample_id=reference_id(ref.entity),
            role="reference",
            method="vanilla",
            path=rel,
            sha256=self.save_image(ref.image, rel),
            seed=ref.seed,
            width=ref.image.width,
            height=ref.image.height,
            entity=ref.entity,
            extra={"prompt": ref.prompt},
        )
        self.records.append(gen)
        return gen

    # resumption ---------------------------------------------------------------------------
    def finished_generations(self) -> dict[tuple[str, str, str | None], Generation]:
        """This process's finished images, keyed ``(role, sample_id, entity)``.

        An image counts as finished only if its file is inside the run and has the recorded
        SHA-256; anything else is generated again.
        """
        return {
            (gen.role, gen.sample_id, gen.entity): gen
            for gen in self.records.generations()
            if self.holds(gen)
        }

    def holds(self, gen: Generation) -> bool:
        """Whether the image of ``gen`` is in the run with its recorded SHA-256 (a link
        leading out of the run is not: the image is generated again, and the atomic write
        then replaces the link, not what it points at)."""
        image = self.root / gen.path
        inside = image.resolve().is_relative_to(self.root.resolve())
        return inside and image.exists() and sha256_file(image) == gen.sha256

    def share_from(self, source: RunDir, roles: Sequence[str] = ("vanilla", "reference")) -> int:
        """Take another run's finished images of ``roles`` into this run, with their records.

        Each file is hard-linked where the file system allows it, else copied, under the same
        relative path (a symbolic link would lead out of the run and not count as finished).
        Images this run already has are left alone, so sharing again after a crash or on a
        resume adds only what is missing.

        Args:
            source: The run whose images are taken (same samples, backbone and seeds).
            roles: Which images: by default the vanilla and the reference images, which do not
                depend on the method.

        Returns:
            How many images were taken.
        """
        mine = self.finished_generations()
        taken = 0
        for key, gen in source.finished_generations().items():
            if gen.role not in roles or key in mine:
                continue
            target = self.root / gen.path
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.share")
            tmp.unlink(missing_ok=True)
            try:
                os.link(source.root / gen.path, tmp)
            except OSError:  # another file system, or no hard links: copy
                shutil.copyfile(source.root / gen.path, tmp)
            os.replace(tmp, target)
            self.records.append(gen)
            taken += 1
        return taken

    def merge_shards(self, sample_ids: Sequence[str]) -> None:
        """Merge every rank's record files into the top-level ones, in ``sample_ids`` order."""
        order = {sample_id: i for i, sample_id in enumerate(sample_ids)}
        for name in _RECORD_FILES.values():
            rows: list[dict] = []
            for rank in range(self.shard.world):
                rows.extend(iter_jsonl(self.shard_dir(rank) / name))
            rows.sort(key=lambda row: order.get(row.get("sample_id"), len(order)))
            text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            atomic_write_bytes(self.root / name, text.encode("utf-8"))
