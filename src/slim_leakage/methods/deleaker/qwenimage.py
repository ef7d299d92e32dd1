"""DeLeaker on Qwen-Image: its processors (fast and reference), the clock and ``install(...)``.

Qwen-Image's 60 dual-stream blocks are FLUX's double-stream blocks in all that DeLeaker reads:
``QwenDoubleStreamAttnProcessor2_0`` (diffusers 0.42.1, ``transformer_qwenimage.py``) projects
text and image separately, normalises q/k, applies RoPE and runs one softmax over
``[text ; image]``. So the attention maths is FLUX's: :class:`QwenDeLeakerProcessor` and
:class:`ReferenceQwenProcessor` reuse FLUX's fast and reference ``attend`` and differ only in
how the joint q/k/v are formed and split back, and in the text mask.

Where the layout forces a choice:

- **Every block is dual-stream**, so every block feeds the mask history (``mask_blocks=all``,
  the paper's setting); ``double``/``single`` name FLUX's split and are refused here. The
  windows are fractions of the run, so on 60 blocks the history starts at block 13 of the first
  step and the edits at block 19 (FLUX.1-dev: 12 and 18 of 57).
- **Text masks.** The pipeline pads the prompts of a batch to the longest and passes
  ``encoder_hidden_states_mask`` (dropped when nothing is padded, e.g. one prompt). Padded text
  keys get no attention, as in the original processor: the reference adds ``-inf`` to their
  logits; the fast path runs each image on its own sequence without the padded tokens (the
  same softmax) and gives padded text queries their unedited masked attention.
- **Entity tokens.** The transformer sees the chat-templated prompt minus its first
  ``prompt_template_encode_start_idx`` tokens (34: the system turn and ``<|im_start|>user\\n``),
  truncated to ``max_sequence_length``. Entities are matched in the user's prompt only (never in
  the system line, which says "objects", "text", "background" ...) and their positions are
  the template tokens' positions minus the dropped prefix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ...errors import ConfigError, EntityNotFoundError
from . import ops
from .config import DeLeakerConfig
from .flux import FluxDeLeakerProcessor, ReferenceFluxProcessor
from .state import DeLeakerState, accumulate, configure, give_masks, installed
from .tokens import entity_pattern

# -- entity tokens in a chat template ------------------------------------------------------------


def template_entity_tokens(
    tokenizer,
    template: str,
    prompt: str,
    entity: str,
    *,
    drop: int,
    max_sequence_length: int,
    occurrence: int = 0,
) -> list[int]:
    """Positions of ``entity`` (a whole word of ``prompt``) in the text a transformer sees when
    the prompt is encoded as ``template.format(prompt)`` and the first ``drop`` tokens are
    dropped, truncated to ``max_sequence_length``.

    Raises:
        EntityNotFoundError: The entity is not a whole word of the prompt (often enough), or
            falls past the text length.
    """
    matches = list(entity_pattern(entity).finditer(prompt))
    if len(matches) <= occurrence:
        raise EntityNotFoundError(
            f"Entity {entity!r} occurs {len(matches)} time(s) as a whole word in the prompt "
            f"{prompt!r} (occurrence {occurrence} asked).",
            hint="Entities must appear verbatim as whole words (case-insensitive).",
        )
    shift = template.index("{}")
    start, end = matches[occurrence].start() + shift, matches[occurrence].end() + shift
    enc = tokenizer(template.format(prompt), return_offsets_mapping=True, add_special_tokens=True)
    hits = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if e > s and s < end and e > start]
    kept = [i - drop for i in hits]
    if not kept or min(kept) < 0:
        raise EntityNotFoundError(
            f"Entity {entity!r} of {prompt!r} falls inside the {drop} template tokens the "
            "pipeline drops.",
            hint="The tokenizer does not match the pipeline's template; use the pipeline's own.",
        )
    if max(kept) >= max_sequence_length:
        raise EntityNotFoundError(
            f"Entity {entity!r} falls past max_sequence_length={max_sequence_length} in the "
            f"prompt {prompt!r} (token {max(kept)}).",
            hint="Shorten the prompt or raise max_sequence_length.",
        )
    return kept


def qwen_entity_spans(
    pipe, prompt: str, entities: Sequence[str], max_sequence_length: int, tokenizer=None
) -> dict[str, list[int]]:
    """Each entity's positions in the text part of Qwen-Image's joint attention."""
    if len({e.lower() for e in entities}) != len(entities):
        raise ConfigError(
            f"Entities {list(entities)!r} repeat a name.", hint="Give each entity once per prompt."
        )
    return {
        e: template_entity_tokens(
            tokenizer or pipe.tokenizer,
            pipe.prompt_template_encode,
            prompt,
            e,
            drop=pipe.prompt_template_encode_start_idx,
            max_sequence_length=max_sequence_length,
        )
        for e in entities
    }


# -- the block's attention, split around the softmax --------------------------------------------
def qwen_qkv(attn, hidden_states, encoder_hidden_states, image_rotary_emb):
    """Joint ``(B, L, H, D)`` query, key and value over ``[text ; image]``, as
    ``QwenDoubleStreamAttnProcessor2_0`` forms them (projections, q/k norms, RoPE)."""
    from diffusers.models.transformers.transformer_qwenimage import apply_rotary_emb_qwen

    head_dim = attn.inner_dim // attn.heads

    def heads(x):
        return x.unflatten(-1, (-1, head_dim))

    iq, ik, iv = (heads(f(hidden_states)) for f in (attn.to_q, attn.to_k, attn.to_v))
    tq, tk, tv = (
        heads(f(encoder_hidden_states)) for f in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj)
    )
    if attn.norm_q is not None:
        iq = attn.norm_q(iq)
    if attn.norm_k is not None:
        ik = attn.norm_k(ik)
    if attn.norm_added_q is not None:
        tq = attn.norm_added_q(tq)
    if attn.norm_added_k is not None:
        tk = attn.norm_added_k(tk)
    if image_rotary_emb is not None:
        img_freqs, txt_freqs = image_rotary_emb
        iq, ik = (apply_rotary_emb_qwen(x, img_freqs, use_real=False) for x in (iq, ik))
        tq, tk = (apply_rotary_emb_qwen(x, txt_freqs, use_real=False) for x in (tq, tk))
    return torch.cat([tq, iq], 1), torch.cat([tk, ik], 1), torch.cat([tv, iv], 1)


def qwen_finish(attn, out, text_len: int):
    """``(image output, text output)`` from the joint ``(B, L, H * D)`` attention output."""
    img = attn.to_out[0](out[:, text_len:].contiguous())
    if len(attn.to_out) > 1:
        img = attn.to_out[1](img)
    return img, attn.to_add_out(out[:, :text_len].contiguous())


class _QwenCall:
    """The processor call of both Qwen-Image processors (mixed into FLUX's)."""

    state: DeLeakerState
    offset: int
    original: Any

    def __call__(
        self,
        attn,
        hidden_states,
        encoder_hidden_states=None,
        encoder_hidden_states_mask=None,
        attention_mask=None,
        image_rotary_emb=None,
    ):
        in_hist, in_edit = self.state.phase(self.offset)
        if not (in_hist or in_edit):
            return self.original(
                attn,
                hidden_states,
                encoder_hidden_states,
                encoder_hidden_states_mask,
                attention_mask,
                image_rotary_emb,
            )
        if attention_mask is not None:
            raise ConfigError(
                "DeLeaker on Qwen-Image takes the text mask (encoder_hidden_states_mask), not an "
                "attention_mask.",
                hint="Call the pipeline as usual; it passes the text mask itself.",
            )
        keep = None
        if encoder_hidden_states_mask is not None:
            keep = encoder_hidden_states_mask.bool()
            if bool(keep.all()):
                keep = None
        q, k, v = qwen_qkv(attn, hidden_states, encoder_hidden_states, image_rotary_emb)
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # (B, H, L, D)
        out = self.attend_keys(q, k, v, in_hist, in_edit, keep)
        out = out.transpose(1, 2).flatten(2, 3).to(q.dtype)
        return qwen_finish(attn, out, encoder_hidden_states.shape[1])

    def attend_keys(self, q, k, v, in_hist, in_edit, keep):  # pragma: no cover - abstract
        raise NotImplementedError


@contextlib.contextmanager
def _one_item(state: DeLeakerState, b: int, spans: dict, text_len: int):
    """Let a processor see batch item ``b`` alone, as item 0 of a batch of one with
    ``text_len`` text tokens and ``spans``: its history, masks and cache are item ``b``'s."""
    names = ("batch_spans", "text_len", "history", "cache", "_masks", "batch", "spans")
    saved = {n: getattr(state, n) for n in names}
    saved["prompts"], saved["entities"] = state.prompts, state.entities
    index = state.prompt_of(b)
    try:
        state.batch_spans, state.text_len, state.batch = [spans], text_len, 1
        # the fast processors keep {entity: (mean, count)} per item, the references (mean, count)
        state.history = {0: saved["history"][b]} if b in saved["history"] else {}
        state.cache = saved["cache"].setdefault(("item", b), {})
        state._masks = [saved["_masks"][b]]
        state.spans = [spans]
        if state.prompts is not None:
            state.prompts = [state.prompts[index]]
        state.entities = [state.entities_for(index)]
        yield
    finally:
        if 0 in state.history:
            saved["history"][b] = state.history[0]
        for n in names:
            setattr(state, n, saved[n])
        state.prompts, state.entities = saved["prompts"], saved["entities"]


class QwenDeLeakerProcessor(_QwenCall, FluxDeLeakerProcessor):
    """The fast processor (FLUX's, see :mod:`.flux`) on one Qwen-Image block."""

    def attend_keys(self, q, k, v, in_hist, in_edit, keep):
        if keep is None:
            return self.attend(q, k, v, in_hist, in_edit)
        st = self.state
        T, L = st.text_len, q.shape[2]
        out = torch.empty_like(q)
        image = torch.arange(T, L, device=q.device)
        for b in range(q.shape[0]):
            valid = keep[b].nonzero().squeeze(1)
            idx = torch.cat([valid, image])
            # positions among the kept text tokens (entities are prompt words: never padding)
            rank = (torch.cumsum(keep[b].long(), 0) - 1).tolist()
            spans = {e: [rank[t] for t in ts] for e, ts in st.batch_spans[b].items()}
            with _one_item(st, b, spans, valid.numel()):
                out[b, :, idx] = self.attend(
                    q[b : b + 1, :, idx],
                    k[b : b + 1, :, idx],
                    v[b : b + 1, :, idx],
                    in_hist,
                    in_edit,
                )[0]
            pad = (~keep[b]).nonzero().squeeze(1)
            if pad.numel():
                out[b, :, pad] = torch.nn.functional.scaled_dot_product_attention(
                    q[b, :, pad], k[b, :, idx], v[b, :, idx]
                )
        return out


class ReferenceQwenProcessor(_QwenCall, ReferenceFluxProcessor):
    """Explicit-attention DeLeaker on one Qwen-Image block (the oracle): FLUX's reference with
    the text mask added to the logits."""

    def attend_keys(self, q, k, v, in_hist, in_edit, keep):
        st, cfg = self.state, self.state.config
        T = st.text_len
        logits = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
        if keep is not None:
            cut = torch.zeros(keep.shape[0], q.shape[2], dtype=torch.bool, device=q.device)
            cut[:, :T] = ~keep
            logits = logits.masked_fill(cut[:, None, None, :], float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        outs = []
        for b, spans in enumerate(st.batch_spans):
            p_b = probs[b]
            if in_hist:
                accumulate(st.history, b, p_b)
            if in_edit:
                source = st.history[b][0] if cfg.use_history and b in st.history else p_b
                masks = st.given_masks(b, p_b.device)
                if masks is None:
                    masks = self.masks_from(
                        {e: ops.entity_scores(source[:, T:, :T], ts) for e, ts in spans.items()}
                    )
                for e, m in masks.items():
                    st.record_mask(b, e, m, self.offset)
                if cfg.any_edit:
                    _, p_b = ops.pair_edits(logits[b].clone(), p_b, T, spans, masks, cfg)
            outs.append(p_b.to(v.dtype) @ v[b])
        return torch.stack(outs)


# -- clock and installation ---------------------------------------------------------------------
def _qwen_parts(pipe_or_transformer):
    transformer = getattr(pipe_or_transformer, "transformer", pipe_or_transformer)
    if type(transformer).__name__ != "QwenImageTransformer2DModel":
        raise ConfigError(
            f"DeLeaker (Qwen-Image) got a {type(pipe_or_transformer).__name__}, not a "
            "QwenImagePipeline or QwenImageTransformer2DModel.",
            hint="Pass a diffusers QwenImagePipeline (or its .transformer).",
        )
    pipe = pipe_or_transformer if transformer is not pipe_or_transformer else None
    return pipe, transformer


def _arg(args, kwargs, name, position):
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else None


def _clock_hook(state: DeLeakerState, scheduler):
    def hook(module, args, kwargs):
        hidden = _arg(args, kwargs, "hidden_states", 0)
        enc = _arg(args, kwargs, "encoder_hidden_states", 1)
        timestep = _arg(args, kwargs, "timestep", 3)
        shapes = _arg(args, kwargs, "img_shapes", 4)
        if enc is None or timestep is None or not shapes:
            raise ConfigError(
                "DeLeaker needs encoder_hidden_states, timestep and img_shapes in the "
                "Qwen-Image forward."
            )
        sched = getattr(scheduler, "timesteps", None) if scheduler is not None else None
        if sched is None or not len(sched):
            raise ConfigError(
                "DeLeaker on Qwen-Image reads the step from the pipeline's scheduler.",
                hint="Install it on the QwenImagePipeline, not on a bare transformer.",
            )
        # QwenImagePipeline passes timestep / 1000 (pipeline_qwenimage.py)
        step = ops.nearest_step(sched, float(timestep.reshape(-1)[0]), scale=1000.0)
        _, rows, cols = shapes[0][0]
        if rows * cols != hidden.shape[1]:
            raise ConfigError(
                f"Qwen-Image image tokens ({hidden.shape[1]}) are not the {rows}x{cols} grid of "
                "img_shapes.",
                hint="DeLeaker supports plain text-to-image generation on Qwen-Image.",
            )
        state.forwards += 1
        state.begin_forward(
            step=step,
            num_steps=len(sched),
            text_len=enc.shape[1],
            grid=(int(rows), int(cols)),
            batch=enc.shape[0],
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
    tokenizer=None,
    implementation: str = "fast",
    masks: Any = None,
    **options: Any,
) -> Iterator[DeLeakerState]:
    """Install DeLeaker on a ``QwenImagePipeline`` for the ``with`` block.

    The original processors are restored when the block exits, even after an error.

    Args:
        pipe: A diffusers ``QwenImagePipeline``.
        entities: Entity words of the prompt, or one list per prompt of a batch.
        config: A :class:`DeLeakerConfig`; ``**options`` build one instead.
        prompts: The prompts, when known in advance; otherwise read from each pipeline call.
        max_sequence_length: Text length used with ``prompts`` (default 512, the pipeline's).
        tokenizer: Tokenizer for ``prompts`` (default ``pipe.tokenizer``).
        implementation: ``"fast"`` or ``"reference"`` (explicit attention, the oracle).
        masks: Entity masks from outside instead of from attention (see :mod:`.given`).
        **options: :class:`DeLeakerConfig` fields.

    Yields:
        The run's :class:`DeLeakerState`.
    """
    config = configure(config, options, implementation)
    pipe_obj, transformer = _qwen_parts(pipe)
    if pipe_obj is None:
        raise ConfigError(
            "DeLeaker on Qwen-Image needs the pipeline (its template and scheduler).",
            hint="Pass the QwenImagePipeline.",
        )
    names = list(transformer.attn_processors)
    state = DeLeakerState(config, entities, len(names))
    state.double_blocks = None  # every block is dual-stream: mask_blocks=all only
    give_masks(state, masks)
    length = max_sequence_length or 512

    def spans_of(prompt, ents, max_len=length):
        return qwen_entity_spans(pipe_obj, prompt, ents, max_len, tokenizer)

    if prompts is not None:
        state.resolve_prompts(prompts, spans_of)
    cls = QwenDeLeakerProcessor if implementation == "fast" else ReferenceQwenProcessor
    processors = {
        name: cls(state, i, original)
        for i, (name, original) in enumerate(transformer.attn_processors.items())
    }
    patches = []
    if prompts is None:
        patches.append(
            (pipe_obj, "encode_prompt", _capturing_encode_prompt(pipe_obj, state, spans_of))
        )
    hook = _clock_hook(state, pipe_obj.scheduler)
    with installed(transformer, processors, pre_hook=hook, patches=patches):
        yield state


def _capturing_encode_prompt(pipe, state: DeLeakerState, spans_of):
    original = pipe.encode_prompt
    fresh = {"forwards": -1}

    def encode_prompt(*args, **kwargs):
        result = original(*args, **kwargs)
        # the first encode after a generation is the prompt; a second one before any
        # transformer forward is true CFG's negative prompt and is left alone
        if fresh["forwards"] != state.forwards:
            fresh["forwards"] = state.forwards
            prompt = kwargs.get("prompt", args[0] if args else None)
            if prompt is None:
                state.spans = None
            else:
                length = kwargs.get("max_sequence_length") or 1024
                state.resolve_prompts(prompt, lambda p, e: spans_of(p, e, length))
        return result

    return encode_prompt


# -- what the registered method reads (the shape of every backbone file, see method.py) ---------
#: Facts recorded with every generation on Qwen-Image.
EXTRA: dict[str, Any] = {"text_tokens": "chat template minus its dropped prefix"}


def entity_spans(backbone, prompt: str, entities: Sequence[str]) -> dict[str, list[int]]:
    """Each entity's token positions in the text Qwen-Image's attention sees.

    Raises:
        EntityNotFoundError: An entity is not a whole word of the prompt, or is cut off.
    """
    return qwen_entity_spans(
        backbone.pipe, prompt, entities, backbone.settings.max_sequence_length, backbone.tokenizer
    )


def install_options(backbone) -> dict[str, Any]:
    """The keyword arguments of :func:`install` that a loaded Qwen-Image backbone fixes."""
    return {
        "max_sequence_length": backbone.settings.max_sequence_length,
        "tokenizer": backbone.tokenizer,
    }
