"""Judge test helpers: small images on disk, and an in-process scripted backend."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from pathlib import Path

import pytest

from slim_leakage.judge import JUDGES, JudgeItem
from slim_leakage.judge.backends.base import Backend, BackendResponse, TransientBackendError
from slim_leakage.judge.testing import RecordedRequest, default_answer
from slim_leakage.records import Sample


def _png(path: Path, seed: int, size: int = 16) -> Path:
    from PIL import Image

    colour = (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def build_items(root: Path, n: int, *, method: str = "m", refs: bool = True) -> list[JudgeItem]:
    """``n`` pair items with distinct vanilla, method and reference images under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        sample = Sample(
            id=f"s{i}",
            prompt=f"a cat and a cheetah, scene {i}",
            entities=("cat", "cheetah"),
            seed=i,
        )
        references = {}
        if refs:
            references = {
                e: _png(root / f"{i}-ref-{e}.png", 1000 + 2 * i + k)
                for k, e in enumerate(sample.entities)
            }
        items.append(
            JudgeItem(
                sample=sample,
                method=method,
                vanilla_image=_png(root / f"{i}-vanilla.png", 3 * i + 1),
                method_image=_png(root / f"{i}-{method}.png", 3 * i + 2),
                reference_images=references,
            )
        )
    return items


@pytest.fixture
def items(tmp_path):
    return build_items(tmp_path / "images", 4)


class FakeBackend(Backend):
    """Answers like the local server's default, with per-stage scripted overrides.

    ``script[stage]`` is a queue of texts or exceptions consumed by requests of that stage.
    """

    name = "fake"
    default_model = "fake-1"
    options = {}

    def __init__(self, model=None, **options):
        super().__init__(model, **options)
        self.script: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.requests = []
        self.answer: Callable | None = None
        self.delay = 0.0

    def push(self, stage: str, *replies) -> None:
        self.script[stage].extend(replies)

    async def complete(self, requests):
        out = []
        for request in requests:
            self.requests.append(request)
            if self.delay:
                await asyncio.sleep(self.delay)
            queue = self.script.get(request.stage)
            if queue:
                reply = queue.popleft()
                if isinstance(reply, BaseException):
                    raise reply
                out.append(BackendResponse(text=reply, input_tokens=10, output_tokens=5))
                continue
            recorded = RecordedRequest(
                protocol="fake",
                path="",
                model=self.model,
                stage=request.stage,
                text=request.text,
                images=tuple(im.sha256 for im in request.images),
                schema=request.schema,
                body={},
                has_auth=False,
            )
            text = self.answer(request) if self.answer else None
            out.append(
                BackendResponse(
                    text=text or default_answer(recorded), input_tokens=10, output_tokens=5
                )
            )
        return out

    def count(self, stage: str | None = None) -> int:
        return sum(1 for r in self.requests if stage is None or r.stage == stage)


@pytest.fixture
def fake_backend():
    return FakeBackend()


@pytest.fixture
def make_judge(tmp_path, fake_backend):
    from slim_leakage.judge import Judge

    def _make(**options):
        options.setdefault("cache_dir", str(tmp_path / "cache"))
        options.setdefault("backoff_base", 0.01)
        return Judge(fake_backend, **options)

    return _make


__all__ = ["FakeBackend", "TransientBackendError", "build_items", "JUDGES"]
