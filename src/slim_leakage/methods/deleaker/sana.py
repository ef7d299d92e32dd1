"""DeLeaker on SANA: masks and edits on the softmax cross-attention to the Gemma text tokens.

SANA differs from FLUX in three ways that shape this front end:

* Its self-attention (``attn1``) is linear (ReLU kernels): there is no softmax matrix, so the
  image-image component has nothing to act on. Following the paper's appendix it is off on SANA
  (``image_image_suppression`` is ignored, and text-text suppression does not exist because no
  text token is a query). ``attn1`` keeps its own processor.
* Image-text interaction lives in ``attn2``, a softmax cross-attention from image tokens
  (queries) to Gemma-2 text tokens (keys), with a padding mask. Entity masks are read from its
  post-softmax, head- and sub-token-averaged probabilities (with the same running-mean history,
  threshold and 3x3 smoothing as on FLUX), and the edits act on its pre-softmax logits: for
  each entity pair, an entity's image tokens stop attending to the other entity's text tokens
  (−∞) and their logits to their own tokens are multiplied by ``alpha``.
* The pipeline batches classifier-free guidance as ``[uncond, cond]`` in one transformer call,
  so only the conditional half is edited, and the step is read from the timestep (not counted).

Entity tokens are found in the text SANA really encodes: the prompt is lowercased and
stripped, the "complex human instruction" is prepended, and after padding to
``len(instruction) + max_sequence_length - 2`` only the first token and the last
``max_sequence_length - 1`` are kept. :func:`sana_entity_spans` maps spans through exactly that.

Two processors compute the same thing: :class:`SanaDeLeakerProcessor` keeps only the entity
score history and applies all pair edits at once; :class:`ReferenceSanaProcessor` keeps the
full probability history and runs the literal pair loop. The tests check one against the other.
:func:`install` puts either on a ``SanaPipeline`` for a ``with`` block.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator, Sequence
from typing import Any

from ...errors import ConfigError, EntityNotFoundError
from .config import DeLeakerConfig
from .state import BlockProcessor, DeLeakerState, accumulate, configure, give_masks, installed
from .tokens import entity_pattern, find_entity_tokens

_ATTN2 = re.compile(r"^transformer_blocks\.(\d+)\.attn2\.processor$")


def _instruction_text(instruction: Sequence[str] | None) -> str:
    return "\n".join(instruction) if instruction else ""


def sana_text(prompt: str, instruction: Sequence[str] | None = None) -> str:
    """The text SANA tokenizes for ``prompt``: instruction + lowercased, stripped prompt."""
    return _instruction_text(instruction) + prompt.lower().strip()


def sana_entity_spans(
    tokenizer,
    prompt: str,
    entities: Sequence[str],
    *,
    instruction: Sequence[str] | None = None,
    max_sequence_length: int = 300,
) -> dict[str, list[int]]:
    """Positions of each entity's tokens in the text sequence SANA's transformer sees.

    Args:
        tokenizer: SANA's Gemma tokenizer (fast, with offsets).
        prompt: The user prompt, as given to the pipeline.
        entities: Entity words of the prompt, in order.
        instruction: The complex human instruction lines (``None`` or empty: none).
        max_sequence_length: The pipeline's ``max_sequence_length``.

    Returns:
        ``{entity: sorted positions}`` in the selected ``max_sequence_length`` tokens.

    Raises:
        EntityNotFoundError: If an entity is not in the prompt or is cut off.
    """
    if len({e.lower() for e in entities}) != len(entities):
        raise ConfigError(
            f"Entities {list(entities)!r} repeat a name.", hint="Give each entity once per prompt."
        )
    prefix = _instruction_text(instruction)
    text = sana_text(prompt, instruction)
    if prefix:
        total = len(tokenizer.encode(prefix)) + max_sequence_length - 2
    else:
        total = max_sequence_length
    # positions >= shift + 1 survive the selection [0] + [-(max_sequence_length - 1):]
    shift = total - max_sequence_length
    spans: dict[str, list[int]] = {}
    for entity in entities:
        # Skip matches inside the instruction (SANA's own examples mention animals).
        before = sum(1 for m in entity_pattern(entity).finditer(text) if m.start() < len(prefix))
        try:
            positions = find_entity_tokens(
                tokenizer, text, entity, before, max_sequence_length=total
            )
        except EntityNotFoundError as exc:
            raise EntityNotFoundError(
                f"Entity {entity!r} is not usable in the SANA prompt {prompt!r}: {exc.message}",
                hint=exc.hint,
            ) from exc
        selected = [p - shift for p in positions]
        if min(selected) < 1:
            raise EntityNotFoundError(
                f"Entity {entity!r} falls outside the {max_sequence_length} text tokens SANA "
                f"keeps for the prompt {prompt!r}.",
                hint="Shorten the instruction or raise max_sequence_length.",
            )
        spans[entity] = selected
    return spans


class SanaDeLeakerState(DeLeakerState):
    """DeLeaker's shared state, with SANA's ``[uncond, cond]`` batch layout.

    Attributes:
        item_prompt: For each item of the current transformer batch, the index of the image it
            belongs to (conditional half), or ``None`` (unconditional half: not edited).
        cfg: Whether the current forward batches classifier-free guidance.
    """

    def __init__(self, config: DeLeakerConfig, entities: Any, blocks_per_step: int) -> None:
        super().__init__(config, entities, blocks_per_step)
        self.item_prompt: list[int | None] = []
        self.cfg = False
        self.images_per_prompt = 1

    def set_sana_prompts(
        self,
        prompts: Sequence[str],
        tokenizer,
        *,
        instruction: Sequence[str] | None,
        max_sequence_length: int,
    ) -> None:
        """Resolve every prompt's entity positions through SANA's prompt processing."""
        self.resolve_prompts(
            prompts,
            lambda prompt, entities: sana_entity_spans(
                tokenizer,
                prompt,
                entities,
                instruction=instruction,
                max_sequence_length=max_sequence_length,
            ),
        )

    def prompt_of(self, item: int) -> int:
        """The prompt index of image ``item`` (the conditional half's items, in order)."""
        return item // max(1, self.images_per_prompt)

    def spans_for_batch(self) -> list[dict[str, list[int]]]:
        """Entity spans per batch item: empty for the unconditional half."""
        if self.spans is None:
            raise ConfigError(
                "DeLeaker on SANA does not know the prompt(s) of this generation.",
                hint="Call the pipeline with prompt=..., or pass prompts=[...] to deleaker_sana().",
            )
        n = len(self.spans)
        half = self.batch // 2 if self.cfg else 0
        cond = self.batch - half
        if (self.cfg and self.batch % 2) or cond % n:
            raise ConfigError(
                f"The SANA transformer batch ({self.batch}, CFG={self.cfg}) does not fit "
                f"{n} prompt(s).",
                hint="Pass one prompt per image, or use num_images_per_prompt.",
            )
        per = cond // n
        self.images_per_prompt = per
        self.item_prompt = [None] * half + list(range(cond))
        out: list[dict[str, list[int]]] = []
        for item in self.item_prompt:
            if item is None:
                out.append({})
                continue
            spans = self.spans[item // per]
            for entity, tokens in spans.items():
                if max(tokens) >= self.text_len:
                    raise EntityNotFoundError(
                        f"Entity {entity!r} sits at token {max(tokens)} but SANA's text has "
                        f"{self.text_len} tokens.",
                        hint="Resolve entities with the max_sequence_length used to generate.",
                    )
            out.append(spans)
        return out


class SanaBlockProcessor(BlockProcessor):
    """The SANA ``attn2`` call split around the attention; subclasses edit the logits.

    The steps around the attention follow diffusers' ``SanaAttnProcessor2_0``
    (``diffusers/models/attention_processor.py``): mask preparation, projections, optional
    norms, head split, output projection and ``rescale_output_factor``, so an unedited attention
    gives the stock output (checked in the tests). They stay in this file, in the single-file
    habit of diffusers' processors, because only DeLeaker replaces SANA's attention; FLUX's
    split is shared (:mod:`slim_leakage.backbones.flux_attention`) because two methods use it.

    Args:
        state: The shared :class:`SanaDeLeakerState`.
        offset: The block index (attention calls per step = number of blocks).
        original: The processor it replaces (used outside DeLeaker's windows).
    """

    state: SanaDeLeakerState

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None):
        in_hist, in_edit = self.state.phase(self.offset)
        if encoder_hidden_states is None or not (in_hist or in_edit):
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask)
        batch, n_img, _ = hidden_states.shape
        text_len = encoder_hidden_states.shape[1]
        bias = None
        if attention_mask is not None:
            # as the stock processor: (B, 1, T) additive mask -> (B, H, 1, T)
            bias = attn.prepare_attention_mask(attention_mask, text_len, batch)
            bias = bias.view(batch, attn.heads, -1, bias.shape[-1])
        query = attn.to_q(hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        head_dim = key.shape[-1] // attn.heads
        # (B, S, H*D) -> (B, H, S, D)
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        rows, cols = self.state.grid
        if rows * cols != n_img:
            raise ConfigError(
                f"SANA attention has {n_img} image tokens but the latent grid is {rows}x{cols}.",
                hint="Use patch size 1 and the pipeline's own latents.",
            )
        out = self.attention(query, key, value, bias, in_hist, in_edit)  # (B, H, N, D)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        out = out.to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        return out / attn.rescale_output_factor

    @staticmethod
    def _logits(query, key, bias):
        # (B, H, N, D) x (B, H, T, D) -> (B, H, N, T), float32
        logits = (query.float() @ key.float().transpose(-1, -2)) * query.shape[-1] ** -0.5
        return logits if bias is None else logits + bias.float()

    def attention(self, query, key, value, bias, in_hist: bool, in_edit: bool):
        """The attention output ``(B, H, N, D)``: explicit softmax, edited by :meth:`attend`."""
        import torch

        logits = self._logits(query, key, bias)
        probs = self.attend(logits, torch.softmax(logits, dim=-1), in_hist, in_edit)
        return probs.to(value.dtype) @ value

    def attend(self, logits, probs, in_hist: bool, in_edit: bool):
        """Return the (possibly edited) probabilities ``(B, H, N, T)``."""
        raise NotImplementedError

    def _record(self, b: int, masks: dict) -> None:
        image = self.state.item_prompt[b]
        for entity, mask in masks.items():
            self.state.record_mask(image, entity, mask, self.offset)


class SanaDeLeakerProcessor(SanaBlockProcessor):
    """Entity-score history only, and every pair's edits applied in one vectorised pass.

    For an image token in entity ``i``'s mask the pair loop blocks every other entity's text
    tokens and multiplies its own by ``alpha`` once per pair it is in (``alpha ** (n - 1)``);
    −∞ absorbs the products, so the order of the pairs does not matter. Batch items without
    entities (CFG's unconditional half) keep the fused kernel; only items with entities get
    explicit probabilities.
    """

    def attention(self, query, key, value, bias, in_hist, in_edit):
        """Fused attention for every item, explicit (and edited) for items with entities."""
        import torch
        import torch.nn.functional as F

        items = [b for b, spans in enumerate(self.state.batch_spans) if spans]
        plain = [b for b in range(query.shape[0]) if b not in set(items)]
        out = torch.empty_like(query)
        if plain:
            mask = None if bias is None else bias[plain].to(query.dtype)
            out[plain] = F.scaled_dot_product_attention(
                query[plain], key[plain], value[plain], attn_mask=mask
            )
        if not items:
            return out
        sub_bias = None if bias is None else bias[items]
        logits = self._logits(query[items], key[items], sub_bias)
        probs = torch.softmax(logits, dim=-1)
        probs = self.attend(logits, probs, in_hist, in_edit, items=items)
        out[items] = (probs.to(value.dtype) @ value[items]).to(out.dtype)
        return out

    def attend(self, logits, probs, in_hist, in_edit, *, items=None):
        """Edit the probabilities of ``items`` (rows of ``logits``/``probs``, in that order)."""
        import torch

        from . import ops

        st, cfg = self.state, self.state.config
        edited = None
        items = list(range(logits.shape[0])) if items is None else items
        for r, item in enumerate(items):
            spans = st.batch_spans[item]
            if not spans:
                continue
            b = r
            image = st.item_prompt[item]
            scores = None
            if st.given is None:
                scores = {e: ops.entity_scores(probs[b], ts) for e, ts in spans.items()}  # (N,)
            if in_hist:
                hist = st.history.setdefault(image, {})
                for e, s in scores.items():
                    accumulate(hist, e, s)
            if not in_edit:
                continue
            masks = self.current_masks(image, scores, logits.device)
            self._record(item, masks)
            if len(spans) < 2 or not (cfg.image_text_suppression or cfg.self_identity):
                continue
            if edited is None:
                edited = logits.clone()
            edited[b] = self._edit(logits[b], spans, masks)
        if edited is None:
            return probs
        return torch.softmax(edited, dim=-1).to(probs.dtype)

    def _edit(self, s, spans, masks):
        """Edit logits ``s`` ``(H, N, T)`` in place; only entity token columns change."""
        import torch

        cfg = self.state.config
        n_ent = len(spans)
        tokens = sorted({t for ts in spans.values() for t in ts})
        col = {t: k for k, t in enumerate(tokens)}
        m = torch.stack([masks[e] for e in spans]).to(s.device).float()  # (E, N)
        c = torch.zeros(n_ent, len(tokens), device=s.device)  # (E, K): entity owns column
        for i, ts in enumerate(spans.values()):
            c[i, [col[t] for t in ts]] = 1.0
        index = torch.tensor(tokens, device=s.device)
        sub = s[:, :, index]  # (H, N, K), a copy
        if cfg.self_identity:
            own = (m.T @ c).round()  # (N, K): entities whose mask has the row and own the column
            sub = sub * torch.pow(cfg.alpha, (n_ent - 1) * own)[None]
        if cfg.image_text_suppression:
            others = (c.sum(0, keepdim=True) - c) > 0  # (E, K): column of some other entity
            blocked = (m.T @ others.float()) > 0  # (N, K)
            sub = sub.masked_fill(blocked[None], float("-inf"))
        s[:, :, index] = sub
        return s


class ReferenceSanaProcessor(SanaBlockProcessor):
    """The literal method: full probability history and the pair loop over the logits."""

    def attend(self, logits, probs, in_hist, in_edit):

        from . import ops

        st, cfg = self.state, self.state.config
        cross = dataclasses.replace(cfg, image_image_suppression=False)
        out = probs.clone()
        for b, spans in enumerate(st.batch_spans):
            if not spans:
                continue
            image = st.item_prompt[b]
            if in_hist:
                accumulate(st.history, ("full", image), probs[b])
            if not in_edit:
                continue
            if cfg.use_history and ("full", image) in st.history:
                source = st.history[("full", image)][0]  # (H, N, T)
            else:
                source = probs[b]
            masks = st.given_masks(image, probs.device)
            if masks is None:
                masks = self.masks_from(
                    {e: ops.entity_scores(source, ts) for e, ts in spans.items()}
                )
            self._record(b, masks)
            if len(spans) < 2:
                continue
            # image rows start at 0 (queries are image tokens only); no image-image component
            _, edited = ops.pair_edits(logits[b].clone(), probs[b], 0, spans, masks, cross)
            out[b] = edited.to(probs.dtype)
        return out


def _sana_parts(pipe_or_transformer):
    transformer = getattr(pipe_or_transformer, "transformer", pipe_or_transformer)
    names = list(getattr(transformer, "attn_processors", {}) or {})
    if not any(_ATTN2.match(n) for n in names) or not hasattr(transformer, "set_attn_processor"):
        raise ConfigError(
            f"DeLeaker (SANA) got a {type(pipe_or_transformer).__name__}, not a SanaPipeline or "
            "SanaTransformer2DModel.",
            hint="Pass a diffusers SanaPipeline (or its .transformer).",
        )
    pipe = pipe_or_transformer if transformer is not pipe_or_transformer else None
    return pipe, transformer


def _clock_hook(state: SanaDeLeakerState, pipe, transformer):
    from . import ops

    patch = int(getattr(transformer.config, "patch_size", 1) or 1)
    scale = float(getattr(transformer.config, "timestep_scale", 1.0) or 1.0)

    def hook(module, args, kwargs):
        latents = kwargs.get("hidden_states", args[0] if args else None)
        enc = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
        timestep = kwargs.get("timestep", args[2] if len(args) > 2 else None)
        if latents is None or enc is None or timestep is None:
            raise ConfigError(
                "DeLeaker needs hidden_states, encoder_hidden_states and timestep in the SANA "
                "forward."
            )
        table = getattr(getattr(pipe, "scheduler", None), "timesteps", None)
        if table is None or not len(table):
            raise ConfigError(
                "DeLeaker on SANA reads the step from the scheduler's timesteps.",
                hint="Install it on the SanaPipeline, not on a bare transformer.",
            )
        step = ops.nearest_step(table, float(timestep.reshape(-1)[0]), scale=1.0 / scale)
        state.cfg = bool(getattr(pipe, "do_classifier_free_guidance", False))
        state.forwards += 1
        state.begin_forward(
            step=step,
            num_steps=len(table),
            text_len=enc.shape[1],
            grid=(latents.shape[-2] // patch, latents.shape[-1] // patch),
            batch=enc.shape[0],
        )

    return hook


@contextlib.contextmanager
def install(
    pipe,
    entities: Sequence[str] | Sequence[Sequence[str]],
    prompts: Sequence[str] | str,
    *,
    config: DeLeakerConfig | None = None,
    instruction: Sequence[str] | None = None,
    max_sequence_length: int = 300,
    implementation: str = "fast",
    masks: Any = None,
    **options: Any,
) -> Iterator[SanaDeLeakerState]:
    """Install DeLeaker on a ``SanaPipeline`` for the ``with`` block.

    Example::

        with install(pipe, ["cow", "horse"], "a cow and a horse in a farm") as run:
            image = pipe("a cow and a horse in a farm").images[0]

    The original processors are restored when the block exits, even after an error. The public
    name is :func:`slim_leakage.methods.deleaker.deleaker_sana`.

    Args:
        pipe: A diffusers ``SanaPipeline``.
        entities: Entity words of the prompt, or one list per prompt.
        prompts: The prompt(s) the pipeline will be called with.
        config: A :class:`DeLeakerConfig`; ``**options`` build one instead.
        instruction: The ``complex_human_instruction`` the pipeline will use (``None``: the
            pipeline's default, as when it is not passed; ``()``: none).
        max_sequence_length: The pipeline's ``max_sequence_length``.
        implementation: ``"fast"`` or ``"reference"`` (the literal pair loop, the oracle).
        masks: Entity masks from outside instead of from attention: one ``{entity: mask}`` per
            prompt, or ``masks(index, prompt, entities)`` (see :mod:`.given`).
        **options: :class:`DeLeakerConfig` fields.

    Yields:
        The run state; ``run.final_masks(i)`` gives image ``i``'s last masks.
    """
    config = configure(config, options, implementation)
    if config.text_text_suppression:
        raise ConfigError(
            "text_text_suppression has no meaning on SANA: its text tokens are never queries.",
            hint="Leave text_text_suppression=false on SANA backbones.",
        )
    if config.mask_blocks != "all":
        raise ConfigError(
            f"mask_blocks={config.mask_blocks!r} has no meaning on SANA: it has one kind of block.",
            hint="Leave mask_blocks=all on SANA backbones.",
        )
    pipe_obj, transformer = _sana_parts(pipe)
    if pipe_obj is None:
        raise ConfigError(
            "DeLeaker on SANA needs the SanaPipeline (for its tokenizer and scheduler).",
            hint="Pass the pipeline, not its transformer.",
        )
    if instruction is None:
        import inspect

        param = inspect.signature(type(pipe_obj).__call__).parameters.get(
            "complex_human_instruction"
        )
        instruction = tuple(param.default or ()) if param is not None else ()
    blocks = [n for n in transformer.attn_processors if _ATTN2.match(n)]
    state = SanaDeLeakerState(config, entities, len(blocks))
    give_masks(state, masks)
    state.set_sana_prompts(
        prompts,
        pipe_obj.tokenizer,
        instruction=instruction,
        max_sequence_length=max_sequence_length,
    )
    cls = SanaDeLeakerProcessor if implementation == "fast" else ReferenceSanaProcessor
    processors = {}
    for name, original in transformer.attn_processors.items():
        m = _ATTN2.match(name)
        processors[name] = cls(state, int(m.group(1)), original) if m else original
    hook = _clock_hook(state, pipe_obj, transformer)
    with installed(transformer, processors, pre_hook=hook):
        yield state


# -- what the registered method reads (the shape of every backbone file, see method.py) ---------
#: Facts recorded with every generation on SANA.
EXTRA: dict[str, Any] = {"image_image_suppression": "off on SANA (linear self-attention)"}


def entity_spans(backbone, prompt: str, entities: Sequence[str]) -> dict[str, list[int]]:
    """Each entity's Gemma token positions in the text SANA encodes for ``prompt``.

    Raises:
        EntityNotFoundError: An entity is not a whole word of the prompt, or is cut off.
    """
    return sana_entity_spans(
        backbone.pipe.tokenizer,
        prompt,
        entities,
        **install_options(backbone),
    )


def install_options(backbone) -> dict[str, Any]:
    """The keyword arguments of :func:`install` that a loaded SANA backbone fixes."""
    return {
        "instruction": getattr(backbone, "instruction", None),
        "max_sequence_length": backbone.settings.max_sequence_length,
    }
