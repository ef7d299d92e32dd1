"""VQAScore on a tiny random LLaVA built in code, loaded through the ``hf-local`` machinery."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from slim_leakage.errors import MetricUnavailableError  # noqa: E402
from slim_leakage.image_metrics import compute_image_metrics  # noqa: E402
from slim_leakage.vqascore import ANSWER, MODEL_ENV, QUESTION, VQAScorer, vqa_score  # noqa: E402

from .judge.conftest import build_tiny_vlm  # noqa: E402

PROMPTS = ["a cow and a horse", "a cat and a dog", "a red fox", "a blue jay in a tree"]


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


def _pngs(folder, n):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def _reference(folder, image_path, prompt):
    """P(Yes) the slow way: a fresh model, one forward pass per answer token, each token's
    probability read off the last position's softmax."""
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    content = [{"type": "image"}, {"type": "text", "text": QUESTION.format(prompt=prompt)}]
    text = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True
    )
    image = Image.open(image_path).convert("RGB")
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    answer = processor.tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
    probability, ids = 1.0, inputs["input_ids"]
    first = None
    for token in answer:
        with torch.inference_mode():
            logits = model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                pixel_values=inputs["pixel_values"],
            ).logits[0, -1]
        p = torch.softmax(logits.float(), dim=-1)
        first = p if first is None else first
        probability *= float(p[token])
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return probability, first, inputs, model, answer


def test_one_forward_per_image_equals_the_token_by_token_reference(tiny_vlm, tmp_path):
    images = _pngs(tmp_path / "img", 4)
    scorer = VQAScorer(str(tiny_vlm), device="cpu")
    scorer.check()
    calls = []
    forward = scorer._model.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    scorer._model.forward = counted
    scores = scorer.score(images, PROMPTS)
    assert len(calls) == len(images)  # linear: one pass per image, not one per image-text pair
    assert len(scorer.answer_ids()) > 1  # the byte-level vocabulary spells "Yes" in 3 tokens
    for path, prompt, got in zip(images, PROMPTS, scores):
        expected, first, inputs, model, answer = _reference(tiny_vlm, path, prompt)
        assert 0.0 < got < 1.0
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-12)
    # the first factor is what generate() sees as the first step's distribution
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=1,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    from_generate = torch.softmax(out.logits[0][0].float(), dim=-1)
    torch.testing.assert_close(from_generate, first, atol=1e-6, rtol=1e-4)
    # each image is scored against its own prompt only: the order of the others is irrelevant
    assert scorer.score(images[::-1], PROMPTS[::-1]) == pytest.approx(scores[::-1], rel=1e-5)
    assert len({round(s, 12) for s in scores}) > 1  # prompt and image change the score


def test_the_run_metric_uses_the_model_the_environment_names(tiny_vlm, tmp_path, monkeypatch):
    method = _pngs(tmp_path / "m", 3)
    vanilla = _pngs(tmp_path / "v", 3)
    pairs = list(zip(vanilla, method))
    monkeypatch.setenv(MODEL_ENV, str(tiny_vlm))
    out = compute_image_metrics(pairs, metrics=("vqascore",), prompts=PROMPTS[:3])
    expected = VQAScorer(str(tiny_vlm), device="cpu").score(method, PROMPTS[:3])
    assert out["vqascore"] == pytest.approx(sum(expected) / 3, rel=1e-5)
    assert out["notes"] == {}


def test_a_model_that_is_not_here_is_a_note_with_the_fix(tmp_path, monkeypatch):
    images = _pngs(tmp_path / "i", 2)
    monkeypatch.delenv(MODEL_ENV, raising=False)
    out = compute_image_metrics(
        list(zip(images, images)), metrics=("vqascore",), prompts=PROMPTS[:2]
    )
    note = out["notes"]["vqascore"]
    assert out["vqascore"] is None
    assert "'Qwen/Qwen2.5-VL-7B-Instruct' is not on this machine" in note
    assert "--allow-downloads" in note and MODEL_ENV in note and "hf download" in note
    # downloads allowed but the hub is offline (the tests' environment): the load fails, a note
    with pytest.raises(MetricUnavailableError, match="cannot load 'org/absent'") as info:
        vqa_score(images, PROMPTS[:2], model="org/absent", allow_download=True, device="cpu")
    assert MODEL_ENV in info.value.hint
    with pytest.raises(MetricUnavailableError, match="2 images and 1 prompts"):
        VQAScorer(str(tmp_path)).score(images, PROMPTS[:1])
