"""``hf-local`` with a tiny random LLaVA built in code, saved and loaded like a real model."""

from __future__ import annotations

import pytest

from slim_leakage.errors import ConfigError, ModelNotFoundError
from slim_leakage.judge import get_judge

from .conftest import build_items

pytest.importorskip("torch")
pytest.importorskip("transformers")


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


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


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
    from slim_leakage.judge.protocol import _load_image

    image = _load_image(items[0].vanilla_image, "vanilla", None, "")
    request = judge._request("typicality", "Rate it.", [image], {"title": "typicality"}, {})
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
