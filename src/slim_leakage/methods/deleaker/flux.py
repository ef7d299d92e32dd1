"""DeLeaker on FLUX: its processors (fast and reference), the FLUX clock and ``install(...)``.

Every joint-attention block takes part, double- and single-stream; each sees ``[text ; image]``
and is split around its attention by :mod:`slim_leakage.backbones.flux_attention`.

:class:`ReferenceFluxProcessor` follows the method description literally: it materialises the
logits and probabilities of every block (``batch x heads x L x L``) and keeps the full
post-softmax history, like the official code. It is slow and memory-hungry on purpose: it is the
oracle the fast processor is tested against, and the "official-style" side of
``benchmarks/deleaker_overhead.py``.

The fast path never builds a ``heads x L x L`` tensor. One fused attention call returns the
unedited output and each row's log-sum-exp; the masks need only the image-row x entity-token
slice of the probabilities, ``exp(q k^T * scale - lse)``; and the edits touch only image rows in
some entity mask, at entity text keys and inside cross-entity image rectangles. Those few rows
are corrected in closed form:

    out'_q = (out_q + sum_k (p'_qk - p_qk) v_k) / r_q,   r_q = 1 + sum_k (p'_qk - p_qk)

where ``p`` are the unedited probabilities, ``p'_qk = exp(s'_qk - lse_q)`` the edited logits
measured against the unedited normaliser, and ``k`` runs over the edited keys only. That equals
a softmax over the edited logits (checked against the reference in the tests). Rows whose
edits remove more than half of their attention mass are recomputed explicitly instead, so that
dividing by a small ``r_q`` cannot magnify the fused kernel's rounding.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ...backbones.flux_attention import block_offsets, flux_finish, flux_qkv
from ...errors import ConfigError
from . import ops
from .config import DeLeakerConfig
from .state import BlockProcessor, DeLeakerState, accumulate, configure, give_masks, installed
from .tokens import find_entity_spans

#: Rows whose edited normaliser falls below this share of the unedited one are recomputed.
_RECOMPUTE_BELOW = 0.5
#: Query rows per chunk when rows are recomputed explicitly.
_ROW_CHUNK = 256


class FluxBlockProcessor(BlockProcessor):
    """Common part of the fast and reference processors: one FLUX block's attention call,
    split around the attention (:mod:`slim_leakage.backbones.flux_attention`).

    Args:
        state: The shared :class:`DeLeakerState`.
        offset: This block's position among the attention calls of one forward.
        original: The processor it replaces (run outside DeLeaker's windows).
    """

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: Any = None,
    ):
        in_hist, in_edit = self.state.phase(self.offset)
        if not (in_hist or in_edit):
            return self.original(
                attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb
            )
        if attention_mask is not None:
            raise ConfigError(
                "DeLeaker does not support a joint attention mask on FLUX.",
                hint="Call the pipeline without attention_mask while DeLeaker is installed.",
            )
        query, key, value = flux_qkv(attn, hidden_states, encoder_hidden_states, image_rotary_emb)
        # (B, L, H, D) -> (B, H, L, D)
        out = self.attend(
            query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), in_hist, in_edit
        )
        out = out.transpose(1, 2).flatten(2, 3).to(query.dtype)
        return flux_finish(attn, out, encoder_hidden_states)

    def attend(self, query, key, value, in_hist: bool, in_edit: bool) -> torch.Tensor:
        """Attention of one block inside DeLeaker's windows, ``(B, H, L, D)`` in and out."""
        raise NotImplementedError


class FluxDeLeakerProcessor(FluxBlockProcessor):
    """DeLeaker without ``L x L`` tensors: fused attention plus closed-form row corrections."""

    def attend(self, query, key, value, in_hist, in_edit):
        st, cfg = self.state, self.state.config
        T = st.text_len
        scale = query.shape[-1] ** -0.5
        spans_b = st.batch_spans
        need_lse = in_hist or (in_edit and cfg.any_edit)
        if not need_lse and in_edit and st.given is None:
            need_lse = any(not self.history_ready(b) for b in range(query.shape[0]))
        if not need_lse:
            from diffusers.models.attention_dispatch import dispatch_attention_fn

            out = dispatch_attention_fn(
                query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)
            ).transpose(1, 2)
            lse = None
        else:
            # a fresh tensor: the edits below may write into it in place
            out, lse = ops.attention_with_lse(query, key, value, scale)
        for b, spans in enumerate(spans_b):
            scores = None
            from_attention = st.given is None and (in_hist or not self.history_ready(b))
            if lse is not None and from_attention:
                scores = self._scores(query[b], key[b], lse[b], T, spans, scale)
            if in_hist:
                hist = st.history.setdefault(b, {})
                for e, s in scores.items():  # type: ignore[union-attr]
                    accumulate(hist, e, s)
            if not in_edit:
                continue
            masks = self.current_masks(b, scores, query.device)
            for e, m in masks.items():
                st.record_mask(b, e, m, self.offset)
            if cfg.any_edit and len(spans) >= 2:
                out[b] = self._edit(
                    out[b], lse[b], query[b], key[b], value[b], T, spans, masks, scale
                )  # type: ignore[index]
        return out

    def _tokens(self, spans, device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """All entity token positions and each entity's columns among them (cached on device)."""
        key = ("tokens", tuple((e, tuple(ts)) for e, ts in spans.items()), str(device))
        if key not in self.state.cache:
            tokens = sorted({t for ts in spans.values() for t in ts})
            col = {t: i for i, t in enumerate(tokens)}
            self.state.cache[key] = (
                torch.tensor(tokens, device=device),
                {e: torch.tensor([col[t] for t in ts], device=device) for e, ts in spans.items()},
            )
        return self.state.cache[key]

    def _scores(self, q, k, lse, T, spans, scale) -> dict[str, torch.Tensor]:
        # post-softmax image->entity-text probabilities: (H, N, n_tokens), never (H, L, L)
        tokens, ecols = self._tokens(spans, q.device)
        logits = (q[:, T:].float() @ k[:, tokens].float().transpose(-1, -2)) * scale
        probs = torch.exp(logits - lse[:, T:, None])
        return {e: probs[..., ecols[e]].mean(-1).mean(0) for e in spans}

    def _rows(self, masks) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Masked image rows (union) and, per entity, the positions of its rows among them.

        Cached while the masks are (after the history freezes), so later steps pay no
        host-device synchronisation for these index tensors.
        """
        key = ("rows", id(masks))
        cached = self.state.cache.get(key)
        if cached is not None and cached[0] is masks:
            return cached[1]
        union = torch.stack(list(masks.values())).any(0)
        rows = union.nonzero().squeeze(1)
        member = {e: m[rows].nonzero().squeeze(1) for e, m in masks.items()}
        if any(m is masks for m in self.state.cache.values()):
            self.state.cache[key] = (masks, (rows, member))
        return rows, member

    def _edit(self, out, lse, q, k, v, T, spans, masks, scale) -> torch.Tensor:
        """Apply the pair edits to one batch item; ``out``/``q``/``k``/``v`` are ``(H, L, D)``."""
        cfg = self.state.config
        entities = list(spans)
        pairs = list(itertools.combinations(entities, 2))
        if cfg.text_text_suppression:
            out = self._text_text(out, lse, q, k, v, spans, pairs, scale)
        if not (cfg.image_text_suppression or cfg.self_identity or cfg.image_image_suppression):
            return out
        rows, member = self._rows(masks)
        if rows.numel() == 0:
            return out
        dev = q.device
        tokens, ecols = self._tokens(spans, dev)
        q_r = q[:, T + rows].float()  # (H, r, D)
        lse_r = lse[:, T + rows, None]  # (H, r, 1)
        v_e = v[:, tokens].float()  # (H, n, D)
        s_e = (q_r @ k[:, tokens].float().transpose(-1, -2)) * scale  # (H, r, n)
        p0_e = torch.exp(s_e - lse_r)
        s_cur = s_e.clone()
        ratio = torch.ones(q_r.shape[:2], device=dev)  # (H, r): edited / unedited normaliser
        use_ii = cfg.image_image_suppression
        if use_ii:
            # keys of the cross-entity rectangles are always masked image tokens
            p0_c = torch.exp((q_r @ k[:, T + rows].float().transpose(-1, -2)) * scale - lse_r)
            blocked = torch.zeros(rows.numel(), rows.numel(), dtype=torch.bool, device=dev)
        neg_inf = float("-inf")
        for i, j in pairs:
            ri, rj = member[i], member[j]
            if use_ii:
                # head-averaged current probabilities, before this pair's edits: (r, r), with no
                # (H, r, r) temporary
                avg = torch.einsum("hqk,hq->qk", p0_c, 1.0 / ratio) / p0_c.shape[0]
                avg = avg.masked_fill(blocked, 0.0)
                cuts = []
                for a, c in ((ri, rj), (rj, ri)):
                    if a.numel() and c.numel():
                        cuts.append((a, c, ops.abnormal_links(avg[a][:, c], cfg.beta2)))
                for a, c, hit in cuts:
                    blocked[a[:, None], c[None, :]] |= hit
            if cfg.image_text_suppression:
                s_cur[:, ri[:, None], ecols[j][None, :]] = neg_inf
                s_cur[:, rj[:, None], ecols[i][None, :]] = neg_inf
            if cfg.self_identity:
                for r_, e in ((ri, i), (rj, j)):
                    idx = (slice(None), r_[:, None], ecols[e][None, :])
                    s_cur[idx] = s_cur[idx] * cfg.alpha
            ratio = 1 + (torch.exp(s_cur - lse_r) - p0_e).sum(-1)
            if use_ii:
                ratio = ratio - torch.einsum("hqk,qk->hq", p0_c, blocked.to(p0_c.dtype))
        corr = (torch.exp(s_cur - lse_r) - p0_e) @ v_e
        if use_ii:
            # last use of p0_c: zero the kept links in place, leaving the cut probabilities
            corr = corr - p0_c.mul_(blocked) @ v[:, T + rows].float()
        out[:, T + rows] = ((out[:, T + rows].float() + corr) / ratio[..., None]).to(out.dtype)
        # Where the edits removed most of a row's mass, dividing by a small ratio would magnify
        # the fused kernel's rounding: recompute those rows exactly with the edited logits.
        weak = (ratio < _RECOMPUTE_BELOW).any(0).nonzero().squeeze(1)
        for start in range(0, weak.numel(), _ROW_CHUNK):
            sel = weak[start : start + _ROW_CHUNK]
            logits = (q[:, T + rows[sel]].float() @ k.float().transpose(-1, -2)) * scale
            logits[:, :, tokens] = s_cur[:, sel]
            if use_ii:
                cut = torch.zeros(sel.numel(), logits.shape[-1], dtype=torch.bool, device=dev)
                cut[:, T + rows] = blocked[sel]
                logits = logits.masked_fill(cut, float("-inf"))
            out[:, T + rows[sel]] = (torch.softmax(logits, -1) @ v.float()).to(out.dtype)
        return out

    def _text_text(self, out, lse, q, k, v, spans, pairs, scale) -> torch.Tensor:
        # only the first token of each entity is edited: recompute those few rows exactly
        blocked: dict[int, set[int]] = {}
        for i, j in pairs:
            a, c = spans[i][0], spans[j][0]
            blocked.setdefault(a, set()).add(c)
            blocked.setdefault(c, set()).add(a)
        for row, cols in blocked.items():
            # (H, 1, D) @ (H, D, L) -> (H, 1, L)
            logits = (q[:, row : row + 1].float() @ k.float().transpose(-1, -2)) * scale
            logits[..., sorted(cols)] = float("-inf")
            out[:, row] = (torch.softmax(logits, -1) @ v.float()).squeeze(1).to(out.dtype)
        return out


class ReferenceFluxProcessor(FluxBlockProcessor):
    """Explicit-attention DeLeaker processor for one FLUX block (the oracle)."""

    def attend(self, query, key, value, in_hist, in_edit):
        st, cfg = self.state, self.state.config
        T = st.text_len
        scale = query.shape[-1] ** -0.5
        # (B, H, L, L) in the compute dtype, as the official processor
        logits = (query @ key.transpose(-1, -2)) * scale
        probs = torch.softmax(logits, dim=-1)
        outs = []
        for b, spans in enumerate(st.batch_spans):
            p_b = probs[b]
            if in_hist:
                accumulate(st.history, b, p_b)
            if in_edit:
                if cfg.use_history and b in st.history:
                    source = st.history[b][0]
                else:
                    source = p_b
                image_text = source[:, T:, :T]  # (H, N, T)
                masks = st.given_masks(b, p_b.device)
                if masks is None:
                    masks = self.masks_from(
                        {e: ops.entity_scores(image_text, ts) for e, ts in spans.items()}
                    )
                for e, m in masks.items():
                    st.record_mask(b, e, m, self.offset)
                if cfg.any_edit:
                    _, p_b = ops.pair_edits(logits[b].clone(), p_b, T, spans, masks, cfg)
            outs.append(p_b.to(value.dtype) @ value[b])
        return torch.stack(outs)


# -- clock and installation ---------------------------------------------------------------------
def _flux_parts(pipe_or_transformer):
    transformer = getattr(pipe_or_transformer, "transformer", pipe_or_transformer)
    if not (
        hasattr(transformer, "transformer_blocks")
        and hasattr(transformer, "single_transformer_blocks")
        and hasattr(transformer, "set_attn_processor")
    ):
        raise ConfigError(
            f"DeLeaker (FLUX) got a {type(pipe_or_transformer).__name__}, not a FluxPipeline or "
            "FluxTransformer2DModel.",
            hint="Pass a diffusers FluxPipeline (or its .transformer).",
        )
    pipe = pipe_or_transformer if transformer is not pipe_or_transformer else None
    return pipe, transformer


def _kwarg(args, kwargs, name, position):
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else None


def _clock_hook(state: DeLeakerState, scheduler, num_inference_steps: int | None):
    seen: list[float] = []

    def hook(module, args, kwargs):
        enc = _kwarg(args, kwargs, "encoder_hidden_states", 1)
        timestep = _kwarg(args, kwargs, "timestep", 3)
        img_ids = _kwarg(args, kwargs, "img_ids", 4)
        if enc is None or timestep is None or img_ids is None:
            raise ConfigError(
                "DeLeaker needs encoder_hidden_states, timestep and img_ids in the FLUX forward."
            )
        t = float(timestep.reshape(-1)[0])
        sched = getattr(scheduler, "timesteps", None) if scheduler is not None else None
        if sched is not None and len(sched):
            step = ops.nearest_step(sched, t, scale=1000.0)
            num_steps = len(sched)
        else:
            # no scheduler: steps are the distinct timesteps in order; a rise starts a new run
            if seen and t > seen[-1] + 1e-6:
                seen.clear()
                state.reset()
            if not seen or abs(t - seen[-1]) > 1e-6:
                seen.append(t)
            step, num_steps = len(seen) - 1, int(num_inference_steps or 0)
            if num_steps < 1:
                raise ConfigError(
                    "DeLeaker on a bare transformer needs the number of steps.",
                    hint="Pass num_inference_steps=... to deleaker(), or pass the pipeline.",
                )
        if img_ids.ndim == 3:
            img_ids = img_ids[0]
        state.forwards += 1
        state.begin_forward(
            step=step,
            num_steps=num_steps,
            text_len=enc.shape[1],
            grid=ops.grid_from_ids(img_ids),
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
    num_inference_steps: int | None = None,
    implementation: str = "fast",
    masks: Any = None,
    **options: Any,
) -> Iterator[DeLeakerState]:
    """Install DeLeaker on a ``FluxPipeline`` (or its transformer) for the ``with`` block.

    Example::

        with install(pipe, entities=["cow", "horse"]) as run:
            image = pipe("a cow and a horse in a farm", max_sequence_length=256).images[0]
        run.masks["cow"]  # {step: (rows, cols) bool tensor}

    The original processors are restored when the block exits, even after an error. The public
    name is :func:`slim_leakage.methods.deleaker.deleaker`.

    Args:
        pipe: A diffusers ``FluxPipeline`` or ``FluxTransformer2DModel``.
        entities: Entity words of the prompt, or one list per prompt of a batch.
        config: A :class:`DeLeakerConfig`; ``**options`` build one instead.
        prompts: The prompts, when known in advance (needed with a bare transformer or
            ``prompt_embeds``); otherwise they are read from each pipeline call.
        max_sequence_length: Text length used with ``prompts`` (default 512, as FluxPipeline).
        tokenizer: Tokenizer for ``prompts`` (default ``pipe.tokenizer_2``).
        num_inference_steps: Steps, only for a bare transformer (a pipeline's scheduler says).
            A bare transformer's clock counts distinct timesteps: a repeated timestep is taken
            as true CFG's second call, a rising one as a new generation.
        implementation: ``"fast"`` or ``"reference"`` (explicit attention, the oracle).
        masks: Entity masks from outside instead of from attention: one ``{entity: mask}`` per
            prompt, or ``masks(index, prompt, entities)`` (see :mod:`.given`).
        **options: :class:`DeLeakerConfig` fields.

    Yields:
        The run's :class:`DeLeakerState`; ``run.masks`` holds the first image's masks per entity
        and step, ``run.batch_masks`` every image's.
    """
    config = configure(config, options, implementation)
    pipe_obj, transformer = _flux_parts(pipe)
    offsets = block_offsets(transformer)
    state = DeLeakerState(config, entities, len(offsets))
    state.double_blocks = len(transformer.transformer_blocks)
    give_masks(state, masks)
    tokenizer = tokenizer or (getattr(pipe_obj, "tokenizer_2", None) if pipe_obj else None)
    if prompts is not None:
        if tokenizer is None:
            raise ConfigError(
                "prompts= needs a tokenizer.", hint="Pass tokenizer=pipe.tokenizer_2."
            )
        state.set_prompts(prompts, tokenizer, max_sequence_length or 512)
    cls = FluxDeLeakerProcessor if implementation == "fast" else ReferenceFluxProcessor
    processors = {
        name: cls(state, offsets[name], original)
        for name, original in transformer.attn_processors.items()
    }
    patches = []
    if pipe_obj is not None and prompts is None:
        patches.append((pipe_obj, "encode_prompt", _capturing_encode_prompt(pipe_obj, state)))
    scheduler = getattr(pipe_obj, "scheduler", None)
    hook = _clock_hook(state, scheduler, num_inference_steps)
    with installed(transformer, processors, pre_hook=hook, patches=patches):
        yield state


def _capturing_encode_prompt(pipe, state: DeLeakerState):
    original = pipe.encode_prompt
    fresh = {"forwards": -1}

    def encode_prompt(*args, **kwargs):
        result = original(*args, **kwargs)
        # the first encode after a generation is the positive prompt; a second one before any
        # transformer forward is true CFG's negative prompt and is left alone
        if fresh["forwards"] != state.forwards:
            fresh["forwards"] = state.forwards
            prompt = kwargs.get("prompt_2") or kwargs.get("prompt") or (args[0] if args else None)
            if prompt is None:
                state.spans = None
            else:
                state.set_prompts(prompt, pipe.tokenizer_2, kwargs.get("max_sequence_length", 512))
        return result

    return encode_prompt


# -- what the registered method reads (the shape of every backbone file, see method.py) ---------
#: Facts recorded with every generation on FLUX (none beyond the common ones).
EXTRA: dict[str, Any] = {}


def entity_spans(backbone, prompt: str, entities: Sequence[str]) -> dict[str, list[int]]:
    """Each entity's T5 token positions in ``prompt``, within the backbone's text length.

    Raises:
        EntityNotFoundError: An entity is not a whole word of the prompt, or is cut off.
    """
    return find_entity_spans(
        backbone.tokenizer,
        prompt,
        entities,
        max_sequence_length=backbone.settings.max_sequence_length,
    )


def install_options(backbone) -> dict[str, Any]:
    """The keyword arguments of :func:`install` that a loaded FLUX backbone fixes."""
    return {
        "max_sequence_length": backbone.settings.max_sequence_length,
        "tokenizer": backbone.tokenizer,
    }
