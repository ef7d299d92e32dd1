"""VQAScore: how likely a local vision-language model answers "Yes" to "does this image show the
prompt?".

VQAScore (Lin et al., ECCV 2024) scores an image against a text by the probability that a VLM
answers ``Yes`` to ``Does this figure show '{prompt}'? Please answer yes or no.``. Each image is
scored against its own prompt only, one forward pass per image: the cost is linear in the number
of images (a scorer that fills the whole image x text matrix and keeps its diagonal does N times
the work for the same numbers).

The model is any transformers image-text-to-text model, loaded and placed exactly as the judge's
``hf-local`` backend does it (:class:`~slim_leakage.judge.backends.hf_local.HFLocalBackend`:
``AutoProcessor`` + ``AutoModelForImageTextToText``, its ``device``, ``dtype`` and ``revision``
options and its load errors); the question goes through the processor's chat template with the
image first, as the judge sends its requests. The answer's probability is read by teacher
forcing: the tokens of ``Yes`` are appended to the rendered question and one forward pass gives
``P(Yes) = prod_k p(yes_k | question, yes_<k)`` (a single factor when ``Yes`` is one token, as
in the Qwen2.5-VL and LLaVA vocabularies).

In a run (``--image-metrics vqascore``) the model is :data:`DEFAULT_MODEL` unless the
environment names another (:data:`MODEL_ENV`, :data:`REVISION_ENV`); the figure in
``metrics.json`` is the mean over the method images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from .errors import MetricUnavailableError, MissingDependencyError, ModelNotFoundError
from .judge.backends.hf_local import HFLocalBackend

#: The question, with the prompt in place of ``{prompt}``.
QUESTION = "Does this figure show '{prompt}'? Please answer yes or no."
#: The answer whose probability is the score.
ANSWER = "Yes"
#: The model of ``--image-metrics vqascore`` unless :data:`MODEL_ENV` names another: the
#: ``hf-local`` judge's default, one of the VLMs the VQAScore authors score with.
DEFAULT_MODEL = HFLocalBackend.default_model
#: Environment variables that choose the model (a local folder or hub id) and pin its revision.
MODEL_ENV, REVISION_ENV = "SLIM_VQASCORE_MODEL", "SLIM_VQASCORE_REVISION"


class VQAScorer(HFLocalBackend):
    """A local VLM that scores images against their prompts (P("Yes")).

    Args:
        model: A local folder or hub id of an image-text-to-text model.
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (default: CUDA if available).
        dtype: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        revision: A pinned hub revision.
    """

    name: ClassVar[str] = "vqascore"
    description: ClassVar[str] = "VQAScore: P('Yes') from a local image-text-to-text model"

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | None = None,
        dtype: str = "auto",
        revision: str | None = None,
    ) -> None:
        # free-form decoding is never used here, so no grammar
        super().__init__(model, device=device, dtype=dtype, revision=revision, constrained="off")

    def answer_ids(self) -> list[int]:
        """The token ids of :data:`ANSWER` as the model would write it (no special tokens)."""
        self._load()
        tokenizer = getattr(self._processor, "tokenizer", self._processor)
        ids = list(tokenizer(ANSWER, add_special_tokens=False)["input_ids"])
        if not ids:
            raise MetricUnavailableError(
                f"VQAScore: the tokenizer of {self.model!r} has no {ANSWER!r}"
            )
        return ids

    def question_inputs(self, image: Any, prompt: str) -> dict[str, Any]:
        """The model inputs of the question about ``prompt`` for ``image`` (a PIL image)."""
        self._load()
        content = [
            {"type": "image"},
            {"type": "text", "text": QUESTION.format(prompt=prompt)},
        ]
        text = self._processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True
        )
        return dict(self._processor(text=[text], images=[image], return_tensors="pt"))

    def yes_probability(self, image: Any, prompt: str) -> float:
        """P(:data:`ANSWER`) for one image and its prompt, in one forward pass."""
        import torch

        inputs = self.question_inputs(image, prompt)
        answer = self.answer_ids()
        ids = inputs["input_ids"]
        n = ids.shape[1]
        tail = torch.tensor([answer], dtype=ids.dtype)
        for key, value in list(inputs.items()):
            # per-token inputs grow with the answer: its ids, attended, and text (type 0) tokens
            if not isinstance(value, torch.Tensor) or value.shape[:2] != (1, n):
                continue
            if key == "input_ids":
                extra = tail
            elif key == "attention_mask":
                extra = torch.ones_like(tail, dtype=value.dtype)
            else:
                extra = torch.zeros_like(tail, dtype=value.dtype)
            inputs[key] = torch.cat([value, extra], dim=1)
        inputs = {k: v.to(self._device) if hasattr(v, "to") else v for k, v in inputs.items()}
        with self._lock, torch.inference_mode():
            logits = self._model(**inputs).logits[0, n - 1 : n - 1 + len(answer)].float()
        logp = torch.log_softmax(logits, dim=-1)
        picked = logp[torch.arange(len(answer)), torch.tensor(answer, device=logp.device)]
        return float(picked.sum().exp())

    def score(self, images: Sequence[Any], prompts: Sequence[str]) -> list[float]:
        """P("Yes") of each image against its own prompt (paths or PIL images).

        Raises:
            MetricUnavailableError: Images and prompts of different lengths.
        """
        from PIL import Image

        if len(images) != len(prompts):
            raise MetricUnavailableError(
                f"VQAScore got {len(images)} images and {len(prompts)} prompts",
                hint="Give one prompt per image, in the same order.",
            )
        out = []
        for image, prompt in zip(images, prompts):
            if isinstance(image, (str, Path)):
                with Image.open(image) as im:
                    image = im.convert("RGB")
            out.append(self.yes_probability(image.convert("RGB"), prompt))
        return out


def _on_this_machine(model: str, revision: str | None) -> bool:
    """Whether ``model`` is a folder or already in the hub cache (no network asked)."""
    if Path(model).is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = try_to_load_from_cache(model, "config.json", revision=revision)
    return isinstance(found, str)


def vqa_score(
    images: Sequence[Any],
    prompts: Sequence[str],
    *,
    model: str | None = None,
    revision: str | None = None,
    allow_download: bool = False,
    **options: Any,
) -> float:
    """Mean VQAScore of ``images`` against their ``prompts`` (one forward pass per image).

    Args:
        images: Image paths or PIL images.
        prompts: One prompt per image.
        model: A local folder or hub id; default :data:`MODEL_ENV` or :data:`DEFAULT_MODEL`.
        revision: A pinned hub revision; default :data:`REVISION_ENV`.
        allow_download: Let the hub fetch a model that is not on this machine.
        **options: ``device`` and ``dtype`` of :class:`VQAScorer`.

    Raises:
        MetricUnavailableError: No images, a model that is not here (and no downloads), or one
            that does not load, with the way to fix it.
    """
    model = model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    revision = revision or os.environ.get(REVISION_ENV) or None
    fix = (
        f"download it (`hf download {model}`), pass --allow-downloads, or set {MODEL_ENV} to a "
        "local folder of an image-text-to-text model"
    )
    if not images:
        raise MetricUnavailableError("VQAScore needs at least one image")
    if not allow_download and not _on_this_machine(model, revision):
        raise MetricUnavailableError(
            f"VQAScore's model {model!r} is not on this machine", hint=fix[:1].upper() + fix[1:]
        )
    scorer = VQAScorer(model, revision=revision, **options)
    try:
        scorer.check()
    except (ModelNotFoundError, MissingDependencyError) as exc:
        raise MetricUnavailableError(
            f"VQAScore cannot load {model!r} ({exc.message})", hint=fix[:1].upper() + fix[1:]
        ) from exc
    scores = scorer.score(images, prompts)
    return sum(scores) / len(scores)
