"""Judge test helpers: small images on disk, an in-process scripted backend, a tiny local VLM."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from pathlib import Path

import pytest

from slim_leakage.judge import JUDGES, PROTOCOL, JudgeItem
from slim_leakage.judge.backends.base import Backend, BackendResponse, TransientBackendError
from slim_leakage.judge.testing import default_answer
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

    ``script[stage]`` is a queue of texts or exceptions consumed by requests of that stage;
    other requests get their question's local answer (questions of ``self.pipeline``).
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
        self.pipeline = PROTOCOL

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
            text = self.answer(request) if self.answer else None
            text = text or default_answer(request, self.pipeline)
            out.append(BackendResponse(text=text, input_tokens=10, output_tokens=5))
        return out

    def count(self, stage: str | None = None) -> int:
        return sum(1 for r in self.requests if stage is None or r.stage == stage)


def build_tiny_vlm(folder):
    """A 1-layer LLaVA (CLIP vision + Llama text) with a byte-level tokenizer, saved to folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for special in ("<s>", "</s>", "<pad>", "<image>"):
        vocab[special] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    template = (
        "{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
        "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %}"
        "{% if add_generation_prompt %}\nANSWER:{% endif %}"
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
        ),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        chat_template=template,
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=16,
            patch_size=8,
            projection_dim=16,
        ),
        text_config=LlamaConfig(
            vocab_size=len(vocab),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=8192,
            bos_token_id=vocab["<s>"],
            eos_token_id=vocab["</s>"],
            pad_token_id=vocab["<pad>"],
        ),
        image_token_index=vocab["<image>"],
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory):
    """A tiny random LLaVA folder (its answers never parse), built once per session."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


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
