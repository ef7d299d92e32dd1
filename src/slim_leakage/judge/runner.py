"""The judge: runs a pipeline of stages over items, through one backend.

For each item the runner loads the images, then runs the pipeline's stages in order. A stage
fans out by its scope (once for the sample, once per image, or once per presentation order of
the two images, ``ab`` then ``ba``); each unit's questions go to the backend together through
the :class:`~slim_leakage.judge.asking.Asker` (cache, limits, retries, repair), and the stage
concludes one :class:`~slim_leakage.records.StageResult` per unit from the answers. A unit
whose answer failed gets a record with the error, and the item a ``Verdict`` with
``label=None`` and that error: counted, never dropped, never guessed. Otherwise the deciding
stage labels the verdict and every stage adds its figures to its scores.

What the stages ask and mean lives in :mod:`slim_leakage.judge.stages`; nothing here depends
on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import sys
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._config import build_config
from ..errors import ConfigError, UsageError
from ..records import Sample, StageResult, Verdict
from .asking import Asker
from .backends.base import Backend, BackendRequest
from .config import JudgeConfig
from .images import check_image, load_image
from .limits import ITEM_ORDER
from .models import notice as model_notice
from .protocol import JudgeItem, JudgeStats, LeakageCheck
from .stages import PROTOCOL, Ask, Pipeline, Stage, Unit


def _joined(models: Iterable[str | None]) -> str | None:
    """The distinct model names, sorted and joined by ``,`` (``None`` when there are none)."""
    names = sorted({m for m in models if m})
    return ",".join(names) or None


def _print_notice(line: str) -> None:
    print(f"judge: {line}", file=sys.stderr, flush=True)


def _run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _together(coros: Sequence[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Await ``coros`` concurrently (a lone one directly, as its own step of the caller).

    If one raises (a quota that stopped the run), the others are cancelled and awaited before
    the error goes on, so no request is left running after its judge call has ended.
    """
    if len(coros) == 1:
        return [await coros[0]]
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _units(stage: Stage, subject: Unit) -> list[Unit]:
    sample, refs = subject.sample, subject.references
    if stage.scope == "sample":
        return [subject]
    if stage.scope == "image":
        return [Unit(sample, (image,), refs) for image in subject.images]
    first, second = subject.images
    return [Unit(sample, (first, second), refs, "ab"), Unit(sample, (second, first), refs, "ba")]


def _key(stage: Stage, unit: Unit) -> str:
    """Where a unit's value goes in the stage's value dict: the image role or the order."""
    return unit.image.role if stage.scope == "image" else str(unit.order)


class Judge:
    """A judge: one backend behind a pipeline of stages, a cache and request limits.

    Args:
        backend: The backend answering the questions.
        config: Backend-independent options (:class:`JudgeConfig`); or give them as keywords.
        pipeline: The stages to run (default :data:`~slim_leakage.judge.stages.PROTOCOL`).
        notify: Called with each one-line notice (an unknown, preview or retiring model; another
            model answering than the one requested); by default printed to stderr.
    """

    def __init__(
        self,
        backend: Backend,
        config: JudgeConfig | None = None,
        *,
        pipeline: Pipeline | None = None,
        notify: Callable[[str], None] | None = None,
        **options: Any,
    ) -> None:
        if config is not None and options:
            raise ConfigError("Judge: pass either a JudgeConfig or options, not both.")
        self.config = config or build_config(JudgeConfig, options, owner="judge")
        self.backend = backend
        self.pipeline = pipeline or PROTOCOL
        self.stats = JudgeStats()
        self.notify = notify or _print_notice
        self._announced = False
        self._asker = Asker(backend, self.config, self.stats, notify=lambda m: self.notify(m))
        self.decoding = self._asker.decoding
        self.cache = self._asker.cache
        self.limiter = self._asker.limiter

    # -- the judge contract -------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``backend/model-id``."""
        return f"{self.backend.name}/{self.backend.model}"

    def check(self) -> None:
        """Fail now if the backend cannot answer (missing SDK, API key or model)."""
        check = getattr(self.backend, "check", None)
        if callable(check):
            check()

    def describe(self) -> dict[str, Any]:
        """Backend, model id, prompt versions and decoding parameters (for manifests).

        Once the judge has answers (asked now or from the cache), ``served_models`` lists the
        models the API named as having answered them, next to the requested ``model_id``, and
        ``served_model_id`` joins them with ``,``.
        """
        out = {
            **self.backend.describe(),
            "prompt_versions": self.pipeline.prompt_versions(),
            "decoding": self.decoding.to_dict(),
        }
        served = sorted(self._asker.served | set(self.stats.served_models))
        if served:
            out["served_models"] = served
            # One string, as the stage records join several (what a leaderboard pin checks).
            out["served_model_id"] = _joined(served)
        return out

    def _announce(self) -> None:
        """Say once what is worth knowing about the model before any request."""
        if self._announced:
            return
        self._announced = True
        spec = self.backend.spec
        line = None if spec is None else model_notice(spec)
        if line:
            self.notify(line)

    def judge(
        self,
        items: Iterable[JudgeItem],
        on_stage: Callable[[StageResult], None] | None = None,
        progress: bool = True,
        on_verdict: Callable[[Verdict], None] | None = None,
    ) -> list[Verdict]:
        """Judge every item; one :class:`~slim_leakage.records.Verdict` per item, in order.

        Args:
            items: The comparisons to judge.
            on_stage: Called with each stage result as soon as it exists.
            progress: Show a progress bar with an ETA on stderr.
            on_verdict: Called with each verdict as soon as it exists (in completion order),
                so a caller can persist it before the rest are done.

        Raises:
            UsageError: Before any request, if an item is malformed or an image is missing.
        """
        items = list(items)
        for item in items:
            self._check_item(item)
        if not items:
            return []
        self.check()
        self._announce()
        return _run_sync(self._judge_all(items, on_stage, progress, on_verdict))

    def check_leakage(
        self,
        items: Sequence[tuple[Sample, Path, Mapping[str, Path]]],
        progress: bool = False,
    ) -> list[LeakageCheck]:
        """Whether each single image leaks (the pipeline up to its checking stage).

        Args:
            items: ``(sample, image, reference_images)`` triples.
            progress: Show a progress bar.
        """
        triples = [(s, Path(p), {k: Path(v) for k, v in (r or {}).items()}) for s, p, r in items]
        for sample, image, refs in triples:
            self._check_paths(sample, {"image": image}, refs)
        if not triples:
            return []
        self.check()
        self._announce()
        return _run_sync(self._check_all(triples, progress))

    def use_run_dir(self, folder: str | Path) -> None:
        """Keep what must outlive this process in ``folder`` (a run directory): the ids of
        the batches submitted in batch mode, so a killed run resumes by polling them."""
        if self._asker.batcher is not None:
            from ..rundir import BATCHES, BatchBook

            self._asker.batcher.use_book(BatchBook(Path(folder) / BATCHES))

    @property
    def batcher(self):
        """The batcher of ``batch=true``, else ``None``."""
        return self._asker.batcher

    def close(self) -> None:
        """Close the cache."""
        self._asker.close()

    # -- validation -----------------------------------------------------------------------------
    def _check_item(self, item: JudgeItem) -> None:
        if not isinstance(item, JudgeItem):
            raise UsageError(
                f"Judge.judge() takes JudgeItem objects, got {type(item).__name__}.",
                hint="Build items with slim_leakage.judge.JudgeItem(sample, method, ...).",
            )
        self._check_paths(
            item.sample,
            {"vanilla": Path(item.vanilla_image), "method": Path(item.method_image)},
            {k: Path(v) for k, v in item.reference_images.items()},
        )

    @staticmethod
    def _check_paths(sample: Sample, images: dict[str, Path], refs: dict[str, Path]) -> None:
        if len(sample.entities) < 2:
            raise UsageError(
                f"Sample {sample.id!r} has {len(sample.entities)} entity; leakage needs two or more.",
                hint="Judge only pair and triplet samples.",
            )
        unknown = sorted(set(refs) - set(sample.entities))
        if unknown:
            raise UsageError(
                f"Sample {sample.id!r} has a reference image for {unknown[0]!r}, which is not "
                f"one of its entities {list(sample.entities)!r}.",
                hint="Key reference images by the sample's entity names.",
            )
        for role, path in [*images.items(), *((f"reference {e}", p) for e, p in refs.items())]:
            if not path.is_file():
                raise UsageError(
                    f"The {role} image of sample {sample.id!r} does not exist: {str(path)!r}.",
                    hint="Generate the images first, or fix the path.",
                )
            check_image(path)

    # -- the pipeline ---------------------------------------------------------------------------
    def _subject(self, sample: Sample, images: dict[str, Path], refs: Mapping[str, Path]) -> Unit:
        return Unit(
            sample=sample,
            images=tuple(load_image(Path(path), role) for role, path in images.items()),
            references=tuple(
                load_image(Path(refs[e]), "reference", e) for e in sample.entities if e in refs
            ),
        )

    def _request(self, ask: Ask, unit: Unit) -> BackendRequest:
        question, sample = ask.question, unit.sample
        context: dict[str, Any] = {
            "sample_id": sample.id,
            "prompt": sample.prompt,
            "entities": list(sample.entities),
            "stage": question.name,
        }
        if unit.order is not None:
            context["order"] = unit.order
        about = ask.images if ask.about is None else ask.about
        context["images"] = [image.describe() for image in about]
        context["inputs"] = dict(ask.inputs)
        return self._asker.request(
            question,
            question.render(ask.fields),
            ask.images,
            question.schema(sample.entities),
            context,
        )

    async def _run_unit(
        self, stage: Stage, unit: Unit, values: Mapping[str, Any]
    ) -> tuple[Any, StageResult]:
        asks = stage.ask(unit, values)
        entities = unit.sample.entities
        answers = await _together(
            [self._asker.ask(self._request(a, unit), a.question, entities) for a in asks]
        )
        errors = [a.error for a in answers if a.error]
        key = (
            answers[0].key
            if len(answers) == 1
            else hashlib.sha256("".join(a.key for a in answers).encode()).hexdigest()
        )
        value, output = (
            (None, {})
            if errors
            else stage.conclude(unit, values, [a.output for a in answers if a.output is not None])
        )
        record = StageResult(
            sample_id=unit.sample.id,
            stage=stage.name,
            version=stage.version,
            key=key,
            output=output,
            order=unit.order,
            error="; ".join(errors) or None,
            calls=sum(a.calls for a in answers),
            served_model=_joined(a.served_model for a in answers),
            input_tokens=sum(a.spent.input_tokens for a in answers),
            output_tokens=sum(a.spent.output_tokens for a in answers),
            thinking_tokens=sum(a.spent.thinking_tokens for a in answers),
            cost_usd=round(sum(a.spent.cost_usd for a in answers), 9),
        )
        return value, record

    async def _run_stages(
        self,
        stages: Sequence[Stage],
        subject: Unit,
        emit: Callable[[StageResult], None],
    ) -> tuple[dict[str, Any], str | None]:
        """Every stage in order; the values so far and the first failed stage's error."""
        values: dict[str, Any] = {}
        for stage in stages:
            units = _units(stage, subject)
            outcomes = await _together([self._run_unit(stage, unit, values) for unit in units])
            for _, record in outcomes:
                emit(record)
            errors = [record.error for _, record in outcomes if record.error]
            if errors:
                return values, "; ".join(errors)
            if stage.scope == "sample":
                values[stage.name] = outcomes[0][0]
            else:
                values[stage.name] = {
                    _key(stage, unit): value for unit, (value, _) in zip(units, outcomes)
                }
        return values, None

    async def _judge_one(self, item: JudgeItem, emit: Callable[[StageResult], None]) -> Verdict:
        sample = item.sample
        subject = self._subject(
            sample,
            {"vanilla": item.vanilla_image, "method": item.method_image},
            item.reference_images,
        )
        served: list[str | None] = []

        def keep(record: StageResult) -> None:
            served.extend((record.served_model or "").split(",") if record.served_model else [])
            emit(record)

        values, error = await self._run_stages(self.pipeline.stages, subject, keep)
        if error:
            return Verdict(
                sample_id=sample.id,
                method=item.method,
                label=None,
                error=error,
                judge=self.name,
                served_model=_joined(served),
            )
        decider = self.pipeline.stage(self.pipeline.decides)
        label, flip, rationale = decider.decide(values[decider.name])
        scores: dict[str, Any] = {}
        for stage in self.pipeline.stages:
            scores.update(stage.scores(values[stage.name]))
        return Verdict(
            sample_id=sample.id,
            method=item.method,
            label=label,
            order_flip=flip,
            rationale=rationale,
            judge=self.name,
            scores=scores,
            served_model=_joined(served),
        )

    async def _check_one(self, sample: Sample, image: Path, refs: dict[str, Path]) -> LeakageCheck:
        subject = self._subject(sample, {"image": image}, refs)
        stages = self.pipeline.single_image_stages()
        values, error = await self._run_stages(stages, subject, lambda result: None)
        if error:
            return LeakageCheck(sample.id, None, error)
        leaky, scores = stages[-1].leaks(values[stages[-1].name])
        return LeakageCheck(sample.id, leaky, None, scores)

    # -- many items -----------------------------------------------------------------------------
    async def _run_window(
        self, n: int, make: Callable[[int], Coroutine], progress: bool, unit: str
    ) -> list[Any]:
        from tqdm.auto import tqdm

        results: list[Any] = [None] * n
        # Enough items in flight to keep every request slot busy, few enough that items finish
        # (and their results are written) steadily instead of all at the end.
        window = asyncio.Semaphore(max(2, 2 * self.config.concurrency))
        bar = tqdm(total=n, unit=unit, disable=not progress, desc=f"judge {self.name}")

        failed = 0

        async def one(i: int) -> None:
            nonlocal failed
            async with window:
                ITEM_ORDER.set(i)  # this task's own context: its requests queue as item i
                results[i] = await make(i)
            failed += getattr(results[i], "error", None) is not None
            bar.update(1)
            bar.set_postfix(
                calls=self.stats.calls, cached=self.stats.cache_hits, errors=failed, refresh=False
            )

        waited_before = self.limiter.waited_s
        try:
            await _together([one(i) for i in range(n)])
        finally:
            self.stats.waited_s += self.limiter.waited_s - waited_before
            bar.close()
            await self._asker.finish()
        return results

    async def _judge_all(self, items, on_stage, progress, on_verdict=None) -> list[Verdict]:
        emit = on_stage or (lambda result: None)

        async def one(i: int) -> Verdict:
            verdict = await self._judge_one(items[i], emit)
            if on_verdict is not None:
                on_verdict(verdict)
            return verdict

        verdicts = await self._run_window(len(items), one, progress, "item")
        for v in verdicts:
            self.stats.judged += 1
            self.stats.errors += v.label is None
            self.stats.order_flips += v.order_flip
        return verdicts

    async def _check_all(self, items, progress) -> list[LeakageCheck]:
        return await self._run_window(
            len(items), lambda i: self._check_one(*items[i]), progress, "image"
        )
