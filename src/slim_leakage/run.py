"""The main job: generate, judge and score a method on SLIM, resumably.

``evaluate(RunConfig(...))`` (or ``slim-eval run``) works in a run directory that is the unit of
resumption. Every image is written atomically and recorded as one JSON line as soon as it exists;
every verdict likewise. A re-run (after a crash or ``kill -9``) skips finished work, so it costs
nothing twice. A run refuses to continue with a different configuration, and one process at a
time may hold a run directory (a lock).

Under ``accelerate launch -m slim_leakage.cli run ...`` the samples are sharded by rank; each rank
writes its own shard files and rank 0 merges them and computes the metrics.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import io
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from ._config import check_range, config_hash
from ._io import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    iter_jsonl,
    repair_jsonl,
    sha256_bytes,
    sha256_file,
)
from .errors import (
    ConfigError,
    EntityNotFoundError,
    OutputWriteError,
    RunConfigMismatchError,
    RunError,
)
from .image_metrics import check_metric_names
from .records import Generation, RunMetrics, Sample, Verdict

MANIFEST_SCHEMA = 1
_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """A file-name-safe lowercase form of ``text`` ("blue jay" -> "blue-jay")."""
    out = _SLUG.sub("-", text.lower()).strip("-")
    return out or "x"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run (CLI > config file > these defaults).

    Attributes:
        out: The run directory (default ``runs/<method>-<backbone>-<config>``: see
            :attr:`out_dir`).
        method: Registered method name.
        method_args: Method options (validated against the method's config).
        backbone: Backbone preset.
        backbone_path: Local folder or hub id overriding the preset's weights.
        backbone_args: Generation-setting overrides (height, num_inference_steps, ...).
        device: Torch device (default: CUDA when available).
        dtype: ``float32``/``float16``/``bfloat16`` (default: the preset's on GPU, float32 on CPU).
        judge: Judge backend name, or ``none`` to generate only.
        judge_args: Judge options (model, base_url, concurrency, ...).
        config: SLIM config name, or a path to a samples ``.jsonl``/``.parquet``.
        limit: Evaluate only the first N samples.
        ids: Evaluate only these sample ids.
        batch_size: Images per pipeline call.
        references: Generate single-entity reference images for the judge.
        image_metrics: Image metrics to compute (names of ``image_metrics.IMAGE_METRICS``).
        allow_downloads: Let the image metrics fetch missing network weights (off: only the
            local torch hub cache is used, and a missing file is reported, not fetched).
        report: Write ``report.html`` at the end.
        progress: Show progress bars.
    """

    out: str | None = None
    method: str = "deleaker"
    method_args: dict = dataclasses.field(default_factory=dict)
    backbone: str = "toy"
    backbone_path: str | None = None
    backbone_args: dict = dataclasses.field(default_factory=dict)
    device: str | None = None
    dtype: str | None = None
    judge: str = "oracle"
    judge_args: dict = dataclasses.field(default_factory=dict)
    config: str = "toy-pairs"
    limit: int | None = None
    ids: tuple[str, ...] = ()
    batch_size: int = 4
    references: bool = True
    image_metrics: tuple[str, ...] = ("lpips", "kid")
    allow_downloads: bool = False
    report: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        check_range("run", "batch_size", self.batch_size, low=1)
        if self.limit is not None:
            check_range("run", "limit", self.limit, low=1)
        check_metric_names(self.image_metrics)

    @property
    def out_dir(self) -> Path:
        """The run directory: ``out``, else ``runs/<method>-<backbone>-<config>``.

        A samples file as ``config`` contributes its stem (``runs/deleaker-toy-mine`` for
        ``--config data/mine.jsonl``).
        """
        if self.out:
            return Path(self.out)
        config_name = Path(self.config).stem if "/" in self.config else self.config
        return Path("runs") / f"{self.method}-{self.backbone}-{config_name}"


# -- provenance ---------------------------------------------------------------------------------
#: errno values that mean "this folder cannot take more data" (full, read-only, forbidden).
_WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
)


def write_error(path: str | os.PathLike, exc: OSError) -> OutputWriteError:
    """The error for a failed write of ``path``: names the path, the reason and the fix."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = (
            "Free some disk space (or choose another --out directory), then run the same "
            "command again: finished work is kept."
        )
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = "Choose a writable directory (another --out), then run the same command again."
    else:
        hint = "Check the path and the disk, then run the same command again."
    return OutputWriteError(f"Cannot write {os.fspath(path)}: {reason}.", hint=hint)


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def library_versions() -> dict[str, str | None]:
    """Versions of Python and the libraries that shape the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "diffusers", "transformers", "datasets", "accelerate"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


#: Judge options that change how answers are fetched, never which answers: a run resumes with
#: other values (e.g. a lower concurrency after rate limits, or the cache on another disk).
_OPERATIONAL_JUDGE_ARGS = frozenset(
    {
        "cache_dir",
        "cache",
        "concurrency",
        "rpm",
        "tpm",
        "timeout",
        "max_retries",
        "backoff_base",
        "backoff_cap",
    }
)


def _secret_free(options: dict) -> dict:
    """Options without anything that looks like a credential (never written to disk)."""
    return {
        k: v
        for k, v in options.items()
        if not any(word in k.lower() for word in ("key", "token", "secret", "password"))
    }


# -- distributed ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Shard:
    """This process's place among ``world`` processes (from ``accelerate launch`` env vars)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> Shard:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
        return cls(rank=rank, world=world)

    def take(self, samples: Sequence[Sample]) -> list[Sample]:
        return list(samples[self.rank :: self.world])


class _Barrier:
    """A file-based barrier between ranks (no process group needed; works on CPU)."""

    def __init__(self, root: Path, shard: Shard, timeout: float = 24 * 3600) -> None:
        self.root = root
        self.shard = shard
        self.timeout = timeout

    def wait(self, name: str) -> None:
        if self.shard.world == 1:
            return
        flag = self.root / "shards" / f"{name}.rank-{self.shard.rank}.done"
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.write_text(str(os.getpid()))
        deadline = time.monotonic() + self.timeout
        while True:
            done = [
                (self.root / "shards" / f"{name}.rank-{r}.done").exists()
                for r in range(self.shard.world)
            ]
            if all(done):
                return
            if time.monotonic() > deadline:
                raise RunError(f"Timed out waiting for the other ranks at {name!r}.")
            time.sleep(0.2)


# -- the lock ------------------------------------------------------------------------------------
class RunLock:
    """An exclusive ``flock`` on ``DIR/.lock`` (released automatically if the process dies)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = None

    def __enter__(self) -> RunLock:
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+")
        except OSError as exc:
            raise write_error(self.path.parent, exc) from exc
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunError(
                f"The run directory {self.path.parent} is in use by {holder}.",
                hint="Wait for that run to finish, or use another --out directory.",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


# -- the run ------------------------------------------------------------------------------------
class Run:
    """One evaluation in one directory. Use :func:`evaluate` unless you need the pieces.

    Args:
        config: The run configuration.
        judge: A ready judge object (overrides ``config.judge``; used by tests and the API).
        log: Where progress lines go (default stderr).
    """

    def __init__(
        self, config: RunConfig, *, judge: Any = None, log: Callable[[str], None] | None = None
    ) -> None:
        self.config = config
        self.root = config.out_dir
        self.shard = Shard.from_env()
        self._judge = judge
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.method = None
        self.samples: list[Sample] = []
        self.backbone = None
        self._resolved = False

    # paths ----------------------------------------------------------------------------------
    def _records_dir(self) -> Path:
        if self.shard.world == 1:
            return self.root
        return self.root / "shards" / f"rank-{self.shard.rank}"

    @property
    def generations_path(self) -> Path:
        return self._records_dir() / "generations.jsonl"

    @property
    def judgements_path(self) -> Path:
        return self._records_dir() / "judgements.jsonl"

    @property
    def verdicts_path(self) -> Path:
        return self._records_dir() / "verdicts.jsonl"

    # resolution (cheap, before any weights load) ---------------------------------------------
    def resolve(self) -> None:
        """Validate the method, samples and judge before loading any weights.

        Done once: :meth:`execute` calls it, and a caller that resolved first (to print the
        sample count) does not pay for it twice.
        """
        if self._resolved:
            return
        from .methods import get_method
        from .slim import load_samples

        cfg = self.config
        self.method = get_method(cfg.method, **cfg.method_args)
        samples = load_samples(cfg.config, limit=cfg.limit, ids=list(cfg.ids) or None)
        if not samples:
            raise ConfigError(
                f"No samples selected from {cfg.config!r}.",
                hint="Check --ids / --limit, or `slim-eval ls configs`.",
            )
        _check_entities_in_prompts(samples)
        self.samples = samples
        preset = _check_backbone(cfg.backbone, cfg.backbone_args)
        # The preset knows its family: an unsupported pairing fails before any weights load.
        if hasattr(preset, "family"):
            self.method.check_backbone(preset)
        if self._judge is None and cfg.judge != "none":
            from .judge import get_judge

            self._judge = get_judge(cfg.judge, **cfg.judge_args)
        # A missing API key must fail now, not after hours of generation.
        check = getattr(getattr(self._judge, "backend", None), "check", None)
        if callable(check):
            check()
        self._resolved = True

    def judge_description(self) -> dict | None:
        if self._judge is None:
            return None
        describe = getattr(self._judge, "describe", None)
        return describe() if callable(describe) else {"backend": type(self._judge).__name__}

    def sample_ids_digest(self) -> str:
        """SHA-256 of the selected sample ids in order (which samples this run covers)."""
        return sha256_bytes("\n".join(s.id for s in self.samples).encode())

    def dataset_description(self) -> dict:
        from .slim import dataset_fingerprint

        try:
            fingerprint = dataset_fingerprint(self.config.config)
        except Exception:  # a user file without a fingerprint still runs
            fingerprint = None
        return {
            "config": self.config.config,
            "fingerprint": fingerprint,
            "n_samples": len(self.samples),
            "sample_ids_sha256": self.sample_ids_digest(),
        }

    def identity(self) -> dict:
        """The parts of the configuration that must not change on resume."""
        cfg = self.config
        return {
            "method": {"name": cfg.method, "config": self.method.config_dict()},
            "backbone": {
                "name": cfg.backbone,
                "path": cfg.backbone_path,
                "args": dict(sorted(cfg.backbone_args.items())),
                "dtype": cfg.dtype,
            },
            "judge": {
                "name": cfg.judge,
                "args": {
                    k: v
                    for k, v in _secret_free(dict(cfg.judge_args)).items()
                    if k not in _OPERATIONAL_JUDGE_ARGS
                },
            },
            "dataset": {
                "config": cfg.config,
                "sample_ids_sha256": self.sample_ids_digest(),
            },
            "references": cfg.references,
        }

    def _check_or_write_manifest(self) -> dict:
        path = self.root / "manifest.json"
        identity = self.identity()
        digest = config_hash(identity)
        if path.exists():
            manifest = json.loads(path.read_text())
            old = manifest.get("identity", {})
            if manifest.get("config_hash") != digest:
                diff = _dict_diff(old, identity)
                raise RunConfigMismatchError(
                    f"{self.root} holds a run with a different configuration: {diff}.",
                    hint="Resume with the original options, or choose a new --out directory.",
                )
            return manifest
        if self.shard.rank != 0:
            # rank 0 writes the manifest; wait for it
            deadline = time.monotonic() + 600
            while not path.exists():
                if time.monotonic() > deadline:
                    raise RunError("Rank 0 did not write the manifest.")
                time.sleep(0.2)
            return self._check_or_write_manifest()
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "package_version": __version__,
            "git_commit": _git_commit(),
            "versions": library_versions(),
            "identity": identity,
            "config_hash": digest,
            "method": identity["method"],
            "backbone": None,
            "dataset": self.dataset_description(),
            "judge": self.judge_description(),
            "seed_policy": "each image uses its sample's seed through its own torch.Generator",
            "cost": {},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, manifest)
        samples_path = self.root / "samples.jsonl"
        atomic_write_bytes(
            samples_path, "".join(s.to_json() + "\n" for s in self.samples).encode("utf-8")
        )
        return manifest

    # generation -------------------------------------------------------------------------------
    def _finished_generations(self) -> dict[tuple, Generation]:
        done: dict[tuple, Generation] = {}
        for row in iter_jsonl(self.generations_path):
            gen = Generation.from_dict(row)
            image = self.root / gen.path
            # a link leading out of the run is not a finished image: generate it again
            # (the atomic write then replaces the link, not what it points at)
            outside = not image.resolve().is_relative_to(self.root.resolve())
            if not outside and image.exists() and sha256_file(image) == gen.sha256:
                done[(gen.role, gen.sample_id, gen.entity)] = gen
        return done

    def _save(self, image, rel: str) -> str:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        data = buf.getvalue()
        atomic_write_bytes(self.root / rel, data)
        return sha256_bytes(data)

    def _generate_role(
        self, role: str, method, samples: list[Sample], done: dict, cost: dict
    ) -> None:
        from .progress import progress_bar

        todo = [s for s in samples if (role, s.id, None) not in done]
        if not todo:
            return
        name = method.name
        folder = "vanilla" if role == "vanilla" else slug(name)
        bs = self.config.batch_size
        with progress_bar(
            total=len(todo), desc=f"generate {role}", enabled=self.config.progress
        ) as bar:
            for start in range(0, len(todo), bs):
                batch = todo[start : start + bs]
                _reset_peak_memory(self.backbone.device)
                t0 = time.perf_counter()
                outputs = method.generate(self.backbone, batch)
                seconds = (time.perf_counter() - t0) / len(batch)
                peak = _peak_memory(self.backbone.device)
                _accumulate_cost(cost, role, seconds, len(batch), peak)
                for sample, output in zip(batch, outputs):
                    rel = f"images/{folder}/{slug(sample.id)}.png"
                    digest = self._save(output.image, rel)
                    extra = dict(output.extra)
                    if output.overlays:
                        extra["overlays"] = {
                            entity: f"images/masks/{slug(sample.id)}/{slug(entity)}.png"
                            for entity in output.overlays
                        }
                        for entity, overlay in output.overlays.items():
                            self._save(overlay, extra["overlays"][entity])
                    gen = Generation(
                        sample_id=sample.id,
                        role=role,
                        method=name,
                        path=rel,
                        sha256=digest,
                        seed=sample.seed,
                        width=output.image.width,
                        height=output.image.height,
                        seconds=round(seconds, 6),
                        peak_memory_bytes=peak,
                        extra=extra,
                    )
                    append_jsonl(self.generations_path, gen.to_json())
                    done[(role, sample.id, None)] = gen
                bar.update(len(batch))

    def _generate_references(self, samples: list[Sample], done: dict) -> None:
        from .progress import progress_bar
        from .reference_images import generate_references

        entities = sorted({e for s in samples for e in s.entities if _reference_key(e) not in done})
        if not entities:
            return
        with progress_bar(
            total=len(entities), desc="generate references", enabled=self.config.progress
        ) as bar:
            for batch in generate_references(
                self.backbone, entities, batch_size=self.config.batch_size
            ):
                for ref in batch:
                    rel = f"images/reference/{slug(ref.entity)}.png"
                    gen = Generation(
                        sample_id=_reference_key(ref.entity)[1],
                        role="reference",
                        method="vanilla",
                        path=rel,
                        sha256=self._save(ref.image, rel),
                        seed=ref.seed,
                        width=ref.image.width,
                        height=ref.image.height,
                        entity=ref.entity,
                        extra={"prompt": ref.prompt},
                    )
                    append_jsonl(self.generations_path, gen.to_json())
                    done[_reference_key(ref.entity)] = gen
                bar.update(len(batch))

    # judging ----------------------------------------------------------------------------------
    def _judge_pending(self, samples: list[Sample], done: dict) -> None:
        if self._judge is None:
            return
        from .records import StageResult

        finished = {row["sample_id"] for row in iter_jsonl(self.verdicts_path)}
        todo = [s for s in samples if s.id not in finished]
        if not todo:
            return
        item_cls = _judge_item_cls()
        method_name = self.method.name

        # A sample interrupted mid-judging is judged again on resume (its answers come from the
        # judge's cache); its stage records already on disk are not written twice.
        written = {
            (row.get("sample_id"), row.get("stage"), row.get("key"), row.get("order"))
            for row in iter_jsonl(self.judgements_path)
        }

        def on_stage(result: StageResult) -> None:
            ident = (result.sample_id, result.stage, result.key, result.order)
            if ident in written:
                return
            written.add(ident)
            append_jsonl(self.judgements_path, result.to_json())

        items = []
        for s in todo:
            refs = {
                e: self.root / done[_reference_key(e)].path
                for e in s.entities
                if _reference_key(e) in done
            }
            items.append(
                item_cls(
                    sample=s,
                    method=method_name,
                    vanilla_image=self.root / done[("vanilla", s.id, None)].path,
                    method_image=self.root / done[("method", s.id, None)].path,
                    reference_images=refs,
                )
            )

        def on_verdict(verdict: Verdict) -> None:
            append_jsonl(self.verdicts_path, verdict.to_json())

        # All pending items in one call, so the judge keeps its concurrency window full; each
        # verdict is appended the moment it exists. A judge without per-verdict callbacks
        # (a plain duck-typed object) gets its verdicts appended when it returns.
        import inspect

        from .progress import progress_enabled

        show = progress_enabled(self.config.progress)
        if "on_verdict" in inspect.signature(self._judge.judge).parameters:
            self._judge.judge(items, on_stage=on_stage, progress=show, on_verdict=on_verdict)
        else:
            for verdict in self._judge.judge(items, on_stage=on_stage, progress=show):
                on_verdict(verdict)

    # orchestration ----------------------------------------------------------------------------
    def execute(self) -> dict | None:
        """Run every step that is not finished yet; returns the metrics dict (rank 0).

        Raises:
            OutputWriteError: If the run directory cannot be written (full disk, read-only):
                finished files are kept and the same command resumes once there is room.
        """
        try:
            return self._execute()
        except OSError as exc:
            if isinstance(exc, OutputWriteError) or exc.errno not in _WRITE_ERRNOS:
                raise
            raise write_error(exc.filename or self.root, exc) from exc

    def _execute(self) -> dict | None:
        cfg = self.config
        self.resolve()
        lock_name = ".lock" if self.shard.world == 1 else f".lock.rank-{self.shard.rank}"
        with RunLock(self.root / lock_name):
            manifest = self._check_or_write_manifest()
            for path in (self.generations_path, self.judgements_path, self.verdicts_path):
                repair_jsonl(path)
            mine = self.shard.take(self.samples)
            done = self._finished_generations()
            cost: dict = {}
            needs_images = any(
                (role, s.id, None) not in done for s in mine for role in ("vanilla", "method")
            )
            needs_refs = cfg.references and any(
                _reference_key(e) not in done for s in mine for e in s.entities
            )
            if needs_images or needs_refs:
                from .backbones import load_backbone
                from .methods import get_method

                self.log(
                    f"loading backbone {cfg.backbone}"
                    + (f" from {cfg.backbone_path}" if cfg.backbone_path else "")
                )
                self.backbone = load_backbone(
                    cfg.backbone,
                    path=cfg.backbone_path,
                    device=cfg.device,
                    dtype=cfg.dtype,
                    **cfg.backbone_args,
                )
                self.method.prepare(self.backbone, mine)
                vanilla = get_method("vanilla")
                self._generate_role("vanilla", vanilla, mine, done, cost)
                self._generate_role("method", self.method, mine, done, cost)
                if cfg.references:
                    self._generate_references(mine, done)
            self._judge_pending(mine, done)
            _Barrier(self.root, self.shard).wait("judged")
            if self.shard.rank != 0:
                return None
            if self.shard.world > 1:
                self._merge_shards()
            return self._finish(manifest, cost)

    def _merge_shards(self) -> None:
        by_id = {s.id: i for i, s in enumerate(self.samples)}
        for name in ("generations.jsonl", "judgements.jsonl", "verdicts.jsonl"):
            rows: list[dict] = []
            for r in range(self.shard.world):
                rows.extend(iter_jsonl(self.root / "shards" / f"rank-{r}" / name))
            rows.sort(key=lambda row: by_id.get(row.get("sample_id"), len(by_id)))
            text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            atomic_write_bytes(self.root / name, text.encode("utf-8"))

    def _finish(self, manifest: dict, cost: dict) -> dict:
        from .image_metrics import compute_image_metrics
        from .metrics import aggregate

        verdicts = _unique_verdicts(self.root / "verdicts.jsonl")
        generations = {
            (g.role, g.sample_id): g
            for g in (Generation.from_dict(r) for r in iter_jsonl(self.root / "generations.jsonl"))
        }
        # cost: this invocation's measurement, else what an earlier invocation recorded
        old_cost = manifest.get("cost") or {}
        merged_cost = {**old_cost, **_cost_summary(cost)}
        if self.backbone is not None:
            manifest["backbone"] = self.backbone.describe()
        manifest["cost"] = merged_cost
        manifest["judge"] = self.judge_description() or manifest.get("judge")
        atomic_write_json(self.root / "manifest.json", manifest)

        pairs = [
            (
                self.root / generations[("vanilla", s.id)].path,
                self.root / generations[("method", s.id)].path,
            )
            for s in self.samples
            if ("vanilla", s.id) in generations and ("method", s.id) in generations
        ]
        image_figures = compute_image_metrics(
            pairs,
            metrics=self.config.image_metrics,
            prompts=[s.prompt for s in self.samples],
            allow_download=self.config.allow_downloads,
            log=self.log,
        )
        name = self.method.name
        labels = (
            aggregate(verdicts, self.samples, method=name)
            if verdicts
            else RunMetrics.unjudged(name, len(self.samples))
        )
        metrics = labels.with_run_figures(image_figures, merged_cost, judged=bool(verdicts))
        atomic_write_json(self.root / "metrics.json", metrics.to_dict())
        if self.config.report:
            from .report import write_report

            write_report(self.root)
        return metrics.to_dict()


def _check_backbone(name: str, overrides: dict):
    """Check the preset name and generation overrides without loading anything heavy.

    Done before the manifest is written: a typo must not leave a run directory behind that
    the corrected command would then refuse as "a different configuration".
    """
    from ._config import build_config
    from .backbones import BACKBONES, GenerationSettings

    preset = BACKBONES.get(name)
    defaults = getattr(preset, "settings", None)
    if isinstance(defaults, GenerationSettings):
        build_config(
            GenerationSettings,
            {**dataclasses.asdict(defaults), **overrides},
            owner=f"backbone {name}",
        )
    return preset


def _check_entities_in_prompts(samples: Sequence[Sample]) -> None:
    """Refuse a sample whose entity is not a whole word of its prompt (case-insensitive).

    A typo in a user's samples file ("zebra" for a prompt about a horse) would otherwise be
    generated and judged at full cost before anything noticed it.
    """
    for sample in samples:
        lowered = sample.prompt.lower()
        for entity in sample.entities:
            if not re.search(rf"(?<!\w){re.escape(entity.lower())}(?!\w)", lowered):
                raise EntityNotFoundError(
                    f"Sample {sample.id!r}: entity {entity!r} does not occur in its prompt "
                    f"{sample.prompt!r}.",
                    hint="Name each entity as it is written in the prompt (whole words), or "
                    "fix the samples file.",
                )


def _reference_key(entity: str) -> tuple[str, str, str]:
    """The key of an entity's reference image among finished generations.

    References are per entity, not per sample, so their records carry ``entity:<name>`` as
    sample id; the key matches ``(role, sample_id, entity)`` of every other generation.
    """
    return ("reference", f"entity:{entity}", entity)


def _judge_item_cls():
    from .judge import JudgeItem

    return JudgeItem


def _unique_verdicts(path: Path) -> list[Verdict]:
    # A crash between a verdict's append and the next one can never duplicate (we skip judged
    # samples), but merging shards or a hand-edited file could: keep the first per sample.
    seen: dict[str, Verdict] = {}
    for row in iter_jsonl(path):
        v = Verdict.from_dict(row)
        seen.setdefault(v.sample_id, v)
    return list(seen.values())


def _reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory(device: str) -> int | None:
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated(device))
    return None


def _accumulate_cost(cost: dict, role: str, seconds: float, n: int, peak: int | None) -> None:
    slot = cost.setdefault(role, {"seconds": 0.0, "images": 0, "peak_memory_bytes": None})
    slot["seconds"] += seconds * n
    slot["images"] += n
    if peak is not None:
        slot["peak_memory_bytes"] = max(peak, slot["peak_memory_bytes"] or 0)


def _cost_summary(cost: dict) -> dict:
    out = {}
    for role, slot in cost.items():
        out[role] = {
            "seconds_per_image": round(slot["seconds"] / max(slot["images"], 1), 6),
            "images_timed": slot["images"],
            "peak_memory_bytes": slot["peak_memory_bytes"],
        }
    return out


def _dict_diff(old: Any, new: Any, prefix: str = "") -> str:
    """A short human-readable difference between two nested dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        parts = []
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                parts.append(_dict_diff(old.get(key), new.get(key), f"{prefix}{key}."))
        return "; ".join(p for p in parts if p)
    return f"{prefix.rstrip('.')} was {old!r}, now {new!r}"


def evaluate(config: RunConfig | None = None, *, judge: Any = None, **options: Any) -> dict | None:
    """Generate, judge and score a method on SLIM (resumable); returns the metrics dict.

    Args:
        config: A :class:`RunConfig`; or pass its fields as keyword arguments.
        judge: A ready judge object (e.g. with a custom backend), overriding ``config.judge``.

    Example:
        >>> from slim_leakage import evaluate
        >>> metrics = evaluate(method="deleaker", backbone="flux-dev", judge="gemini",
        ...                    config="pairs", out="runs/deleaker-flux")  # doctest: +SKIP
    """
    if config is None:
        config = RunConfig(**options)
    elif options:
        config = dataclasses.replace(config, **options)
    return Run(config, judge=judge).execute()
