"""``hf-local``: a transformers image-text-to-text model run on this machine.

Loads ``AutoProcessor`` and ``AutoModelForImageTextToText`` from a local folder or a hub id
(Qwen2.5-VL, LLaVA, Idefics, ...), renders each request through the processor's chat template
with its images, and decodes greedily at temperature 0. The model has no constrained decoding,
so the JSON form is asked for in the prompt and checked by the stage parser as for any backend.
Requests run one at a time in a worker thread so the event loop stays responsive.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from ...errors import ConfigError, ModelNotFoundError, require
from .base import Backend, BackendRequest, BackendResponse


class HFLocalBackend(Backend):
    """A local transformers vision-language model.

    Options:
        model: A local folder or hub id (default ``Qwen/Qwen2.5-VL-7B-Instruct``).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (default: CUDA if available).
        dtype: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        revision: A pinned hub revision (recorded in ``describe()``).
    """

    name: ClassVar[str] = "hf-local"
    description: ClassVar[str] = "a local transformers image-text-to-text model (Qwen2.5-VL ...)"
    default_model: ClassVar[str] = "Qwen/Qwen2.5-VL-7B-Instruct"
    options: ClassVar[dict[str, Any]] = {"device": None, "dtype": "auto", "revision": None}

    def __init__(self, model: str | None = None, **options: Any) -> None:
        super().__init__(model, **options)
        if self.settings["dtype"] not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(
                f"hf-local: dtype={self.settings['dtype']!r} is not one of auto, float32, "
                "bfloat16, float16.",
                hint="Pass --judge-arg dtype=bfloat16",
            )
        self._model: Any = None
        self._processor: Any = None
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """Backend, model id and revision."""
        out = super().describe()
        if self.settings["revision"]:
            out["revision"] = self.settings["revision"]
        return out

    def check(self) -> None:
        """Load the model now, so a bad id fails before any item is judged."""
        self._load()

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            torch = require("torch", "flux", feature="the 'hf-local' judge")
            transformers = require("transformers", "flux", feature="the 'hf-local' judge")
            device = self.settings["device"] or ("cuda" if torch.cuda.is_available() else "cpu")
            dtype = self.settings["dtype"]
            kwargs: dict[str, Any] = {"revision": self.settings["revision"]}
            if dtype != "auto":
                kwargs["dtype"] = getattr(torch, dtype)
            try:
                processor = transformers.AutoProcessor.from_pretrained(
                    self.model, revision=self.settings["revision"]
                )
                model = transformers.AutoModelForImageTextToText.from_pretrained(
                    self.model, **kwargs
                )
            except OSError as exc:
                raise ModelNotFoundError(
                    f"hf-local cannot load the model {self.model!r} ({exc}).",
                    hint="Pass --judge-arg model=<local folder or downloaded hub id>.",
                ) from exc
            self._processor = processor
            self._model = model.to(device).eval()
            self._device = device

    def _generate(self, request: BackendRequest) -> BackendResponse:
        import torch
        from PIL import Image

        self._load()
        content: list[dict] = [{"type": "text", "text": request.text}]
        images = []
        for image in request.images:
            if image.label:
                content.append({"type": "text", "text": f"{image.label}:"})
            content.append({"type": "image"})
            images.append(Image.open(io.BytesIO(image.data)).convert("RGB"))
        messages = [{"role": "user", "content": content}]
        prompt = self._processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = self._processor(text=[prompt], images=images or None, return_tensors="pt").to(
            self._device
        )
        greedy = request.decoding.temperature <= 0
        sampling = {} if greedy else {"temperature": request.decoding.temperature, "top_p": 1.0}
        with self._lock, torch.inference_mode():
            if not greedy and request.decoding.seed is not None:
                torch.manual_seed(request.decoding.seed)
            output = self._model.generate(
                **inputs,
                max_new_tokens=request.decoding.max_output_tokens,
                do_sample=not greedy,
                **sampling,
            )
        n_in = inputs["input_ids"].shape[1]
        new = output[0, n_in:]
        text = self._processor.decode(new, skip_special_tokens=True)
        return BackendResponse(
            text=text, input_tokens=int(n_in), output_tokens=int(new.shape[0]), model=self.model
        )

    async def complete(self, requests: Sequence[BackendRequest]) -> list[BackendResponse]:
        """Generate an answer for each request, one after another, off the event loop."""
        out = []
        for request in requests:
            out.append(await asyncio.to_thread(self._generate, request))
        return out
