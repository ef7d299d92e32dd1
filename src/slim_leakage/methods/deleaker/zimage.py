"""DeLeaker on Z-Image: its processors (fast and reference), the clock and ``install(...)``.

Z-Image's main blocks are single-stream (``ZSingleStreamAttnProcessor``, diffusers 0.42.1,
``transformer_z_image.py``): one set of projections, q/k RMS norms and RoPE over one sequence,
built per image as ``[image (N) ; image pad (P) ; text (T) ; text pad (Q)]`` (each part padded
to a multiple of 32 with a learnt token; a batch of different text lengths is padded further and
masked). The attention maths is FLUX's, so the processors reuse FLUX's fast and reference
``attend``, which read ``[text ; image]``: each image's sequence is reordered to
``[text ; text pad ; image pad ; image]`` before the attention (the hidden states and RoPE
factors, before the projections) and the output is put back in place after it. Attention is the
same under a reordering of its tokens (queries, keys and values together), so this changes no
value; the pad tokens stand with the text as keys no entity owns.

Where the layout forces a choice:

- **Which blocks.** Only the main blocks (``transformer.layers``) take part: the refiner blocks
  see the image alone or the text alone, so there is no image-text attention to read or edit.
  All main blocks feed the history (``mask_blocks=all``; ``double``/``single`` are refused).
- **Text queries are edited blocks' outputs too**, as in FLUX.1's single-stream blocks: the text
  tokens are updated by every block, and text-text suppression edits their rows.
- **Entity tokens.** The transformer sees the whole chat-formatted prompt (Qwen3's template,
  ``<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n``), nothing dropped,
  truncated to ``max_sequence_length``; positions count from ``<|im_start|>``.
- **CFG** is batched (conditional half first) when ``guidance_scale > 0``: only the conditional
  half is edited and feeds the history. One image per prompt (the registered method's call).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ...errors import ConfigError
from . import ops
from .config import DeLeakerConfig
from .flux import FluxDeLeakerProcessor, ReferenceFluxProcessor
from .qwenimage import _one_item, template_entity_tokens
from .state import DeLeakerState, configure, give_masks

#: Z-Image pads the image and the text parts to multiples of this (``SEQ_MULTI_OF``).
SEQ_MULTI_OF = 32


def zimage_entity_spans(
    tokenizer, prompt: str, entities: Sequence[str], max_sequence_length: int
) -> dict[str, list[int]]:
    """Each entity's positions in the text part of Z-Image's attention (the chat-formatted
    prompt, no token dropped)."""
    from ...backbones.zimage import zimage_text

    if len({e.lower() for e in entities}) != len(entities):
        raise ConfigError(
            f"Entities {list(entities)!r} repeat a name.", hint="Give each entity once per prompt."
        )
    template = zimage_text(tokenizer, "{}")
    return {
        e: template_entity_tokens(
            tokenizer, template, prompt, e, drop=0, max_sequence_length=max_sequence_length
        )
        for e in entities
    }


def _rope(x, freqs_cis):
    # ZSingleStreamAttnProcessor's rotary embedding, in float32 then back
    out = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(out * freqs_cis.unsqueeze(2)).flatten(3).type_as(x)


def zimage_qkv(attn, hidden_states, freqs_cis):
    """``(B, H, L, D)`` query, key and value as ``ZSingleStreamAttnProcessor`` forms them."""
    q, k, v = (
        f(hidden_states).unflatten(-1, (attn.heads, -1)) for f in (attn.to_q, attn.to_k, attn.to_v)
    )
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    if freqs_cis is not None:
        q, k = _rope(q, freqs_cis), _rope(k, freqs_cis)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


def zimage_out(attn, out):
    """The block's attention output from ``(B, H, L, D)``."""
    out = attn.to_out[0](out.transpose(1, 2).flatten(2, 3))
    return attn.to_out[1](out) if len(attn.to_out) > 1 else out


class _ZImageCall:
    """The processor call of both Z-Image processors (mixed into FLUX's)."""

    state: DeLeakerState
    offset: int
    original: Any

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, freqs_cis=None
    ):
        st = self.state
        in_hist, in_edit = st.phase(self.offset)
        stock = (attn, hidden_states, encoder_hidden_states, attention_mask, freqs_cis)
        if not (in_hist or in_edit):
            return self.original(*stock)
        if not (in_edit and st.config.any_edit and any(len(s) > 1 for s in st.batch_spans)):
            # nothing to edit: masks and history from the reordered sequence, the output from
            # the stock processor (reordering the keys would change its rounding)
            self.deleaker(attn, hidden_states, attention_mask, freqs_cis, in_hist, in_edit)
            return self.original(*stock)
        return self.deleaker(attn, hidden_states, attention_mask, freqs_cis, in_hist, in_edit)

    def deleaker(self, attn, hidden_states, attention_mask, freqs_cis, in_hist, in_edit):
        """The block's output with DeLeaker (masks, history and edits) on the conditional
        images, the stock output on the rest."""
        st = self.state
        n = st.batch  # the conditional images; a CFG batch's second half is left alone
        out = torch.empty_like(hidden_states)
        if hidden_states.shape[0] > n:
            rest = None if attention_mask is None else attention_mask[n:]
            out[n:] = self.original(attn, hidden_states[n:], None, rest, freqs_cis[n:])
        layout = st.zimage_layout
        if attention_mask is None or bool(attention_mask[:n].all()):
            # every image has the same sequence: reorder the inputs once, attend as a batch
            perm = layout.order(0, hidden_states.device)
            q, k, v = zimage_qkv(attn, hidden_states[:n, perm], freqs_cis[:n, perm])
            st.text_len = layout.text_part(0)
            o = self.attend(q, k, v, in_hist, in_edit)
            out[:n, perm] = zimage_out(attn, o.to(q.dtype))
            return out
        for b in range(n):
            perm = layout.order(b, hidden_states.device)
            valid = perm.numel()
            q, k, v = zimage_qkv(attn, hidden_states[b : b + 1], freqs_cis[b : b + 1])
            with _one_item(st, b, st.batch_spans[b], layout.text_part(b)):
                o = self.attend(q[:, :, perm], k[:, :, perm], v[:, :, perm], in_hist, in_edit)
            full = torch.empty_like(q)
            full[:, :, perm] = o.to(q.dtype)
            if valid < q.shape[2]:  # batch padding: masked keys, unedited rows
                keys = torch.arange(valid, device=q.device)
                full[:, :, valid:] = torch.nn.functional.scaled_dot_product_attention(
                    q[:, :, valid:], k[:, :, keys], v[:, :, keys]
                )
            out[b] = zimage_out(attn, full)[0]
        return out


class ZImageDeLeakerProcessor(_ZImageCall, FluxDeLeakerProcessor):
    """The fast processor (FLUX's, see :mod:`.flux`) on one Z-Image main block."""


class ReferenceZImageProcessor(_ZImageCall, ReferenceFluxProcessor):
    """Explicit-attention DeLeaker on one Z-Image main block (the oracle)."""


# -- clock and installation ---------------------------------------------------------------------
class _Layout:
    """Where image, text and padding sit in one forward's unified sequences."""

    def __init__(self, n_img: int, texts: Sequence[int]) -> None:
        self.n_img = n_img
        self.img_pad = (-n_img) % SEQ_MULTI_OF
        self.texts = [t + (-t) % SEQ_MULTI_OF for t in texts]  # text with its pad, per image
        self._cache: dict = {}

    def text_part(self, b: int) -> int:
        """Tokens before the image in the reordered sequence: text, text pad, image pad."""
        return self.texts[b] + self.img_pad

    def order(self, b: int, device) -> torch.Tensor:
        """Image ``b``'s reordering ``[text ; text pad ; image pad ; image]`` of its sequence."""
        key = (self.texts[b], str(device))
        if key not in self._cache:
            start = self.n_img + self.img_pad
            self._cache[key] = torch.cat(
                [
                    torch.arange(start, start + self.texts[b]),
                    torch.arange(self.n_img, start),
                    torch.arange(0, self.n_img),
                ]
            ).to(device)
        return self._cache[key]


def _clock_hook(state: DeLeakerState, pipe):
    def hook(module, args, kwargs):
        x = kwargs.get("x", args[0] if args else None)
        t = kwargs.get("t", args[1] if len(args) > 1 else None)
        caps = kwargs.get("cap_feats", args[2] if len(args) > 2 else None)
        patch = kwargs.get("patch_size", 2)
        if x is None or t is None or caps is None or isinstance(x[0], list):
            raise ConfigError(
                "DeLeaker needs x, t and cap_feats of a plain text-to-image Z-Image forward.",
                hint="Omni (image-conditioned) Z-Image is not supported.",
            )
        sched = pipe.scheduler.timesteps
        # ZImagePipeline passes t = (1000 - timestep) / 1000 (pipeline_z_image.py)
        step = ops.nearest_step(sched, 1.0 - float(t.reshape(-1)[0]), scale=1000.0)
        rows, cols = x[0].shape[-2] // patch, x[0].shape[-1] // patch
        n = len(state.spans or ())
        if n == 0 or len(x) not in (n, 2 * n):
            raise ConfigError(
                f"DeLeaker on Z-Image got {len(x)} images in a forward for {n} prompt(s).",
                hint="Generate one image per prompt (num_images_per_prompt=1).",
            )
        state.zimage_layout = _Layout(rows * cols, [len(c) for c in caps[:n]])
        state.forwards += 1
        state.begin_forward(
            step=step,
            num_steps=len(sched),
            text_len=state.zimage_layout.text_part(0),
            grid=(rows, cols),
            batch=n,
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
) -> Iterator[DeLeakerState]:
    """Install DeLeaker on a ``ZImagePipeline`` for the ``with`` block; the original
    processors, hook and ``encode_prompt`` are restored on exit, even after an error.

    Args:
        pipe: A diffusers ``ZImagePipeline``.
        entities: Entity words of the prompt, or one list per prompt of a batch.
        config: A :class:`DeLeakerConfig`; ``**options`` build one instead.
        prompts: The prompts, when known in advance; otherwise read from each pipeline call.
        max_sequence_length: Text length used with ``prompts`` (default 512, the pipeline's).
        implementation: ``"fast"`` or ``"reference"`` (explicit attention, the oracle).
        masks: Entity masks from outside instead of from attention (see :mod:`.given`).
        **options: :class:`DeLeakerConfig` fields.

    Yields:
        The run's :class:`DeLeakerState`.
    """
    config = configure(config, options, implementation)
    transformer = getattr(pipe, "transformer", None)
    if type(transformer).__name__ != "ZImageTransformer2DModel":
        raise ConfigError(
            f"DeLeaker (Z-Image) got a {type(pipe).__name__}, not a ZImagePipeline.",
            hint="Pass a diffusers ZImagePipeline.",
        )
    attentions = [layer.attention for layer in transformer.layers]
    state = DeLeakerState(config, entities, len(attentions))
    state.double_blocks = None  # single-stream blocks only: mask_blocks=all
    give_masks(state, masks)

    def spans_of(prompt, ents, length=max_sequence_length or 512):
        return zimage_entity_spans(pipe.tokenizer, prompt, ents, length)

    if prompts is not None:
        state.resolve_prompts(prompts, spans_of)
    cls = ZImageDeLeakerProcessor if implementation == "fast" else ReferenceZImageProcessor
    originals = [a.processor for a in attentions]
    handle = None
    encode = pipe.__dict__.get("encode_prompt")
    try:
        for i, a in enumerate(attentions):
            a.processor = cls(state, i, originals[i])
        if prompts is None:
            pipe.encode_prompt = _capturing_encode_prompt(pipe, state, spans_of)
        handle = transformer.register_forward_pre_hook(_clock_hook(state, pipe), with_kwargs=True)
        yield state
    finally:
        if handle is not None:
            handle.remove()
        for a, original in zip(attentions, originals):
            a.processor = original
        if encode is None:
            pipe.__dict__.pop("encode_prompt", None)
        else:
            pipe.encode_prompt = encode


def _capturing_encode_prompt(pipe, state: DeLeakerState, spans_of):
    original = pipe.encode_prompt

    def encode_prompt(*args, **kwargs):
        prompt = kwargs.get("prompt", args[0] if args else None)
        if prompt is None:
            state.spans = None
        else:
            length = kwargs.get("max_sequence_length") or 512
            state.resolve_prompts(prompt, lambda p, e: spans_of(p, e, length))
        return original(*args, **kwargs)

    return encode_prompt


# -- what the registered method reads (the shape of every backbone file, see method.py) ---------
#: Facts recorded with every generation on Z-Image.
EXTRA: dict[str, Any] = {"text_tokens": "whole chat template"}


def entity_spans(backbone, prompt: str, entities: Sequence[str]) -> dict[str, list[int]]:
    """Each entity's token positions in the text Z-Image's main blocks see.

    Raises:
        EntityNotFoundError: An entity is not a whole word of the prompt, or is cut off.
    """
    return zimage_entity_spans(
        backbone.tokenizer, prompt, entities, backbone.settings.max_sequence_length
    )


def install_options(backbone) -> dict[str, Any]:
    """The keyword arguments of :func:`install` that a loaded Z-Image backbone fixes."""
    return {"max_sequence_length": backbone.settings.max_sequence_length}
