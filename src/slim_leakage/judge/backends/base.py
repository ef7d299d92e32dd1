"""The backend contract: a list of requests in, the same number of responses out, async.

A backend knows how to send one rendered judge question (text, images, a JSON schema and the
decoding parameters) to a model and return its raw answer text. Everything else lives in the
stage objects (:mod:`slim_leakage.judge.stages`: what is asked, parsing) and the runner
(caching, rate limits, retries, order handling), so a backend is small. Each request also
carries a structured ``context`` so a backend that is not a language model (the toy world's
``oracle``) can compute its answer from the images and the stage inputs instead of reading the
prompt; the request's question reads those facts for it (``Question.asked_in``).

A backend signals a failure worth retrying by raising :class:`TransientBackendError` (rate limit,
server error, timeout, dropped connection; defined in :mod:`slim_leakage.errors`, importable
from here); any other exception is final for that request.
A minimal backend::

    from slim_leakage.judge import JUDGES
    from slim_leakage.judge.backends.base import Backend, BackendResponse

    @JUDGES.register("echo")
    class EchoBackend(Backend):
        name = "echo"

        async def complete(self, requests):
            return [BackendResponse(text="{}") for _ in requests]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import TransientBackendError

if TYPE_CHECKING:
    from ..models import ModelSpec

__all__ = [
    "Backend",
    "BackendRequest",
    "BackendResponse",
    "Decoding",
    "ImageInput",
    "TransientBackendError",
]


@dataclasses.dataclass(frozen=True)
class ImageInput:
    """One image sent with a request.

    Attributes:
        data: The encoded image bytes (PNG or JPEG).
        mime: The MIME type of ``data`` (``image/png``).
        sha256: Hex SHA-256 of ``data`` (part of the cache key).
        role: What the image is: ``vanilla``, ``method``, ``reference`` or ``image`` (a single
            image in a leakage check). Never shown to a language model, only in ``context``.
        entity: For ``reference`` images, the entity drawn alone.
        label: How the rendered prompt refers to it (``Image 1``, ``Reference: cat``).
        width: Width in pixels (for token estimates).
        height: Height in pixels.
    """

    data: bytes
    mime: str
    sha256: str
    role: str = "image"
    entity: str | None = None
    label: str = ""
    width: int = 0
    height: int = 0

    def with_label(self, label: str) -> ImageInput:
        """The same image under another caption."""
        return ImageInput(
            self.data,
            self.mime,
            self.sha256,
            self.role,
            self.entity,
            label,
            self.width,
            self.height,
        )

    def describe(self) -> dict[str, Any]:
        """The image without its bytes (for ``context`` and logs)."""
        return {
            "sha256": self.sha256,
            "mime": self.mime,
            "role": self.role,
            "entity": self.entity,
            "label": self.label,
            "width": self.width,
            "height": self.height,
        }


@dataclasses.dataclass(frozen=True)
class Decoding:
    """Decoding parameters (part of the cache key).

    Attributes:
        temperature: Sampling temperature; 0 asks for greedy decoding where the API allows it.
        max_output_tokens: Upper bound on answer tokens.
        seed: A sampling seed, for APIs that accept one.
    """

    temperature: float = 0.0
    max_output_tokens: int = 1024
    seed: int | None = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict of the parameters."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class BackendRequest:
    """One question for the backend.

    Attributes:
        stage: The stage name (``extraction-text``, ``extraction-images``, ``typicality``,
            ``ranking``), or that name with ``+repair`` for the one repair retry.
        version: The stage's prompt version (``v1``).
        text: The rendered prompt.
        images: The images, in the order the prompt refers to them.
        schema: The JSON schema the answer must satisfy (its ``title`` is the stage name).
        decoding: Decoding parameters.
        context: Structured facts for non-LLM backends: ``sample_id``, ``prompt``, ``entities``,
            ``images`` (each image's :meth:`ImageInput.describe`, in order), ``inputs`` (the
            stage's inputs, such as merged features or typicality reports) and, for the ranking,
            ``order`` (``ab``: vanilla is Image 1; ``ba``: the method image is Image 1).
        key: The cache key of the request (set by the judge).
    """

    stage: str
    version: str
    text: str
    images: tuple[ImageInput, ...]
    schema: dict
    decoding: Decoding
    context: dict = dataclasses.field(default_factory=dict)
    key: str = ""

    @property
    def base_stage(self) -> str:
        """The stage name without a ``+repair`` suffix."""
        return self.stage.split("+", 1)[0]


@dataclasses.dataclass(frozen=True)
class BackendResponse:
    """The raw answer to one request.

    Attributes:
        text: The answer text (expected to be JSON matching the request's schema).
        input_tokens: Prompt tokens billed, if the API reports them.
        output_tokens: Answer tokens billed, if the API reports them (thinking excluded).
        model: The model that answered, if the API says (recorded next to the requested id in
            the cache, stage records, verdicts and the manifest; never part of a cache key).
        thinking_tokens: Thinking (reasoning) tokens billed as output, if the API reports them.
    """

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None
    thinking_tokens: int | None = None


class Backend:
    """Base class of judge backends.

    Class attributes:
        name: The registry name.
        description: One line for ``slim-eval ls judges``.
        default_model: The pinned model id used when none is given.
        pricing_key: Key of this backend in the pricing table (``judge/pricing.py``).
        provider: The model table (``judge/models.py``) this backend's model ids belong to,
            or ``None`` for backends whose models the table does not describe.

    Args:
        model: The model id (defaults to :attr:`default_model`).
        **options: Backend-specific options; unknown ones are errors.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    pricing_key: ClassVar[str] = ""
    provider: ClassVar[str | None] = None
    #: Options a subclass accepts besides ``model`` (name -> default).
    options: ClassVar[dict[str, Any]] = {}
    #: Whether ``model`` may name another model than :attr:`default_model` (``False`` for a
    #: backend that is one fixed model, such as the toy world's oracle: it takes no other).
    model_choice: ClassVar[bool] = True

    def __init__(self, model: str | None = None, **options: Any) -> None:
        from ...errors import ConfigError, did_you_mean

        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ConfigError(
                f"Judge backend {self.name!r} has no option {unknown[0]!r}."
                f"{did_you_mean(unknown[0], self.options)}",
                hint=f"Known options: {', '.join(sorted({'model', *self.options})) or 'model'}.",
            )
        if not self.model_choice and model not in (None, self.default_model):
            raise ConfigError(
                f"The judge {self.name!r} has no model choice: it is {self.default_model!r} "
                f"only, not {model!r}.",
                hint="Leave out the model option.",
            )
        self.model = model or self.default_model
        if not self.model:
            raise ConfigError(
                f"Judge backend {self.name!r} needs a model id.",
                hint="Pass --judge-arg model=<id>.",
            )
        self.settings = {**self.options, **options}

    @classmethod
    def info(cls) -> dict[str, Any]:
        """A row for ``slim-eval ls judges``."""
        return {"model_id": cls.default_model, "description": cls.description}

    @property
    def spec(self) -> ModelSpec | None:
        """The model-table row of :attr:`model` (``None`` for a backend without a table)."""
        if self.provider is None:
            return None
        from ..models import lookup

        return lookup(self.provider, self.model)

    def wire_settings(self) -> dict[str, Any]:
        """What the backend adds to every request beyond it (thinking, output allowance).

        Part of each request's cache key when not empty; a backend that sends requests as
        they are returns ``{}`` (and keeps the keys it always had).
        """
        spec = self.spec
        return {} if spec is None else spec.wire_settings()

    def batch_interface(self) -> Any:
        """The provider's batch interface (:mod:`.batches`), or ``None`` when it has none."""
        return None

    def describe(self) -> dict[str, Any]:
        """Backend name and model id (recorded in manifests; never secrets)."""
        out: dict[str, Any] = {"backend": self.name, "model_id": self.model}
        spec = self.spec
        if spec is not None:
            out["model"] = spec.describe()
        return out

    async def complete(self, requests: Sequence[BackendRequest]) -> list[BackendResponse]:
        """Answer ``requests``, one response per request, in order.

        Raises:
            TransientBackendError: For a failure the judge should retry with backoff.
            JudgeError: For a failure that retrying will not fix (bad key, unknown model).
        """
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections (called once when the judge is done)."""
