"""``hf-local``: a transformers image-text-to-text model run on this machine.

Loads ``AutoProcessor`` and ``AutoModelForImageTextToText`` from a local folder or a hub id
(Qwen2.5-VL, LLaVA, SmolVLM, Idefics, ...), renders each request through the processor's chat
template with its images, and decodes greedily at temperature 0. Requests run one at a time in
a worker thread so the event loop stays responsive.

When xgrammar is installed (the ``hf-local`` extra installs it), answers are constrained to the
question's JSON schema while they are generated: xgrammar compiles the schema against the
model's tokenizer and its logits processor for transformers' ``generate``
(``xgrammar.contrib.hf.LogitsProcessor``) masks every token that would leave it. Free strings
and lists get length bounds in that grammar (:func:`grammar_schema`) so that an answer always
ends; the stage parser still checks the full schema. Without xgrammar, or with
``constrained=off``, the JSON form is asked for in the prompt and a bad answer gets the repair
round, as for any backend.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import re
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from ...errors import ConfigError, MissingDependencyError, ModelNotFoundError, require
from .base import Backend, BackendRequest, BackendResponse

#: Longest free string (characters) and longest free list in a constrained answer: far above
#: what the prompts ask for (a short feature, one sentence), low enough that a model looping on
#: one field still ends its answer.
GRAMMAR_STRING_CHARS, GRAMMAR_LIST_ITEMS = 240, 16
# A JSON string's content without control characters (JSON forbids them unescaped).
_PLAIN_STRING = '^[^\\x00-\\x1f"\\\\]{0,%d}$'


def grammar_schema(schema: dict) -> dict:
    """``schema`` with bounds on free strings and lists, for constrained decoding only.

    Strings without an ``enum`` get a pattern of at most :data:`GRAMMAR_STRING_CHARS`
    characters and no control characters; arrays without ``maxItems`` get
    :data:`GRAMMAR_LIST_ITEMS`. The ``title`` is dropped (it names the question, not a field).
    """

    def bound(node):
        if isinstance(node, list):
            return [bound(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: bound(v) for k, v in node.items() if k != "title"}
        if out.get("type") == "string" and "enum" not in out and "pattern" not in out:
            out["pattern"] = _PLAIN_STRING % GRAMMAR_STRING_CHARS
        if out.get("type") == "array" and "maxItems" not in out:
            out["maxItems"] = GRAMMAR_LIST_ITEMS
        return out

    return bound(copy.deepcopy(schema))


def _missing_package(exc: ImportError) -> str | None:
    """The package an ImportError says is missing (its ``name``, or one named in backticks)."""
    if getattr(exc, "name", None):
        return str(exc.name).split(".")[0]
    match = re.search(r"`([A-Za-z0-9_.\-]+)`", str(exc)) or re.search(
        r"pip install ([A-Za-z0-9_.\-]+)", str(exc)
    )
    return match.group(1) if match else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


class HFLocalBackend(Backend):
    """A local transformers vision-language model.

    Options:
        model: A local folder or hub id (default ``Qwen/Qwen2.5-VL-7B-Instruct``).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (default: CUDA if available).
        dtype: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        revision: A pinned hub revision (recorded in ``describe()``).
        constrained: ``auto`` (constrain answers to the schema when xgrammar is installed),
            ``on`` (require it) or ``off`` (prompt and repair only).
    """

    name: ClassVar[str] = "hf-local"
    description: ClassVar[str] = "a local transformers image-text-to-text model (Qwen2.5-VL ...)"
    default_model: ClassVar[str] = "Qwen/Qwen2.5-VL-7B-Instruct"
    options: ClassVar[dict[str, Any]] = {
        "device": None,
        "dtype": "auto",
        "revision": None,
        "constrained": "auto",
    }

    def __init__(self, model: str | None = None, **options: Any) -> None:
        super().__init__(model, **options)
        if self.settings["dtype"] not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(
                f"hf-local: dtype={self.settings['dtype']!r} is not one of auto, float32, "
                "bfloat16, float16.",
                hint="Pass --judge-arg dtype=bfloat16",
            )
        if self.settings["constrained"] not in ("auto", "on", "off"):
            raise ConfigError(
                f"hf-local: constrained={self.settings['constrained']!r} is not one of auto, on, "
                "off.",
                hint="Pass --judge-arg constrained=off to decode without a grammar.",
            )
        self._model: Any = None
        self._processor: Any = None
        self._grammars: dict[str, Any] = {}
        self._tokenizer_info: Any = None
        self._lock = threading.Lock()
        self.constrained = self._constrained()

    def _constrained(self) -> bool:
        """Whether answers are constrained to the schema (xgrammar importable and wanted)."""
        if self.settings["constrained"] == "off":
            return False
        if self.settings["constrained"] == "on":
            require("xgrammar", "hf-local", feature="constrained decoding in 'hf-local'")
            return True
        import importlib.util

        return importlib.util.find_spec("xgrammar") is not None

    def wire_settings(self) -> dict[str, Any]:
        """Constrained decoding changes the answers, so it is part of the cache key."""
        if not self.constrained:
            return {}
        bounds = [GRAMMAR_STRING_CHARS, GRAMMAR_LIST_ITEMS]
        return {"constrained": "xgrammar-json-schema", "grammar_bounds": bounds}

    def describe(self) -> dict[str, Any]:
        """Backend, model id, revision and whether answers are constrained."""
        out = super().describe()
        if self.settings["revision"]:
            out["revision"] = self.settings["revision"]
        out["constrained"] = self.constrained
        return out

    def check(self) -> None:
        """Load the model now, so a bad id fails before any item is judged."""
        self._load()

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            torch = require("torch", "hf-local", feature="the 'hf-local' judge")
            transformers = require("transformers", "hf-local", feature="the 'hf-local' judge")
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
            except ImportError as exc:
                # A processor's own dependency (SmolVLM's num2words, torchvision for the fast
                # image and video processors): name it, in one line.
                package = _missing_package(exc) or "a package"
                raise MissingDependencyError(
                    f"hf-local cannot load {self.model!r}: its processor needs {package!r}, "
                    f"which is not installed ({_first_line(exc)}).",
                    hint="pip install 'slim-leakage[hf-local]'",
                ) from exc
            except (OSError, ValueError, KeyError) as exc:
                raise ModelNotFoundError(
                    f"hf-local cannot load the model {self.model!r} ({_first_line(exc)}).",
                    hint="Pass --judge-arg model=<local folder or downloaded hub id of an "
                    "image-text-to-text model>.",
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
        if self.constrained and request.schema:
            sampling["logits_processor"] = [self.logits_processor(request.schema)]
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

    def compiled_grammar(self, schema: dict) -> Any:
        """The xgrammar grammar of ``schema`` (bounded by :func:`grammar_schema`), compiled once."""
        import xgrammar

        self._load()
        text = json.dumps(grammar_schema(schema), sort_keys=True)
        if text not in self._grammars:
            if self._tokenizer_info is None:
                tokenizer = getattr(self._processor, "tokenizer", self._processor)
                # The model's vocabulary can be larger than the tokenizer's (padding rows).
                vocab = self._model.config.get_text_config().vocab_size
                self._tokenizer_info = xgrammar.TokenizerInfo.from_huggingface(
                    tokenizer, vocab_size=vocab
                )
            compiler = xgrammar.GrammarCompiler(self._tokenizer_info)
            self._grammars[text] = compiler.compile_json_schema(text, any_whitespace=False)
        return self._grammars[text]

    def logits_processor(self, schema: dict) -> Any:
        """A fresh logits processor for one ``generate`` call (xgrammar's are single-use)."""
        import xgrammar.contrib.hf

        return xgrammar.contrib.hf.LogitsProcessor(self.compiled_grammar(schema))

    async def complete(self, requests: Sequence[BackendRequest]) -> list[BackendResponse]:
        """Generate an answer for each request, one after another, off the event loop."""
        out = []
        for request in requests:
            out.append(await asyncio.to_thread(self._generate, request))
        return out
