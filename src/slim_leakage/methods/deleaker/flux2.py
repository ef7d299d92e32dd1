"""DeLeaker on FLUX.2 ([dev] and [klein]): processors (fast and reference), clock, ``install``.

FLUX.2 keeps FLUX.1's joint layout (``[text ; image]``, RoPE on both, double-stream blocks
then single-stream ones), so the DeLeaker maths is FLUX's (:mod:`.flux`) and the processors
here only differ where diffusers' FLUX.2 processors do (``transformer_flux2.py``):

- the double-stream attention (``Flux2AttnProcessor``) is FLUX.1's step for step, so FLUX's
  processors run on it unchanged;
- the single-stream attention (``Flux2ParallelSelfAttnProcessor``) fuses the q/k/v and MLP input
  projections into one matrix and the attention and MLP output projections into another; its
  processor here splits the fused projection as diffusers does, runs DeLeaker's attention on the
  q/k/v part and applies the fused output projection to ``[attention ; SwiGLU(MLP)]``.

The text is a chat model's hidden states over the whole chat-templated sequence (template
tokens included, padded to ``max_sequence_length``), so an entity's positions are those of its
words inside the user turn of the rendered template (:func:`chat_entity_spans`); the template's
prefix (system prompt on [dev], the ``user`` header on [klein]) is kept, as the pipelines keep
it. [klein] base's CFG is a second transformer call per step (not edited, as FLUX.1's true CFG);
[dev] embeds the guidance and distilled [klein] has none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from ...backbones.flux_attention import block_offsets
from ...errors import ConfigError, EntityNotFoundError
from . import ops
from .config import DeLeakerConfig
from .flux import FluxDeLeakerProcessor, ReferenceFluxProcessor
from .state import DeLeakerState, configure, give_masks, installed
from .tokens import entity_pattern

#: Pieces that only mark a word boundary (SentencePiece, byte-level BPE): dropped when they
#: stand alone at the start of an entity's span, as on FLUX.1.
_LONE_PIECES = ("\u2581", "\u0120")
_SENTINEL = "\x00slim-prompt\x00"


def chat_entity_spans(
    tokenizer,
    prompt: str,
    entities: Sequence[str],
    *,
    render: Callable[[str], str],
    max_sequence_length: int,
    add_special_tokens: bool = True,
) -> dict[str, list[int]]:
    """Each entity's token positions in the chat-templated text a FLUX.2 pipeline encodes.

    Args:
        tokenizer: A fast tokenizer (offsets).
        prompt: The user's prompt.
        entities: Distinct entity strings, whole words of the prompt.
        render: ``prompt -> the full templated text`` as the pipeline renders it.
        max_sequence_length: The pipeline's text length (truncation).
        add_special_tokens: Whether the pipeline's tokenizer call adds special tokens.

    Returns:
        ``{entity: positions}`` in the templated sequence (prefix tokens included).

    Raises:
        EntityNotFoundError: An entity is not a whole word of the prompt or is truncated.
        ConfigError: Repeated entities, or a template that does not contain the prompt verbatim.
    """
    if len({e.lower() for e in entities}) != len(entities):
        raise ConfigError(
            f"Entities {list(entities)!r} repeat a name.", hint="Give each entity once per prompt."
        )
    text = render(prompt)
    start = render(_SENTINEL).find(_SENTINEL)
    if start < 0 or text[start : start + len(prompt)] != prompt:
        raise ConfigError(
            "The chat template does not contain the prompt verbatim after its prefix.",
            hint="DeLeaker on FLUX.2 needs the pipeline's own chat template.",
        )
    enc = tokenizer(
        text,
        return_offsets_mapping=True,
        add_special_tokens=add_special_tokens,
        truncation=True,
        max_length=int(max_sequence_length),
    )
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    spans: dict[str, list[int]] = {}
    for entity in entities:
        match = entity_pattern(entity).search(prompt)
        if match is None:
            raise EntityNotFoundError(
                f"Entity {entity!r} does not occur as a whole word in the prompt {prompt!r}.",
                hint="Entities must appear verbatim as whole words (case-insensitive).",
            )
        lo, hi = start + match.start(), start + match.end()
        hits = [i for i, (s, e) in enumerate(offsets) if e > s and s < hi and e > lo]
        if not hits or max(offsets[i][1] for i in hits) < hi:
            raise EntityNotFoundError(
                f"Entity {entity!r} falls past max_sequence_length={max_sequence_length} of the "
                f"chat-templated prompt {prompt!r}.",
                hint="Shorten the prompt or raise max_sequence_length.",
            )
        first = tokenizer.convert_ids_to_tokens(enc["input_ids"][hits[0]])
        spans[entity] = hits[1:] if first in _LONE_PIECES and len(hits) > 1 else hits
    return spans


def pipeline_render(pipe) -> tuple[Callable[[str], str], bool]:
    """How ``pipe`` renders a prompt into text, and whether it adds special tokens.

    [klein] (``Flux2KleinPipeline._get_qwen3_prompt_embeds``): one user message,
    ``add_generation_prompt=True, enable_thinking=False``, then ``tokenizer(text)``.
    [dev] (``Flux2Pipeline._get_mistral_3_small_prompt_embeds``): ``format_input`` with the
    pipeline's system message, ``apply_chat_template(add_generation_prompt=False)``, which
    tokenizes without adding special tokens (the template writes them).
    """
    tokenizer = pipe.tokenizer
    if hasattr(pipe, "_get_qwen3_prompt_embeds"):

        def render(prompt: str) -> str:
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}],
                tokenize=False,
                add_generation_prompt=True,
                enable_thinking=False,
            )

        return render, True
    from diffusers.pipelines.flux2.pipeline_flux2 import format_input

    system = getattr(pipe, "system_message", None)

    def render_dev(prompt: str) -> str:
        messages = format_input(prompts=[prompt], system_message=system)[0]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

    return render_dev, False


def _text_tokenizer(pipe):
    return getattr(pipe.tokenizer, "tokenizer", pipe.tokenizer)


class Flux2SingleProcessorMixin:
    """The FLUX.2 single-stream call (fused projections) around DeLeaker's ``attend``."""

    def __call__(self, attn, hidden_states, attention_mask=None, image_rotary_emb=None, **kwargs):
        st = self.state
        in_hist, in_edit = st.phase(self.offset)
        if not (in_hist or in_edit):
            return self.original(attn, hidden_states, attention_mask, image_rotary_emb, **kwargs)
        if attention_mask is not None or kwargs.get("kv_cache_mode") is not None:
            raise ConfigError(
                "DeLeaker does not support attention masks or the KV cache on FLUX.2.",
                hint="Generate text-to-image without reference images while it is installed.",
            )
        from diffusers.models.embeddings import apply_rotary_emb

        fused = attn.to_qkv_mlp_proj(hidden_states)
        qkv_dim = 3 * attn.inner_dim
        qkv, mlp = torch.split(fused, [qkv_dim, fused.shape[-1] - qkv_dim], dim=-1)
        query, key, value = (x.unflatten(-1, (-1, attn.head_dim)) for x in qkv.chunk(3, dim=-1))
        query, key = attn.norm_q(query), attn.norm_k(key)
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
        out = self.attend(
            query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), in_hist, in_edit
        )
        out = out.transpose(1, 2).flatten(2, 3).to(query.dtype)
        return attn.to_out(torch.cat([out, attn.mlp_act_fn(mlp)], dim=-1))


class Flux2SingleDeLeakerProcessor(Flux2SingleProcessorMixin, FluxDeLeakerProcessor):
    """Fast DeLeaker on a FLUX.2 single-stream block."""


class ReferenceFlux2SingleProcessor(Flux2SingleProcessorMixin, ReferenceFluxProcessor):
    """Explicit-attention DeLeaker on a FLUX.2 single-stream block (the oracle)."""


# -- clock and installation ---------------------------------------------------------------------
def _flux2_parts(pipe):
    transformer = getattr(pipe, "transformer", None)
    if transformer is None or type(transformer).__name__ != "Flux2Transformer2DModel":
        raise ConfigError(
            f"DeLeaker (FLUX.2) got a {type(pipe).__name__}, not a Flux2Pipeline or "
            "Flux2KleinPipeline.",
            hint="Pass the diffusers FLUX.2 pipeline (its tokenizer and scheduler are needed).",
        )
    return transformer


def _clock_hook(state: DeLeakerState, pipe):
    def hook(module, args, kwargs):
        enc = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
        timestep = kwargs.get("timestep", args[2] if len(args) > 2 else None)
        img_ids = kwargs.get("img_ids", args[3] if len(args) > 3 else None)
        if enc is None or timestep is None or img_ids is None:
            raise ConfigError(
                "DeLeaker needs encoder_hidden_states, timestep and img_ids in the FLUX.2 forward."
            )
        table = pipe.scheduler.timesteps
        # the FLUX.2 pipelines pass timestep / 1000
        step = ops.nearest_step(table, float(timestep.reshape(-1)[0]), scale=1000.0)
        ids = img_ids[0] if img_ids.ndim == 3 else img_ids
        state.forwards += 1
        state.begin_forward(
            step=step,
            num_steps=len(table),
            text_len=enc.shape[1],
            grid=ops.grid_from_ids(ids),  # ids are (t, h, w, l): columns 1 and 2
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
    implementation: str = "fast",
    masks: Any = None,
    **options: Any,
) -> Iterator[DeLeakerState]:
    """Install DeLeaker on a ``Flux2Pipeline`` or ``Flux2KleinPipeline`` for the ``with`` block.

    Example::

        with install(pipe, ["cow", "horse"]) as run:
            image = pipe("a cow and a horse in a farm").images[0]

    The original processors are restored when the block exits, even after an error.

    Args:
        pipe: A diffusers FLUX.2 pipeline.
        entities: Entity words of the prompt, or one list per prompt of a batch.
        config: A :class:`DeLeakerConfig`; ``**options`` build one instead.
        prompts: The prompts, when known in advance; otherwise read from each pipeline call.
        max_sequence_length: Text length used with ``prompts`` (default 512, as the pipelines).
        implementation: ``"fast"`` or ``"reference"`` (explicit attention, the oracle).
        masks: Entity masks from outside instead of from attention (see :mod:`.given`).
        **options: :class:`DeLeakerConfig` fields.

    Yields:
        The run state; ``run.final_masks(i)`` gives image ``i``'s last masks.
    """
    config = configure(config, options, implementation)
    transformer = _flux2_parts(pipe)
    offsets = block_offsets(transformer)
    state = DeLeakerState(config, entities, len(offsets))
    state.double_blocks = len(transformer.transformer_blocks)
    give_masks(state, masks)
    render, special = pipeline_render(pipe)
    tokenizer = _text_tokenizer(pipe)

    def resolve(prompt_list, length):
        state.resolve_prompts(
            prompt_list,
            lambda prompt, ents: chat_entity_spans(
                tokenizer,
                prompt,
                ents,
                render=render,
                max_sequence_length=length,
                add_special_tokens=special,
            ),
        )

    patches = []
    if prompts is not None:
        resolve(prompts, max_sequence_length or 512)
    else:
        patches.append((pipe, "encode_prompt", _capturing_encode_prompt(pipe, state, resolve)))
    fast = implementation == "fast"
    double_cls = FluxDeLeakerProcessor if fast else ReferenceFluxProcessor
    single_cls = Flux2SingleDeLeakerProcessor if fast else ReferenceFlux2SingleProcessor
    processors = {
        name: (double_cls if offsets[name] < state.double_blocks else single_cls)(
            state, offsets[name], original
        )
        for name, original in transformer.attn_processors.items()
    }
    with installed(transformer, processors, pre_hook=_clock_hook(state, pipe), patches=patches):
        yield state


def _capturing_encode_prompt(pipe, state: DeLeakerState, resolve):
    original = pipe.encode_prompt
    fresh = {"forwards": -1}

    def encode_prompt(*args, **kwargs):
        # the first encode of a generation is the prompt; [klein]'s second one (the empty
        # negative prompt, before any transformer forward) is left alone
        if fresh["forwards"] != state.forwards:
            fresh["forwards"] = state.forwards
            prompt = kwargs.get("prompt", args[0] if args else None)
            if prompt is None:
                raise ConfigError(
                    "DeLeaker on FLUX.2 does not know the prompt (prompt_embeds were given).",
                    hint="Pass prompts=[...] (and max_sequence_length=) to install().",
                )
            resolve(prompt, kwargs.get("max_sequence_length", 512))
        return original(*args, **kwargs)

    return encode_prompt


# -- what the registered method reads (the shape of every backbone file, see method.py) ---------
#: Facts recorded with every generation on FLUX.2.
EXTRA: dict[str, Any] = {"entity_tokens_from": "chat-templated text, template prefix kept"}


def entity_spans(backbone, prompt: str, entities: Sequence[str]) -> dict[str, list[int]]:
    """Each entity's positions in the chat-templated text FLUX.2 encodes for ``prompt``.

    Raises:
        EntityNotFoundError: An entity is not a whole word of the prompt, or is cut off.
    """
    render, special = pipeline_render(backbone.pipe)
    return chat_entity_spans(
        _text_tokenizer(backbone.pipe),
        prompt,
        entities,
        render=render,
        max_sequence_length=backbone.settings.max_sequence_length,
        add_special_tokens=special,
    )


def install_options(backbone) -> dict[str, Any]:
    """The keyword arguments of :func:`install` that a loaded FLUX.2 backbone fixes."""
    return {"max_sequence_length": backbone.settings.max_sequence_length}
