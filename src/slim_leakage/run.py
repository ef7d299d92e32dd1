"""The main job: generate, judge and score a method on SLIM, resumably.

``evaluate(RunConfig(...))`` (or ``slim-eval run``) works in a run directory that is the unit of
resumption (its files and how they are written: :mod:`slim_leakage.rundir`). Every image is
written atomically and recorded as one JSON line as soon as it exists; every verdict likewise.
A re-run (after a crash or ``kill -9``) skips finished work, so it costs nothing twice. A run
refuses to continue with a different configuration, and one process at a time may hold a run
directory (a lock).

Under ``accelerate launch -m slim_leakage.cli run ...`` the samples are sharded by rank; each rank
writes its own shard files and rank 0 merges them and computes the metrics.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._config import check_range, typed_fields
from ._io import sha256_bytes
from .errors import ConfigError, OutputWriteError, RunError
from .image_metrics import check_metric_names
from .records import RunMetrics, Sample, StageResult, Verdict
from .rundir import SEED_POLICY, WRITE_ERRNOS, RunDir, Shard, shared_refs, write_error
from .rundir import processes as procs
from .rundir.extend import resume_note

#: The weight dtypes a run takes.
DTYPES = ("float32", "float16", "bfloat16")


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
        device: Torch device: ``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``xpu`` (default: CUDA
            when available; under a launcher each process takes ``cuda:LOCAL_RANK``).
        share_gpus: Under a launcher, allow more processes than visible GPUs (shared GPUs).
        dtype: ``float32``/``float16``/``bfloat16`` (default: the preset's on GPU, float32 on CPU).
        judge: Judge backend name, or ``none`` to generate only.
        judge_args: Judge options (model, base_url, concurrency, ...).
        config: SLIM config name, or a path to a samples ``.jsonl``/``.parquet``.
        limit: Evaluate only the first N samples.
        ids: Evaluate only these sample ids (``None``: every sample; an empty selection is
            refused, never read as "all").
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
    share_gpus: bool = False
    dtype: str | None = None
    judge: str = "oracle"
    judge_args: dict = dataclasses.field(default_factory=dict)
    config: str = "toy-pairs"
    limit: int | None = None
    ids: tuple[str, ...] | None = None
    batch_size: int = 4
    references: bool = True
    image_metrics: tuple[str, ...] = ("lpips", "kid")
    allow_downloads: bool = False
    report: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        # Paths may be Path objects; every value must then be of its field's type (not coerced).
        for name in ("out", "config", "backbone_path"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, name, os.fspath(value))
        for name, value in typed_fields(self, owner="run").items():
            object.__setattr__(self, name, value)
        check_range("run", "batch_size", self.batch_size, low=1)
        if self.limit is not None:
            check_range("run", "limit", self.limit, low=1)
        if self.ids is not None and not self.ids:
            raise ConfigError(
                "The selection of sample ids is empty, so no sample would run.",
                hint="Give --ids a,b (or @FILE with one id per line), or leave --ids out to run "
                "every sample of the config.",
            )
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ConfigError(
                f"run: dtype={self.dtype!r} is not one of {', '.join(DTYPES)}.",
                hint="Give dtype as float32, float16 or bfloat16 (or leave it out).",
            )
        if self.judge == "none" and self.judge_args:
            raise ConfigError(
                f"Judge options ({', '.join(sorted(self.judge_args))}) were given, but the judge "
                "is 'none'.",
                hint="Leave out --judge-arg, or choose a judge with --judge.",
            )
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


# -- the judge -----------------------------------------------------------------------------------
def _resumable_judge_args(args: dict) -> dict:
    """The judge options that define the answers: what a resumed run must repeat.

    Credentials are never written; operational options (concurrency, cache, timeouts ...) may
    change between invocations.
    """
    from .judge import operational_options

    operational = operational_options()
    return {k: v for k, v in _secret_free(args).items() if k not in operational}


def _secret_free(options: dict) -> dict:
    """Options without anything that looks like a credential (never written to disk)."""
    return {
        k: v
        for k, v in options.items()
        if not any(word in k.lower() for word in ("key", "token", "secret", "password"))
    }


# -- the run ------------------------------------------------------------------------------------
class Run:
    """One evaluation in one directory. Use :func:`evaluate` unless you need the pieces.

    The steps: :meth:`resolve` (validate everything, load nothing heavy), then :meth:`execute`:
    generate the vanilla and method images and the references, judge, and finish (manifest,
    image metrics, ``metrics.json``, report). Each step skips what the directory already holds.

    Args:
        config: The run configuration.
        judge: A ready judge object (overrides ``config.judge``; used by tests and the API).
        log: Where progress lines go (default stderr).
        backbone: A callable returning the loaded backbone of ``config``, called only if an
            image is missing (a sweep shares one backbone between its runs); default: load it.
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        judge: Any = None,
        log: Callable[[str], None] | None = None,
        backbone: Callable[[], Any] | None = None,
    ) -> None:
        self.config = config
        self.dir = RunDir(config.out_dir, Shard.from_env())
        self._judge = judge
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.method = None
        self.samples: list[Sample] = []
        self.backbone = None
        self._load_backbone = backbone
        self._resolved = False
        self.placement = procs.Placement()

    # resolution (cheap, before any weights load) ---------------------------------------------
    def resolve(self) -> None:
        """Check the whole request before the run directory is written or any weights load.

        Every check runs (:mod:`slim_leakage.preflight`): the output folder, the method and
        its options, the backbone, its settings, path and device, the samples (their ids and
        the files they name, their entities) and the judge (its options, key and server), and
        every problem found is reported at once. Done once: :meth:`execute` calls it, and a
        caller that resolved first (to print the sample count) does not pay for it twice.

        Raises:
            SlimError: The problem found, or :class:`~slim_leakage.errors.Problems` listing
                several, one line each with its fix.
        """
        if self._resolved:
            return
        from . import preflight
        from .judge.protocol import require_judge
        from .methods import get_method
        from .slim import load_samples

        cfg = self.config
        check = preflight.Preflight()
        check.attempt(preflight.check_out_dir, self.dir.root)
        self.method = check.attempt(get_method, cfg.method, **cfg.method_args)
        # each process of a launcher takes its own GPU before its memory is planned
        place = check.attempt(procs.place_process, cfg.device, share_gpus=cfg.share_gpus)
        self.placement = place or self.placement
        preset, memory = check.attempt(
            preflight.check_backbone,
            cfg.backbone,
            cfg.backbone_args,
            place and place.device,
            cfg.dtype,
        ) or (None, None)
        # The preset knows its family: an unsupported pairing fails before any weights load.
        if self.method is not None and hasattr(preset, "family"):
            check.attempt(self.method.check_backbone, preset)
        check.attempt(preflight.check_backbone_path, cfg.backbone_path)
        check.attempt(preflight.check_device, cfg.device)
        ids = list(cfg.ids) if cfg.ids is not None else None
        samples = check.attempt(load_samples, cfg.config, limit=cfg.limit, ids=ids)
        if samples is not None:
            check.add(preflight.sample_checks(samples, cfg.config))
            self.samples = samples
        if self._judge is None and cfg.judge != "none":
            from .judge import get_judge

            self._judge = check.attempt(get_judge, cfg.judge, **cfg.judge_args)
        if self._judge is not None:
            # A missing key or a server that is down must fail now, not after hours of work.
            check.attempt(lambda: require_judge(self._judge).check())
        check.add(preflight.request_checks(self.method, preset, cfg, self._judge, self.samples))
        check.finish()
        if memory is not None and (memory.estimate is not None or memory.offload != "none"):
            # the memory setting (chosen or checked) is said before anything heavy happens
            self.log(memory.summary(cfg.backbone))
        self._resolved = True

    def sample_ids_digest(self) -> str:
        """SHA-256 of the selected sample ids in order (which samples this run covers)."""
        return sha256_bytes("\n".join(s.id for s in self.samples).encode())

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
                "args": _resumable_judge_args(dict(cfg.judge_args)),
            },
            "dataset": {
                "config": cfg.config,
                "sample_ids_sha256": self.sample_ids_digest(),
            },
            "references": cfg.references,
        }

    def _describe(self) -> dict:
        """The manifest fields of a new run besides provenance and identity."""
        from .slim import dataset_fingerprint

        try:
            fingerprint = dataset_fingerprint(self.config.config)
        except Exception:  # a user file without a fingerprint still runs
            fingerprint = None
        return {
            "method": self.identity()["method"],
            "backbone": None,
            "dataset": {
                "config": self.config.config,
                "fingerprint": fingerprint,
                "n_samples": len(self.samples),
                "sample_ids_sha256": self.sample_ids_digest(),
            },
            "judge": self._judge.describe() if self._judge is not None else None,
            "seed_policy": SEED_POLICY,
            "cost": {},
        }

    # orchestration ----------------------------------------------------------------------------
    def execute(self) -> dict | None:
        """Run every step that is not finished yet; returns the metrics dict (rank 0).

        Raises:
            OutputWriteError: If the run directory cannot be written (finished files are kept).
        """
        try:
            return self._execute()
        except OSError as exc:
            if isinstance(exc, OutputWriteError) or exc.errno not in WRITE_ERRNOS:
                raise
            raise write_error(exc.filename or self.dir.root, exc) from exc

    def _execute(self) -> dict | None:
        self.resolve()
        run = self.dir
        with run.lock():
            manifest = run.open_manifest(
                self.identity(), samples=self.samples, describe=self._describe
            )
            run.records.repair()
            mine = run.shard.take(self.samples)
            done = run.finished_generations()
            resume_note(run, self.samples, done, self.log)  # says what a resume keeps
            share = self._reference_share(done)  # several ranks: the references this one draws
            if self._missing_images(mine, done) or share:
                self._generate(mine, done, share)
            self._gather_references(mine, done)
            self._judge_pending(mine, done)
            run.record_process(self._process_record())
            run.wait_for_ranks("judged")
            if run.shard.rank != 0:
                return None
            if run.shard.world > 1:
                run.merge_shards([s.id for s in self.samples])
            return self._finish(manifest)

    # generation -------------------------------------------------------------------------------
    def _missing_images(self, samples: list[Sample], done: dict) -> bool:
        if any((role, s.id, None) not in done for s in samples for role in ("vanilla", "method")):
            return True
        return self._one_rank_references(samples, done) != []

    def _one_rank_references(self, samples: list[Sample], done: dict) -> list[str]:
        """One process: the missing references of ``samples``, drawn after its images."""
        if not self.config.references or self.dir.shard.world > 1:
            return []
        return sorted(e for e in _entities(samples) if _reference_key(e) not in done)

    def _reference_share(self, done: dict) -> list[str]:
        """Several ranks: the missing references this one draws first (``done`` takes the
        others' recorded ones; :mod:`slim_leakage.rundir.shared_refs`)."""
        if not self.config.references or self.dir.shard.world == 1:
            return []
        return shared_refs.share(self.dir, _entities(self.samples), done)

    def _gather_references(self, samples: list[Sample], done: dict) -> None:
        """Several ranks: wait for the references of ``samples`` the others draw; draw here
        whatever did not come."""
        if self.config.references and self.dir.shard.world > 1:
            everyone = _entities(self.samples)
            left = shared_refs.gather(self.dir, _entities(samples), everyone, done, self.log)
            if left:
                self._generate([], done, left)

    def _generate(self, samples: list[Sample], done: dict, share: Sequence[str] = ()) -> None:
        """Load the backbone and make every missing vanilla, method and reference image
        (``share``: references drawn first, for other ranks that wait for them)."""
        from .backbones import load_backbone
        from .methods import get_method
        from .progress import library_output, progress_enabled

        cfg = self.config
        if self.backbone is None and self._load_backbone is None:
            self.log(
                f"loading backbone {cfg.backbone}"
                + (f" from {cfg.backbone_path}" if cfg.backbone_path else "")
            )
        with library_output(progress=progress_enabled(cfg.progress), note=self.log):
            if self.backbone is None:
                self.backbone = (
                    self._load_backbone()
                    if self._load_backbone is not None
                    else load_backbone(
                        cfg.backbone,
                        path=cfg.backbone_path,
                        device=self.placement.device,
                        dtype=cfg.dtype,
                        **cfg.backbone_args,
                    )
                )
                # the run draws its own bars per image; the pipeline's bar per denoising loop
                # would only interleave with them
                configure = getattr(self.backbone.pipe, "set_progress_bar_config", None)
                if callable(configure):
                    configure(disable=True)
            self._generate_references(share, done)
            if samples:
                self.method.prepare(self.backbone, samples)
                self._generate_role("vanilla", get_method("vanilla"), samples, done)
                self._generate_role("method", self.method, samples, done)
            self._generate_references(self._one_rank_references(samples, done), done)

    def _generate_role(self, role: str, method, samples: list[Sample], done: dict) -> None:
        from .progress import progress_bar

        todo = [s for s in samples if (role, s.id, None) not in done]
        if not todo:
            return
        run, bs = self.dir, self.config.batch_size
        with progress_bar(
            total=len(todo), desc=f"generate {role}", enabled=self.config.progress
        ) as bar:
            for start in range(0, len(todo), bs):
                batch = todo[start : start + bs]
                procs.reset_peak_memory(self.backbone.device)
                t0 = time.perf_counter()
                outputs = method.generate(self.backbone, batch)
                # each image's record keeps its timing, so the cost survives a resume
                seconds = (time.perf_counter() - t0) / len(batch)
                peak = procs.peak_memory(self.backbone.device)
                for sample, output in zip(batch, outputs):
                    done[(role, sample.id, None)] = run.save_generation(
                        sample, role, method.name, output, seconds=seconds, peak_memory_bytes=peak
                    )
                bar.update(len(batch))

    def _generate_references(self, entities: Sequence[str], done: dict) -> None:
        from .progress import progress_bar
        from .reference_images import generate_references

        entities = [e for e in entities if _reference_key(e) not in done]
        if not entities:
            return
        with progress_bar(
            total=len(entities), desc="generate references", enabled=self.config.progress
        ) as bar:
            for batch in generate_references(
                self.backbone, entities, batch_size=self.config.batch_size
            ):
                for ref in batch:
                    done[_reference_key(ref.entity)] = self.dir.save_reference(ref)
                bar.update(len(batch))

    # judging ----------------------------------------------------------------------------------
    def _judge_pending(self, samples: list[Sample], done: dict) -> None:
        if self._judge is None:
            return
        from .progress import progress_enabled

        records = self.dir.records
        # A judge error is not a result: a resume asks again (the newest verdict counts).
        finished = {v.sample_id for v in records.verdicts() if v.label is not None}
        todo = [s for s in samples if s.id not in finished]
        if not todo:
            return
        # A sample interrupted mid-judging is judged again on resume (its answers come from the
        # judge's cache); its stage records already on disk are not written twice.
        written = {
            (r.sample_id, r.stage, r.key, r.order) for r in records.judgements() if r.error is None
        }

        def on_stage(result: StageResult) -> None:
            ident = (result.sample_id, result.stage, result.key, result.order)
            if ident in written:
                return
            if result.error is None:
                written.add(ident)
            records.append(result)

        from .judge import JudgeItem

        root = self.dir.root
        items = [
            JudgeItem(
                sample=s,
                method=self.method.name,
                vanilla_image=root / done[("vanilla", s.id, None)].path,
                method_image=root / done[("method", s.id, None)].path,
                reference_images={
                    e: root / done[_reference_key(e)].path
                    for e in s.entities
                    if _reference_key(e) in done
                },
            )
            for s in todo
        ]
        # Batch ids live beside the records (one book per rank), so a killed run polls them.
        keep = getattr(self._judge, "use_run_dir", None)
        if callable(keep):
            keep(records.folder)
        # All pending items in one call (a full concurrency window); verdicts appended at once.
        self._judge.judge(
            items,
            on_stage=on_stage,
            on_verdict=records.append,
            progress=progress_enabled(self.config.progress),
        )

    def _process_record(self) -> dict:
        loaded = self.backbone.device if self.backbone is not None else None
        gpu = procs.device_name(self.placement.device or loaded)
        return self.placement.describe(loaded, gpu=gpu)

    # the end ----------------------------------------------------------------------------------
    def _finish(self, manifest: dict) -> dict:
        """Complete the manifest, compute the image metrics, write metrics.json and the report.

        Raises:
            RunError: After writing everything, if the judge labelled no sample at all (every
                judgement failed), with the first error as the cause.
        """
        from .image_metrics import compute_image_metrics
        from .leakage_stage import with_leakage
        from .metrics import aggregate, cost_summary, judge_usage

        run = self.dir
        verdicts = run.merged.unique_verdicts()
        generations = {(g.role, g.sample_id): g for g in run.merged.generations()}
        cost = cost_summary(generations.values(), [s.id for s in self.samples])
        if (stages := run.merged.judgements()) or self._judge is not None:
            cost["judge"] = judge_usage(stages)
        if self.backbone is not None:
            manifest["backbone"] = self.backbone.describe()
        manifest["cost"] = cost
        manifest["processes"] = run.processes(self._process_record())
        manifest["judge"] = (
            self._judge.describe() if self._judge is not None else manifest.get("judge")
        )
        run.write_manifest(manifest)

        def image(role: str, sample: Sample) -> Path:
            return run.root / generations[(role, sample.id)].path

        drawn = [
            s
            for s in self.samples
            if ("vanilla", s.id) in generations and ("method", s.id) in generations
        ]  # the prompts stay aligned with the pairs when a sample has no image
        image_figures = compute_image_metrics(
            [(image("vanilla", s), image("method", s)) for s in drawn],
            metrics=self.config.image_metrics,
            prompts=[s.prompt for s in drawn],
            allow_download=self.config.allow_downloads,
            log=self.log,
        )
        name = self.method.name
        labels = (
            aggregate(verdicts, self.samples, method=name)
            if verdicts
            else RunMetrics.unjudged(name, len(self.samples))
        )
        metrics = labels.with_run_figures(image_figures, cost, judged=bool(verdicts))
        metrics = with_leakage(self, metrics, self._judge if verdicts else None)
        run.write_metrics(metrics)
        if self.config.report:
            from .report import write_report

            write_report(run.root)
        _refuse_all_failed(verdicts, run.root)
        return metrics.to_dict()


def _refuse_all_failed(verdicts: Sequence[Verdict], root: Path) -> None:
    """Raise if the judge gave verdicts but labelled none: the run measured nothing."""
    if not verdicts or any(v.label is not None for v in verdicts):
        return
    first = verdicts[0]
    cause = first.error if len(first.error or "") <= 300 else first.error[:297] + "..."
    raise RunError(
        f"Every judgement of this run failed ({len(verdicts)} sample(s), none labelled); the "
        f"first error, for sample {first.sample_id!r}: {cause}",
        hint=f"Fix the cause, then run the same command again: the images in {root} are "
        "kept, and samples with a judge error are judged again.",
    )


_reference_key = shared_refs.key  # an entity's reference among finished generations


def _entities(samples: Sequence[Sample]) -> set[str]:
    return {e for s in samples for e in s.entities}


def evaluate(config: RunConfig | None = None, *, judge: Any = None, **options: Any) -> dict | None:
    """Generate, judge and score a method on SLIM (resumable); returns the metrics dict.

    Args:
        config: A :class:`RunConfig`; or pass its fields as keyword arguments.
        judge: A ready judge object (e.g. with a custom backend), overriding ``config.judge``.
        **options: :class:`RunConfig` fields; ``backbone`` may also be a loaded ``Backbone``
            or a diffusers pipeline (see :func:`slim_leakage.ready.ready_run`, with an example).
    """
    from .ready import ready_run

    return ready_run(Run, RunConfig, config, judge=judge, **options).execute()
