"""DeLeaker on Stable Diffusion 3.5 (MMDiT): processors (fast and reference), clock, ``install``.

SD3's joint attention is FLUX's double-stream attention without RoPE: every block projects the
image and the text streams, normalises queries and keys, and attends over both in one softmax
(diffusers' ``JointAttnProcessor2_0``, ``diffusers/models/attention_processor.py``). The
DeLeaker maths is therefore FLUX's (:mod:`.flux`): the processors here only build the joint
sequence and take it apart again, and inherit the attention step (fused attention plus
closed-form row corrections, or the explicit reference).

What differs, and how it is handled:

- **Order.** diffusers concatenates ``[image ; text]``; these processors build ``[text ;
  image]``, the layout DeLeaker's maths assumes, and split the output accordingly. Softmax
  attention does not depend on key order, so the result is the same up to float rounding (the
  fused kernel sums the keys in another order): with every edit off the output equals the stock
  processor's to ~1e-6, not bit for bit.
- **Text.** The text sequence is 77 CLIP tokens (CLIP-L and CLIP-G side by side) followed by
  the T5 tokens. An entity is *both* its CLIP tokens and its T5 tokens (:func:`sd3_entity_spans`):
  image tokens read an entity through either, so suppressing one encoder's tokens would leave
  the other's path open, and the masks average over both. T5 positions come first in each
  span, so text-text suppression (the first token of each entity) acts on T5 tokens as on FLUX.
  Without a T5 encoder (``text_encoder_3=None``: its tokens are zeros) only CLIP tokens are
  used; an entity past CLIP's 77 tokens uses its T5 tokens only.
- **Guidance.** CFG is batched as ``[uncond, cond]``; only the conditional half is edited and
  feeds the history (the unconditional half runs the stock attention), as on SANA and as true
  CFG's negative pass on FLUX. Skip-layer guidance's extra pass at the same step is not edited.
- **Blocks.** Every joint block takes part, the last one (``context_pre_only``: its text output
  is discarded) included; SD3.5 Medium's image-only second attention (``attn2``) has no text
  and keeps its stock processor. There is one kind of block, so ``mask_blocks`` must be ``all``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ...errors import ConfigError, EntityNotFoundError
from . import ops
from .config import DeLeakerConfig
from .flux import FluxDeLeakerProcessor, ReferenceFluxProcessor
from .state import DeLeakerState, configure, give_masks, installed
from .tokens import find_entity_tokens

#: The joint attention of block ``i`` (``attn2`` of SD3.5 Medium is image-only).
_JOINT = re.compile(r"^transformer_blocks\.(\d+)\.attn\.processor$")
#: CLIP's context length, the first part of SD3's text sequence.
CLIP_TOKENS = 77


def sd3_entity_spans(
    clip_tokenizer,
    t5_tokenizer,
    prompt: str,
    entities: Sequence[str],
    *,
    max_sequence_length: int,
    clip_length: int = CLIP_TOKENS,
    use_t5: bool = True,
) -> dict[str, list[int]]:
    """Each entity's positions in SD3's text sequence ``[CLIP (77) ; T5 (max_sequence_length)]``.

    Args:
        clip_tokenizer: The CLIP-L tokenizer (CLIP-G's gives the same positions).
        t5_tokenizer: The T5 tokenizer (``tokenizer_3``), or ``None`` without T5.
        prompt: The prompt (the same text for the three encoders).
        entities: Distinct entity strings, whole words of the prompt.
        max_sequence_length: The pipeline's T5 length.
        clip_length: CLIP's context length (77).
        use_t5: Whether the T5 tokens carry the text (``False`` when the pipeline has no T5).

    Returns:
        ``{entity: T5 positions (offset by clip_length), then CLIP positions}``.

    Raises:
        EntityNotFoundError: An entity is not a whole word of the prompt, or falls past both
            CLIP's and T5's lengths.
    """
    if len({e.lower() for e in entities}) != len(entities):
        raise ConfigError(
            f"Entities {list(entities)!r} repeat a name.", hint="Give each entity once per prompt."
        )
    spans: dict[str, list[int]] = {}
    for entity in entities:
        parts: list[int] = []
        errors: list[EntityNotFoundError] = []
        sources = [(t5_tokenizer, max_sequence_length, clip_length)] if use_t5 else []
        sources.append((clip_tokenizer, clip_length, 0))
        for tokenizer, length, offset in sources:
            try:
                found = find_entity_tokens(tokenizer, prompt, entity, max_sequence_length=length)
            except EntityNotFoundError as exc:
                errors.append(exc)
                continue
            parts.extend(offset + t for t in found)
        if not parts:
            raise EntityNotFoundError(
                errors[0].message,
                hint=f"{errors[0].hint} On SD3 an entity must fall within CLIP's "
                f"{clip_length} tokens or T5's max_sequence_length={max_sequence_length}.",
            )
        spans[entity] = parts
    return spans


class SD3DeLeakerState(DeLeakerState):
    """DeLeaker's shared state, with SD3's ``[uncond, cond]`` CFG batch.

    Attributes:
        uncond: Items at the front of the current transformer batch that are the unconditional
            half (not edited); the state's ``batch`` counts the conditional items only.
    """

    def __init__(self, config: DeLeakerConfig, entities: Any, blocks_per_step: int) -> None:
        super().__init__(config, entities, blocks_per_step)
        self.uncond = 0


def sd3_qkv(attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor):
    """Projections and query/key norms of a joint block, as ``JointAttnProcessor2_0``, with the
    text first.

    Returns:
        ``query, key, value`` shaped ``(batch, heads, T + N, head_dim)``, text first.
    """
    b = hidden_states.shape[0]

    def heads(x):
        return x.view(b, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)

    q, k, v = (heads(f(hidden_states)) for f in (attn.to_q, attn.to_k, attn.to_v))
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    eq, ek, ev = (
        heads(f(encoder_hidden_states)) for f in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj)
    )
    if attn.norm_added_q is not None:
        eq = attn.norm_added_q(eq)
    if attn.norm_added_k is not None:
        ek = attn.norm_added_k(ek)
    return torch.cat([eq, q], dim=2), torch.cat([ek, k], dim=2), torch.cat([ev, v], dim=2)


def sd3_finish(attn, out: torch.Tensor, text_len: int):
    """Split ``[text ; image]`` and apply the output projections, as ``JointAttnProcessor2_0``.

    Args:
        attn: The block's ``Attention``.
        out: ``(batch, T + N, heads * head_dim)`` attention output, text first.
        text_len: ``T``.

    Returns:
        ``(image, text)`` outputs (the text unprojected in a ``context_pre_only`` block).
    """
    text, image = out[:, :text_len], out[:, text_len:]
    if not attn.context_pre_only:
        text = attn.to_add_out(text)
    image = attn.to_out[1](attn.to_out[0](image))
    return image, text


class _SD3Call:
    """The SD3 joint-attention call around DeLeaker's ``attend`` (shared by both processors)."""

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs
    ):
        st = self.state
        in_hist, in_edit = st.phase(self.offset)
        if not (in_hist or in_edit) or encoder_hidden_states is None:
            return self.original(
                attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs
            )
        if attention_mask is not None:
            raise ConfigError(
                "DeLeaker does not support an attention mask on SD3.",
                hint="Call the pipeline without attention masks while DeLeaker is installed.",
            )
        query, key, value = sd3_qkv(attn, hidden_states, encoder_hidden_states)
        u = st.uncond
        # (B, H, L, D); the unconditional half is not edited: stock attention
        cond = self.attend(query[u:], key[u:], value[u:], in_hist, in_edit)
        if u:
            plain = torch.nn.functional.scaled_dot_product_attention(query[:u], key[:u], value[:u])
            cond = torch.cat([plain, cond.to(plain.dtype)])
        b = hidden_states.shape[0]
        out = cond.transpose(1, 2).reshape(b, -1, query.shape[1] * query.shape[-1])
        return sd3_finish(attn, out.to(query.dtype), encoder_hidden_states.shape[1])


class SD3DeLeakerProcessor(_SD3Call, FluxDeLeakerProcessor):
    """DeLeaker on an SD3 joint block without ``L x L`` tensors (FLUX's fast maths)."""


class ReferenceSD3Processor(_SD3Call, ReferenceFluxProcessor):
    """Explicit-attention DeLeaker on an SD3 joint block (the oracle)."""


# -- clock and installation ---------------------------------------------------------------------
def _sd3_parts(pipe_or_transformer):
    transformer = getattr(pipe_or_transformer, "transformer", pipe_or_transformer)
    names = list(getattr(transformer, "attn_processors", {}) or {})
    if (
        not any(_JOINT.match(n) for n in names)
        or hasattr(transformer, "single_transformer_blocks")
        or not hasattr(transformer, "pos_embed")
    ):
        raise ConfigError(
            f"DeLeaker (SD3) got a {type(pipe_or_transformer).__name__}, not a "
            "StableDiffusion3Pipeline.",
            hint="Pass a diffusers StableDiffusion3Pipeline.",
        )
    if transformer is pipe_or_transformer:
        raise ConfigError(
            "DeLeaker on SD3 needs the StableDiffusion3Pipeline (its tokenizers, scheduler and "
            "guidance setting), not its transformer.",
            hint="Pass the pipeline.",
        )
    return pipe_or_transformer, transformer


def _clock_hook(state: SD3DeLeakerState, pipe, transformer):
    patch = int(transformer.config.patch_size)

    def hook(module, args, kwargs):
        latents = kwargs.get("hidden_states", args[0] if args else None)
        enc = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
        timestep = kwargs.get("timestep", args[3] if len(args) > 3 else None)
        if latents is None or enc is None or timestep is None:
            raise ConfigError(
                "DeLeaker needs hidden_states, encoder_hidden_states and timestep in the SD3 "
                "forward."
            )
        table = pipe.scheduler.timesteps
        # StableDiffusion3Pipeline passes the scheduler's timesteps unscaled
        step = ops.nearest_step(table, float(timestep.reshape(-1)[0]))
        cfg = bool(getattr(pipe, "do_classifier_free_guidance", False))
        batch = enc.shape[0]
        if cfg and batch % 2:
            raise ConfigError(f"SD3 CFG batch {batch} is odd.", hint="Call the pipeline.")
        state.uncond = batch // 2 if cfg else 0
        state.forwards += 1
        state.begin_forward(
            step=step,
            num_steps=len(table),
            text_len=enc.shape[1],
            grid=(latents.shape[-2] // patch, latents.shape[-1] // patch),
            batch=batch - state.uncond,
        )

    return hook


@contextlib.contextmanager
def install(
    pipe,
    entities: Sequence[str] | Sequence[Sequence[str]],
    *,
    config: DeLeakerConfig | None = None,
    prompts: Sequence[str] | str | None = None,
    max_sequence_length: int | None = None,
    implementation: str = "fast",
    masks: Any = None,
    **options: Any,
) -> Iterator[SD3DeLeakerState]:
    """Install DeLeaker on a ``StableDiffusion3Pipeline`` for the ``with`` block.

    Example::

        with install(pipe, ["cow", "horse"]) as run:
            image = pipe("a cow and a horse in a farm").images[0]

    The original processors are restored when the block exits, even after an error.

    Args:
        pipe: A diffusers ``StableDiffusion3Pipeline``.
        entities: Entity words of the prompt, or one list per prompt of a batch.
        config: A :class:`DeLeakerConfig`; ``**options`` build one instead.
        prompts: The prompts, when known in advance; otherwise read from each pipeline call.
        max_sequence_length: T5 length used with ``prompts`` (default 256, as the pipeline).
        implementation: ``"fast"`` or ``"reference"`` (explicit attention, the oracle).
        masks: Entity masks from outside instead of from attention: one ``{entity: mask}`` per
            prompt, or ``masks(index, prompt, entities)`` (see :mod:`.given`).
        **options: :class:`DeLeakerConfig` fields.

    Yields:
        The run state; ``run.final_masks(i)`` gives image ``i``'s last masks.
    """
    config = configure(config, options, implementation)
    if config.mask_blocks != "all":
        raise ConfigError(
            f"mask_blocks={config.mask_blocks!r} has no meaning on SD3: it has one kind of block.",
            hint="Leave mask_blocks=all on SD3 backbones.",
        )
    pipe_obj, transformer = _sd3_parts(pipe)
    offsets = {}
    for name in transformer.attn_processors:
        if m := _JOINT.match(name):
            offsets[name] = int(m.group(1))
    state = SD3DeLeakerState(config, entities, len(offsets))
    give_masks(state, masks)

    def resolve(prompt_list, length):
        state.resolve_prompts(
            prompt_list,
            lambda prompt, ents: sd3_entity_spans(
                pipe_obj.tokenizer,
                pipe_obj.tokenizer_3,
                prompt,
                ents,
                max_sequence_length=length,
                clip_length=pipe_obj.tokenizer_max_length,
                use_t5=pipe_obj.text_encoder_3 is not None,
            ),
        )

    patches = []
    if prompts is not None:
        resolve(prompts, max_sequence_length or 256)
    else:
        patches.append((pipe_obj, "encode_prompt", _capturing_encode_prompt(pipe_obj, resolve)))
    cls = SD3DeLeakerProcessor if implementation == "fast" else ReferenceSD3Processor
    processors = {
        name: cls(state, offsets[name], original) if name in offsets else original
        for name, original in transformer.attn_processors.items()
    }
    hook = _clock_hook(state, pipe_obj, transformer)
    with installed(transformer, processors, pre_hook=hook, patches=patches):
        yield state


def _capturing_encode_prompt(pipe, resolve):
    original = pipe.encode_prompt

    def encode_prompt(*args, **kwargs):
        prompt = kwargs.get("prompt", args[0] if args else None)
        for other in ("prompt_2", "prompt_3"):
            if kwargs.get(other) not in (None, prompt):
                raise ConfigError(
                    f"DeLeaker on SD3 needs one prompt for the three text encoders, got "
                    f"{other}={kwargs[other]!r}.",
                    hint=f"Call the pipeline without {other}.",
                )
        if prompt is None:
            raise ConfigError(
                "DeLeaker on SD3 does not know the prompt (prompt_embeds were given).",
                hint="Pass prompts=[...] (and max_sequence_length=) to install().",
            )
        resolve(prompt, kwargs.get("max_sequence_length", 256))
        return original(*args, **kwargs)

    return encode_prompt


# -- what the registered method reads (the shape of every backbone file, see method.py) ---------
#: Facts recorded with every generation on SD3.
EXTRA: dict[str, Any] = {"entity_tokens_from": "CLIP (positions < 77) and T5"}


def entity_spans(backbone, prompt: str, entities: Sequence[str]) -> dict[str, list[int]]:
    """Each entity's positions in SD3's ``[CLIP ; T5]`` text sequence for ``prompt``.

    Raises:
        EntityNotFoundError: An entity is not a whole word of the prompt, or is cut off.
    """
    pipe = backbone.pipe
    return sd3_entity_spans(
        pipe.tokenizer,
        pipe.tokenizer_3,
        prompt,
        entities,
        max_sequence_length=backbone.settings.max_sequence_length,
        clip_length=pipe.tokenizer_max_length,
        use_t5=pipe.text_encoder_3 is not None,
    )


def install_options(backbone) -> dict[str, Any]:
    """The keyword arguments of :func:`install` that a loaded SD3 backbone fixes."""
    return {"max_sequence_length": backbone.settings.max_sequence_length}


def text_length(backbone) -> int:
    """Length of the text part of the joint sequence: CLIP's 77 tokens plus the T5 length."""
    return backbone.pipe.tokenizer_max_length + backbone.settings.max_sequence_length
