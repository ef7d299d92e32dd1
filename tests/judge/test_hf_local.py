"""``hf-local`` with a tiny random LLaVA built in code, saved and loaded like a real model."""

from __future__ import annotations

import json

import pytest

from slim_leakage.errors import ConfigError, MissingDependencyError, ModelNotFoundError
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
        constrained="off",
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
        constrained="off",
        cache_dir=str(tmp_path / "c"),
    )
    verdicts = judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert verdicts[0].label is None and "unusable answer after one repair" in verdicts[0].error
    # Both extraction questions and their repairs were asked; nothing was cached.
    assert judge.stats.calls == 4 and judge.stats.repairs == 2 and len(judge.cache) == 0


def test_hf_local_bad_model_and_options(tmp_path):
    with pytest.raises(ConfigError, match="dtype"):
        get_judge("hf-local", dtype="int3", cache_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="constrained"):
        get_judge("hf-local", constrained="maybe", cache_dir=str(tmp_path))
    judge = get_judge("hf-local", model=str(tmp_path / "missing"), cache_dir=str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="cannot load") as caught:
        judge.judge(build_items(tmp_path / "img", 1), progress=False)
    assert "\n" not in caught.value.message  # one line, naming the model
    assert str(tmp_path / "missing") in caught.value.message


def test_hf_local_names_a_processor_package_that_is_missing(tiny_vlm, tmp_path, monkeypatch):
    import transformers

    def needs_num2words(*args, **kwargs):
        # What transformers' SmolVLM processor raises without the package (processing_smolvlm).
        raise ImportError(
            "Package `num2words` is required to run SmolVLM processor. Install it with "
            "`pip install num2words`."
        )

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", needs_num2words)
    judge = get_judge("hf-local", model=str(tiny_vlm), device="cpu", cache_dir=str(tmp_path))
    with pytest.raises(MissingDependencyError) as caught:
        judge.check()
    assert "'num2words'" in caught.value.message and "\n" not in caught.value.message
    assert caught.value.hint == "pip install 'slim-leakage[hf-local]'"


def test_grammar_schema_bounds_free_strings_and_lists_only():
    from slim_leakage.judge.backends.hf_local import GRAMMAR_LIST_ITEMS, grammar_schema
    from slim_leakage.judge.stages import TYPICALITY_QUESTION

    schema = TYPICALITY_QUESTION.schema(["cat", "cheetah"])
    bounded = grammar_schema(schema)
    item = bounded["properties"]["entities"]["items"]["properties"]
    assert "pattern" not in item["name"] and item["name"]["enum"] == ["cat", "cheetah"]
    assert item["evidence"]["pattern"].endswith("{0,240}$")
    assert item["borrowed_features"]["maxItems"] == GRAMMAR_LIST_ITEMS
    assert bounded["properties"]["entities"]["maxItems"] == 2  # a bound it had is kept
    assert "title" not in bounded and schema["title"] == "typicality"  # the input is unchanged


def _constrained_request(judge, image, schema, tokens):
    from slim_leakage.judge.backends.base import BackendRequest, Decoding

    return BackendRequest(
        stage=schema.get("title", "ranking"),
        version="v1",
        text="Which leaks less?",
        images=(image.with_label("Image 1"),),
        schema=schema,
        decoding=Decoding(0.0, tokens, 0),
    )


def test_constrained_answers_parse_even_from_a_random_model(tiny_vlm, tmp_path):
    import asyncio

    pytest.importorskip("xgrammar")
    from slim_leakage.judge.runner import load_image
    from slim_leakage.judge.stages import RANKING_QUESTION

    judge = get_judge("hf-local", model=str(tiny_vlm), device="cpu", cache_dir=str(tmp_path))
    assert judge.backend.constrained and judge.describe()["constrained"] is True
    entities = ("cat", "cheetah")
    image = load_image(build_items(tmp_path / "img", 1)[0].vanilla_image, "vanilla")
    request = _constrained_request(judge, image, RANKING_QUESTION.schema(entities), 1200)
    answer = asyncio.run(judge.backend.complete([request]))[0]
    parsed = RANKING_QUESTION.parse(answer.text, entities)
    assert parsed["less_leaky"] in ("image1", "image2", "neither")


def test_constrained_decoding_matches_a_step_by_step_reference(tiny_vlm, tmp_path):
    """xgrammar inside generate() == greedy decoding over the grammar's allowed tokens, by hand."""
    import asyncio
    import io

    import torch
    from PIL import Image

    xgr = pytest.importorskip("xgrammar")
    from slim_leakage.judge.runner import load_image

    judge = get_judge("hf-local", model=str(tiny_vlm), device="cpu", cache_dir=str(tmp_path))
    backend = judge.backend
    schema = {  # short free text, so the reference's one forward per token stays quick
        "title": "ranking",
        "type": "object",
        "properties": {
            "less_leaky": {"type": "string", "enum": ["image1", "image2", "neither"]},
            "reason": {"type": "string", "pattern": "^[a-z ]{0,12}$"},
        },
        "required": ["less_leaky", "reason"],
        "additionalProperties": False,
    }
    image = load_image(build_items(tmp_path / "img", 1)[0].vanilla_image, "vanilla")
    answer = asyncio.run(backend.complete([_constrained_request(judge, image, schema, 200)]))[0]
    assert set(json.loads(answer.text)) == {"less_leaky", "reason"}

    processor, model = backend._processor, backend._model
    content = [
        {"type": "text", "text": "Which leaks less?"},
        {"type": "text", "text": "Image 1:"},
        {"type": "image"},
    ]
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True
    )
    pixels = Image.open(io.BytesIO(image.data)).convert("RGB")
    inputs = processor(text=[prompt], images=[pixels], return_tensors="pt")
    matcher = xgr.GrammarMatcher(backend.compiled_grammar(schema))
    vocab = model.config.get_text_config().vocab_size
    ids, eos, new = inputs["input_ids"], processor.tokenizer.eos_token_id, []
    with torch.inference_mode():
        for _ in range(200):
            logits = (
                model(
                    input_ids=ids,
                    pixel_values=inputs["pixel_values"],
                    attention_mask=torch.ones_like(ids),
                )
                .logits[:, -1, :]
                .float()
            )
            mask = xgr.allocate_token_bitmask(1, vocab)
            matcher.fill_next_token_bitmask(mask)
            xgr.apply_token_bitmask_inplace(logits, mask)
            token = int(logits.argmax(-1))
            new.append(token)
            if token == eos:
                break
            assert matcher.accept_token(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    assert answer.text == processor.decode(new, skip_special_tokens=True)
