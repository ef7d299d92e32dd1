"""The judge protocol: extraction -> typicality -> ranking, through the cache and the limits.

For one item (a sample, the vanilla image and a method's image of the same prompt and seed):

1. **extraction**: distinguishing features of every entity, once from the prompt alone and once
   from single-entity reference images; merged into one list per entity.
2. **typicality**: each image is rated on its own, blind to which image it is, so the vanilla
   image's rating is shared (cached) by every method judged against it.
3. **ranking**: from the two typicality reports, which image leaks less and by how much, asked
   in both presentation orders; orders that disagree on the direction give ``no-change`` and
   count as an order flip.

A malformed answer is retried once with a repair prompt; if that fails too, the sample gets a
``Verdict`` with ``label=None`` and the error (counted, never dropped, never guessed).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import mimetypes
import random
from collections.abc import Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any

from .._config import build_config, check_range
from ..errors import ConfigError, JudgeError, JudgeParseError, UsageError
from ..records import Sample, StageResult, Verdict
from . import pricing
from .backends.base import (
    Backend,
    BackendRequest,
    BackendResponse,
    Decoding,
    ImageInput,
    TransientBackendError,
)
from .cache import AnswerCache, default_cache_dir, request_key
from .limits import RateLimiter, backoff_delay
from .stages import (
    REPAIR_VERSION,
    STAGES,
    combine_orders,
    entity_list,
    extraction_schema,
    feature_block,
    is_leaky,
    merge_features,
    prompt_versions,
    ranking_label,
    ranking_schema,
    render,
    report_text,
    typicality_schema,
)


@dataclasses.dataclass(frozen=True)
class JudgeItem:
    """One comparison to judge.

    Attributes:
        sample: The SLIM sample (prompt and entities).
        method: The method that made ``method_image``.
        vanilla_image: The vanilla image of the same prompt and seed.
        method_image: The method's image.
        reference_images: Entity -> single-entity reference image (may be partial or empty;
            extraction then relies on the prompt alone for the missing entities).
    """

    sample: Sample
    method: str
    vanilla_image: Path
    method_image: Path
    reference_images: dict[str, Path] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class LeakageCheck:
    """Whether one image leaks (used by the SLIM verifier).

    Attributes:
        sample_id: The sample checked.
        leaky: ``True`` when an entity shows another entity's features, ``None`` on error.
        error: Why no answer could be given, else ``None``.
        scores: Typicality and borrowed features per entity.
    """

    sample_id: str
    leaky: bool | None
    error: str | None = None
    scores: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class JudgeConfig:
    """Judge options that do not depend on the backend.

    Attributes:
        cache_dir: Folder of the answer cache (default ``$SLIM_CACHE_DIR`` or
            ``~/.cache/slim-leakage``).
        cache: Use the cache (off only for measurements).
        concurrency: Requests in flight at once.
        rpm: Requests-per-minute budget (``None``: unlimited).
        tpm: Tokens-per-minute budget (``None``: unlimited).
        timeout: Seconds one request may take before it is retried.
        max_retries: Retries of a transient failure (429, 5xx, timeout, dropped connection).
        backoff_base: First backoff delay in seconds (doubles per retry, with jitter).
        backoff_cap: Longest backoff delay in seconds.
        temperature: Sampling temperature (0: greedy where the API allows it).
        max_output_tokens: Answer token limit.
        seed: Sampling seed passed to APIs that accept one.
    """

    cache_dir: str | None = None
    cache: bool = True
    concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 120.0
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    temperature: float = 0.0
    max_output_tokens: int = 1024
    seed: int | None = 0

    def __post_init__(self) -> None:
        check_range("judge", "concurrency", self.concurrency, low=1, high=1024)
        check_range("judge", "timeout", self.timeout, low=0, low_open=True)
        check_range("judge", "max_retries", self.max_retries, low=0, high=100)
        check_range("judge", "backoff_base", self.backoff_base, low=0)
        check_range("judge", "backoff_cap", self.backoff_cap, low=0)
        check_range("judge", "temperature", self.temperature, low=0, high=2)
        check_range("judge", "max_output_tokens", self.max_output_tokens, low=1)
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None:
                check_range("judge", name, value, low=0, low_open=True)


@dataclasses.dataclass
class JudgeStats:
    """Counters of one judge (cumulative over its ``judge``/``check_leakage`` calls).

    Attributes:
        calls: Backend calls made (retries and repairs included).
        cache_hits: Requests answered from the cache.
        shared: Requests answered by an identical request already in flight.
        retries: Transient failures retried.
        repairs: Malformed answers sent back once with a repair prompt.
        failed_requests: Requests that failed for good.
        judged: Items judged (verdicts returned).
        errors: Items whose verdict is a judge error.
        order_flips: Items whose two ranking orders disagreed.
        input_tokens: Input tokens reported (or estimated) for the calls made.
        output_tokens: Output tokens reported (or estimated).
        cost_usd: Price of those tokens from the pricing table.
        priced: Whether the model is in the pricing table.
        waited_s: Seconds the request queue was held for rate budgets or ``Retry-After``.
    """

    calls: int = 0
    cache_hits: int = 0
    shared: int = 0
    retries: int = 0
    repairs: int = 0
    failed_requests: int = 0
    judged: int = 0
    errors: int = 0
    order_flips: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    priced: bool = True
    waited_s: float = 0.0

    @property
    def order_flip_rate(self) -> float | None:
        """Order flips per labelled item (``None`` before any label)."""
        labelled = self.judged - self.errors
        return None if labelled <= 0 else self.order_flips / labelled

    def to_dict(self) -> dict[str, Any]:
        """The counters as a JSON-compatible dict (with ``order_flip_rate``)."""
        out = dataclasses.asdict(self)
        out["order_flip_rate"] = self.order_flip_rate
        out["cost_usd"] = round(self.cost_usd, 6)
        out["waited_s"] = round(self.waited_s, 3)
        return out


@dataclasses.dataclass
class _Answer:
    output: dict | None
    error: str | None
    calls: int
    key: str


def _load_image(path: Path, role: str, entity: str | None, label: str) -> ImageInput:
    from PIL import Image

    data = path.read_bytes()
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    with Image.open(path) as im:
        width, height = im.size
    return ImageInput(
        data=data,
        mime=mime,
        sha256=hashlib.sha256(data).hexdigest(),
        role=role,
        entity=entity,
        label=label,
        width=width,
        height=height,
    )


def _run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class Judge:
    """A judge: one backend behind the protocol, a cache and request limits.

    Args:
        backend: The backend answering the questions.
        config: Backend-independent options (:class:`JudgeConfig`); or give them as keywords.
    """

    def __init__(self, backend: Backend, config: JudgeConfig | None = None, **options: Any):
        if config is not None and options:
            raise ConfigError("Judge: pass either a JudgeConfig or options, not both.")
        self.config = config or build_config(JudgeConfig, options, owner="judge")
        self.backend = backend
        cfg = self.config
        self.decoding = Decoding(cfg.temperature, cfg.max_output_tokens, cfg.seed)
        cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
        self.cache = AnswerCache(cache_dir / "judge-cache.sqlite3" if cfg.cache else None)
        self.limiter = RateLimiter(cfg.concurrency, cfg.rpm, cfg.tpm)
        self.stats = JudgeStats()
        self._family = pricing.token_family(backend.name, backend.model)
        self._inflight: dict[str, asyncio.Future] = {}
        self._rng = random.Random(0)

    # -- public -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``backend/model-id``."""
        return f"{self.backend.name}/{self.backend.model}"

    def describe(self) -> dict[str, Any]:
        """Backend, model id, prompt versions and decoding parameters (for manifests)."""
        return {
            **self.backend.describe(),
            "prompt_versions": prompt_versions(),
            "decoding": self.decoding.to_dict(),
        }

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
        self._check_backend()
        return _run_sync(self._judge_all(items, on_stage, progress, on_verdict))

    def check_leakage(
        self, items: Sequence[tuple[Sample, Path, dict[str, Path]]], progress: bool = False
    ) -> list[LeakageCheck]:
        """Whether each single image leaks (extraction + typicality on that one image).

        Args:
            items: ``(sample, image, reference_images)`` triples.
            progress: Show a progress bar.
        """
        items = [(s, Path(p), {k: Path(v) for k, v in (r or {}).items()}) for s, p, r in items]
        for sample, image, refs in items:
            self._check_paths(sample, {"image": image}, refs)
        if not items:
            return []
        self._check_backend()
        return _run_sync(self._check_all(items, progress))

    def close(self) -> None:
        """Close the cache."""
        self.cache.close()

    # -- validation -------------------------------------------------------------------------
    def _check_backend(self) -> None:
        check = getattr(self.backend, "check", None)
        if callable(check):
            check()

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

    # -- the engine ---------------------------------------------------------------------------
    def _request(
        self, stage: str, text: str, images: Sequence[ImageInput], schema: dict, context: dict
    ) -> BackendRequest:
        version = STAGES[stage].version
        key = request_key(
            backend=self.backend.name,
            model=self.backend.model,
            stage=stage,
            version=version,
            text=text,
            schema=schema,
            image_sha256s=[im.sha256 for im in images],
            image_labels=[im.label for im in images],
            decoding=self.decoding.to_dict(),
        )
        return BackendRequest(
            stage=stage,
            version=version,
            text=text,
            images=tuple(images),
            schema=schema,
            decoding=self.decoding,
            context=context,
            key=key,
        )

    def _estimate(self, request: BackendRequest) -> int:
        sizes = [(im.width or 512, im.height or 512) for im in request.images]
        return pricing.request_tokens(request.text, sizes, family=self._family)

    async def _ask(self, request: BackendRequest, entities: Sequence[str]) -> _Answer:
        spec = STAGES[request.stage]
        hit = self.cache.get(request.key)
        if hit is not None:
            try:
                output = spec.parse(hit["text"], entities)
            except JudgeParseError:
                pass  # a stored answer that no longer parses is asked again
            else:
                self.stats.cache_hits += 1
                return _Answer(output, None, 0, request.key)
        pending = self._inflight.get(request.key)
        if pending is not None:
            self.stats.shared += 1
            answer = await asyncio.shield(pending)
            return dataclasses.replace(answer, calls=0)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[request.key] = future
        try:
            answer = await self._ask_backend(request, spec, entities)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: joiners re-raise it themselves
            raise
        finally:
            self._inflight.pop(request.key, None)
        future.set_result(answer)
        return answer

    async def _ask_backend(self, request, spec, entities) -> _Answer:
        response, calls, error = await self._send(request)
        if error is not None:
            return _Answer(None, error, calls, request.key)
        try:
            output = spec.parse(response.text, entities)
        except JudgeParseError as exc:
            problem = exc.message
        else:
            self._store(request, response)
            return _Answer(output, None, calls, request.key)
        self.stats.repairs += 1
        repair = dataclasses.replace(
            request,
            stage=f"{request.stage}+repair",
            text=request.text
            + render("repair", REPAIR_VERSION, problem=problem, previous=response.text[:4000]),
        )
        response2, more, error = await self._send(repair)
        calls += more
        if error is not None:
            self.stats.failed_requests += 1
            return _Answer(
                None,
                f"{request.stage}: unusable answer ({problem}); the repair request failed: {error}",
                calls,
                request.key,
            )
        try:
            output = spec.parse(response2.text, entities)
        except JudgeParseError as exc:
            self.stats.failed_requests += 1
            return _Answer(
                None,
                f"{request.stage}: unusable answer after one repair: {exc.message}",
                calls,
                request.key,
            )
        self._store(request, response2)
        return _Answer(output, None, calls, request.key)

    def _store(self, request: BackendRequest, response: BackendResponse) -> None:
        self.cache.put(
            request.key,
            backend=self.backend.name,
            model=self.backend.model,
            stage=request.stage,
            version=request.version,
            text=response.text,
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
        )

    async def _send(
        self, request: BackendRequest
    ) -> tuple[BackendResponse | None, int, str | None]:
        cfg = self.config
        estimate = self._estimate(request)
        attempts = 0
        last: Exception | None = None
        for attempt in range(cfg.max_retries + 1):
            await self.limiter.acquire(estimate)
            actual = None
            try:
                attempts += 1
                self.stats.calls += 1
                responses = await asyncio.wait_for(self.backend.complete([request]), cfg.timeout)
                if not isinstance(responses, list) or len(responses) != 1:
                    raise JudgeError(
                        f"backend {self.backend.name!r} returned {len(responses)} answers "
                        "for 1 request (it must return one per request)."
                    )
                response = responses[0]
                actual = self._account(request, response, estimate)
                return response, attempts, None
            except TransientBackendError as exc:
                last = exc
                if exc.status == 429 and exc.retry_after:
                    self.limiter.pause(exc.retry_after)
            except asyncio.TimeoutError:
                last = TransientBackendError(f"no answer within {cfg.timeout:g} s")
            except JudgeError as exc:
                self.stats.failed_requests += 1
                return None, attempts, f"{request.stage}: {exc.message}"
            except Exception as exc:  # a backend bug fails this request, not the whole run
                self.stats.failed_requests += 1
                return None, attempts, f"{request.stage}: {type(exc).__name__}: {exc}"
            finally:
                self.limiter.release(estimate, actual)
            if attempt < cfg.max_retries:
                self.stats.retries += 1
                retry_after = getattr(last, "retry_after", None)
                delay = (
                    retry_after
                    if retry_after is not None
                    else backoff_delay(
                        attempt, base=cfg.backoff_base, cap=cfg.backoff_cap, rng=self._rng
                    )
                )
                await asyncio.sleep(delay)
        self.stats.failed_requests += 1
        return None, attempts, f"{request.stage}: gave up after {attempts} attempts: {last}"

    def _account(self, request: BackendRequest, response: BackendResponse, estimate: int) -> int:
        tin = response.input_tokens if response.input_tokens is not None else estimate
        tout = (
            response.output_tokens
            if response.output_tokens is not None
            else pricing.text_tokens(response.text)
        )
        self.stats.input_tokens += tin
        self.stats.output_tokens += tout
        cost, priced = pricing.cost_usd(self.backend.name, self.backend.model, tin, tout)
        self.stats.cost_usd += cost
        self.stats.priced = self.stats.priced and priced
        return tin + tout

    # -- stages ---------------------------------------------------------------------------------
    async def _extraction(
        self, sample: Sample, refs: dict[str, Path]
    ) -> tuple[dict | None, str | None, StageResult]:
        entities = sample.entities
        base = {"sample_id": sample.id, "prompt": sample.prompt, "entities": list(entities)}
        text_stage = "extraction-text"
        text_req = self._request(
            text_stage,
            render(
                text_stage,
                STAGES[text_stage].version,
                prompt=sample.prompt,
                entity_list=entity_list(entities),
            ),
            [],
            extraction_schema(text_stage, entities),
            {**base, "stage": text_stage, "images": [], "inputs": {}},
        )
        jobs = [self._ask(text_req, entities)]
        ref_entities = [e for e in entities if e in refs]
        if ref_entities:
            stage = "extraction-images"
            images = [
                _load_image(Path(refs[e]), "reference", e, f"Reference image {i} ({e})")
                for i, e in enumerate(ref_entities, 1)
            ]
            text = render(
                stage,
                STAGES[stage].version,
                prompt=sample.prompt,
                entity_list=entity_list(entities),
                reference_list=", ".join(
                    f'reference image {i} shows "{e}"' for i, e in enumerate(ref_entities, 1)
                ),
            )
            img_req = self._request(
                stage,
                text,
                images,
                extraction_schema(stage, entities),
                {**base, "stage": stage, "images": [im.describe() for im in images], "inputs": {}},
            )
            jobs.append(self._ask(img_req, entities))
        answers = await asyncio.gather(*jobs)
        errors = [a.error for a in answers if a.error]
        key = (
            answers[0].key
            if len(answers) == 1
            else hashlib.sha256("".join(a.key for a in answers).encode()).hexdigest()
        )
        from_prompt = answers[0].output["features"] if answers[0].output else None
        from_images = (
            answers[1].output["features"] if len(answers) > 1 and answers[1].output else None
        )
        features = None if errors else merge_features(entities, from_prompt, from_images)
        result = StageResult(
            sample_id=sample.id,
            stage="extraction",
            version=STAGES[text_stage].version,
            key=key,
            output={}
            if errors
            else {
                "from_prompt": from_prompt,
                "from_images": from_images,
                "features": features,
            },
            error="; ".join(errors) or None,
            calls=sum(a.calls for a in answers),
        )
        return features, result.error, result

    async def _typicality(
        self, sample: Sample, features: dict, image: ImageInput, role: str
    ) -> tuple[dict | None, StageResult]:
        stage = "typicality"
        image = dataclasses.replace(image, role=role, label="Image")
        text = render(
            stage,
            STAGES[stage].version,
            prompt=sample.prompt,
            entity_list=entity_list(sample.entities),
            feature_block=feature_block(features),
        )
        request = self._request(
            stage,
            text,
            [image],
            typicality_schema(sample.entities),
            {
                "sample_id": sample.id,
                "prompt": sample.prompt,
                "entities": list(sample.entities),
                "stage": stage,
                "images": [image.describe()],
                "inputs": {"features": features},
            },
        )
        answer = await self._ask(request, sample.entities)
        result = StageResult(
            sample_id=sample.id,
            stage=stage,
            version=request.version,
            key=answer.key,
            output={} if answer.output is None else {"image": role, **answer.output},
            error=answer.error,
            calls=answer.calls,
        )
        return answer.output, result

    async def _ranking(
        self, sample: Sample, report_1: dict, report_2: dict, order: str, images: list[dict]
    ) -> tuple[dict | None, StageResult]:
        stage = "ranking"
        text = render(
            stage,
            STAGES[stage].version,
            prompt=sample.prompt,
            entity_list=entity_list(sample.entities),
            report_1=report_text(report_1),
            report_2=report_text(report_2),
        )
        request = self._request(
            stage,
            text,
            [],
            ranking_schema(),
            {
                "sample_id": sample.id,
                "prompt": sample.prompt,
                "entities": list(sample.entities),
                "stage": stage,
                "order": order,
                "images": images,
                "inputs": {"image1": report_1, "image2": report_2},
            },
        )
        answer = await self._ask(request, sample.entities)
        output = (
            None
            if answer.output is None
            else {
                **answer.output,
                "label": ranking_label(answer.output, order),
            }
        )
        result = StageResult(
            sample_id=sample.id,
            stage=stage,
            version=request.version,
            key=answer.key,
            output=output or {},
            order=order,
            error=answer.error,
            calls=answer.calls,
        )
        return output, result

    async def _judge_one(self, item: JudgeItem, emit: Callable[[StageResult], None]) -> Verdict:
        sample = item.sample

        def fail(error: str) -> Verdict:
            return Verdict(
                sample_id=sample.id, method=item.method, label=None, error=error, judge=self.name
            )

        features, error, result = await self._extraction(sample, dict(item.reference_images))
        emit(result)
        if error:
            return fail(error)
        vanilla = _load_image(Path(item.vanilla_image), "vanilla", None, "Image")
        method = _load_image(Path(item.method_image), "method", None, "Image")
        (rep_v, res_v), (rep_m, res_m) = await asyncio.gather(
            self._typicality(sample, features, vanilla, "vanilla"),
            self._typicality(sample, features, method, "method"),
        )
        emit(res_v)
        emit(res_m)
        if rep_v is None or rep_m is None:
            return fail("; ".join(r.error for r in (res_v, res_m) if r.error))
        described = [
            dataclasses.replace(vanilla, label="Image 1").describe(),
            dataclasses.replace(method, label="Image 2").describe(),
        ]
        swapped = [dict(described[1], label="Image 1"), dict(described[0], label="Image 2")]
        (rank_ab, res_ab), (rank_ba, res_ba) = await asyncio.gather(
            self._ranking(sample, rep_v, rep_m, "ab", described),
            self._ranking(sample, rep_m, rep_v, "ba", swapped),
        )
        emit(res_ab)
        emit(res_ba)
        if rank_ab is None or rank_ba is None:
            return fail("; ".join(r.error for r in (res_ab, res_ba) if r.error))
        label, flip = combine_orders(rank_ab["label"], rank_ba["label"])
        scores = {
            "typicality": {
                "vanilla": {e: r["typicality"] for e, r in rep_v["entities"].items()},
                "method": {e: r["typicality"] for e, r in rep_m["entities"].items()},
            },
            "borrowed": {
                "vanilla": {e: len(r["borrowed_features"]) for e, r in rep_v["entities"].items()},
                "method": {e: len(r["borrowed_features"]) for e, r in rep_m["entities"].items()},
            },
            "orders": {"ab": rank_ab["label"], "ba": rank_ba["label"]},
        }
        return Verdict(
            sample_id=sample.id,
            method=item.method,
            label=label,
            order_flip=flip,
            rationale=rank_ab["reason"]
            if not flip
            else (
                f"orders disagree: {rank_ab['label']} (vanilla first) vs "
                f"{rank_ba['label']} (method first)"
            ),
            judge=self.name,
            scores=scores,
        )

    async def _run_window(
        self, n: int, make: Callable[[int], Coroutine], progress: bool, unit: str
    ):
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
                results[i] = await make(i)
            failed += getattr(results[i], "error", None) is not None
            bar.update(1)
            bar.set_postfix(
                calls=self.stats.calls, cached=self.stats.cache_hits, errors=failed, refresh=False
            )

        waited_before = self.limiter.waited_s
        try:
            await asyncio.gather(*(one(i) for i in range(n)))
        finally:
            self.stats.waited_s += self.limiter.waited_s - waited_before
            bar.close()
            self.limiter.reset_loop()
            self._inflight.clear()
            await self.backend.aclose()
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

    async def _check_one(self, sample: Sample, image: Path, refs: dict[str, Path]) -> LeakageCheck:
        features, error, _ = await self._extraction(sample, refs)
        if error:
            return LeakageCheck(sample.id, None, error)
        im = _load_image(image, "image", None, "Image")
        report, result = await self._typicality(sample, features, im, "image")
        if report is None:
            return LeakageCheck(sample.id, None, result.error)
        scores = {
            "typicality": {e: r["typicality"] for e, r in report["entities"].items()},
            "borrowed_features": {e: r["borrowed_features"] for e, r in report["entities"].items()},
            "present": {e: r["present"] for e, r in report["entities"].items()},
        }
        return LeakageCheck(sample.id, is_leaky(report), None, scores)

    async def _check_all(self, items, progress) -> list[LeakageCheck]:
        return await self._run_window(
            len(items), lambda i: self._check_one(*items[i]), progress, "image"
        )
