"""``hf-local`` with a tiny random LLaVA built in code, saved and loaded like a real model."""

from __future__ import annotations

import pytest

from slim_leakage.errors import ConfigError, ModelNotFoundError
from slim_leakage.judge import get_judge

from .conftest import build_items

pytest.importorskip("torch")
pytest.importorskip("transformers")


def test_hf_local_answers_like_a_direct_generate_call(tiny_vlm, tmp_path):
    import asyncio

    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    judge = get_judge(
        "hf-local",
        model=str(tiny_vlm),
        device="cpu",
        max_output_tokens=6,
        cache_dir=str(tmp_path / "c"),
    )
    items = build_items(tmp_path / "img", 1)
    from slim_leakage.judge.backends.base import BackendRequest
    from slim_leakage.judge.runner import load_image

    image = load_image(items[0].vanilla_image, "vanilla")
    request = BackendRequest(
        stage="typicality",
        version="v1",
        text="Rate it.",
        images=(image,),
        schema={"title": "typicality"},
        decoding=judge.decoding,
    )
    answer = asyncio.run(judge.backend.complete([request]))[0]

    # The reference: the same template and greedy decoding, called by hand.
    processor = AutoProcessor.from_pretrained(tiny_vlm)
    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm).eval()
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Rate it."}, {"type": "image"}]}
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(
        text=[text], images=[Image.open(items[0].vanilla_image).convert("RGB")], return_tensors="pt"
    )
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    expected = processor.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert answer.text == expected
    assert answer.output_tokens == 6 and answer.input_tokens == inputs["input_ids"].shape[1]


def test_hf_local_garbage_answers_become_recorded_judge_errors(tiny_vlm, tmp_path):
    judge = get_judge(
        "hf-local",
        model=str(tiny_vlm),
        device="cpu",
        max_output_tokens=4,
        cache_dir=str(tmp_path / "c"),
    )
    verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert verdicts[0].label is None and "unusable answer after one repair" in verdicts[0].error
    # Both extraction questions and their repairs were asked; nothing was cached.
    assert judge.stats.calls == 4 and judge.stats.repairs == 2 and len(judge.cache) == 0


def test_hf_local_bad_model_and_options(tmp_path):
    with pytest.raises(ConfigError, match="dtype"):
        get_judge("hf-local", dtype="int3", cache_dir=str(tmp_path))
    judge = get_judge("hf-local", model=str(tmp_path / "missing"), cache_dir=str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="cannot load"):
        judge.judge(build_items(tmp_path / "img", 1), progress=False)
