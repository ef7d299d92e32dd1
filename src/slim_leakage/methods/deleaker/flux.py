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
#: Bytes per head, masked row and head dimension that the cut-link correction may hold for a
#: whole row loop (keys, values and value sums in float32 take at most 12): head blocks sized
#: with it leave the row blocks at least a quarter of the working set.
_CUT_HEAD_BYTES = 16


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
        # post-softmax image->entity-text probabilities summed over heads, in head and row
        # blocks: never (H, L, L), nor a float copy of every image query at once
        tokens, ecols = self._tokens(spans, q.device)
        H, L, D = q.shape
        n_img, n = L - T, tokens.numel()
        k_e = k[:, tokens].float()  # (H, n, D)
        total = torch.zeros(n_img, n, device=q.device)
        row_bytes = 4 * (D + 2 * n)
        for hs in ops.blocks(H, n_img * row_bytes):
            h = hs.stop - hs.start
            for rs in ops.blocks(n_img, h * row_bytes):
                rows = slice(T + rs.start, T + rs.stop)
                logits = (q[hs, rows].float() @ k_e[hs].transpose(-1, -2)) * scale
                total[rs] += torch.exp(logits - lse[hs, rows, None]).sum(0)
        probs = total / H
        return {e: probs[:, ecols[e]].mean(-1) for e in spans}

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
        """Apply the pair edits to one batch item; ``out``/``q``/``k``/``v`` are ``(H, L, D)``.

        Everything that would be ``heads x rows x rows`` (the image-image statistics and their
        correction) or ``heads x rows x L`` (exactly recomputed rows) is computed in blocks of
        heads and rows within :data:`ops.WORKING_SET_BYTES`.
        """
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
        H, L, D = q.shape
        tokens, ecols = self._tokens(spans, dev)
        img = T + rows  # joint positions of the masked image rows
        r, n = rows.numel(), tokens.numel()
        lse_r = lse[:, img]  # (H, r)
        k_e, v_e = k[:, tokens].float(), v[:, tokens].float()  # (H, n, D)
        s_e = torch.empty(H, r, n, device=dev)
        for hs in ops.blocks(H, r * 4 * (D + n)):
            s_e[hs] = (q[hs][:, img].float() @ k_e[hs].transpose(-1, -2)) * scale
        p0_e = torch.exp(s_e - lse_r[..., None])
        s_cur = s_e.clone()
        use_ii = cfg.image_image_suppression
        blocked = torch.zeros(r, r, dtype=torch.bool, device=dev) if use_ii else None
        # unedited probability of the links cut so far, per head and row (for later pairs)
        cut_mass = torch.zeros(H, r, device=dev)
        ratio = torch.ones(H, r, device=dev)  # edited / unedited normaliser
        neg_inf = float("-inf")
        # the links each cross-entity rectangle cut first (_links): every cut counted once
        pieces: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for index, (i, j) in enumerate(pairs):
            ri, rj = member[i], member[j]
            if use_ii:
                cuts = []
                for a, c in ((ri, rj), (rj, ri)):
                    if a.numel() and c.numel():
                        # head-averaged current probabilities, before this pair's edits
                        avg = self._head_mean(q, k, lse_r, ratio, img, a, c, scale)
                        avg = avg.masked_fill(blocked[a][:, c], 0.0)
                        cuts.append((a, c, ops.abnormal_links(avg, cfg.beta2)))
                for a, c, hit in cuts:
                    links = self._links(img, a, c, hit & ~blocked[a][:, c])
                    blocked[a[:, None], c[None, :]] |= hit
                    pieces.append(links)
                    if index + 1 < len(pairs):  # only later pairs read the running ratio
                        for hs in ops.blocks(H, _CUT_HEAD_BYTES * r * D):
                            mass, _ = self._cut(q, k, v, lse_r, img, links, scale, hs)
                            cut_mass[hs][:, links[0]] += mass
            if cfg.image_text_suppression:
                s_cur[:, ri[:, None], ecols[j][None, :]] = neg_inf
                s_cur[:, rj[:, None], ecols[i][None, :]] = neg_inf
            if cfg.self_identity:
                for r_, e in ((ri, i), (rj, j)):
                    idx = (slice(None), r_[:, None], ecols[e][None, :])
                    s_cur[idx] = s_cur[idx] * cfg.alpha
            ratio = 1 + (torch.exp(s_cur - lse_r[..., None]) - p0_e).sum(-1) - cut_mass
        text_delta = torch.exp(s_cur - lse_r[..., None]) - p0_e  # (H, r, n)
        ratio = 1 + text_delta.sum(-1)
        # the cut links' correction, one cross-entity rectangle at a time: the rectangles are
        # about half the size of the masked rows' square, which the cuts never leave
        for hs in ops.blocks(H, (_CUT_HEAD_BYTES + 8) * r * D):
            acc = out[hs][:, img].float() + text_delta[hs] @ v_e[hs]  # (h, r, D)
            for links in pieces:
                mass, corr = self._cut(q, k, v, lse_r, img, links, scale, hs, values=True)
                ratio[hs][:, links[0]] -= mass
                acc[:, links[0]] -= corr
            out[hs, img] = (acc / ratio[hs, :, None]).to(out.dtype)
        # Where the edits removed most of a row's mass, dividing by a small ratio would magnify
        # the fused kernel's rounding: recompute those rows exactly with the edited logits.
        weak = (ratio < _RECOMPUTE_BELOW).any(0).nonzero().squeeze(1)
        if weak.numel():
            self._recompute(out, q, k, v, img, tokens, s_cur, blocked, weak, scale)
        return out

    @staticmethod
    def _head_mean(q, k, lse_r, ratio, img, a, c, scale) -> torch.Tensor:
        """Head mean of the current probabilities of queries ``a`` on keys ``c`` (positions
        among the masked rows), the unedited ones divided by each row's ``ratio``."""
        H, D = q.shape[0], q.shape[-1]
        keys = img[c]
        avg = torch.zeros(a.numel(), c.numel(), device=q.device)
        for hs in ops.blocks(H, 4 * (a.numel() * 2 * c.numel() + c.numel() * D)):
            h = hs.stop - hs.start
            kk = k[hs][:, keys].float()
            kt = kk.transpose(-1, -2)
            for rs in ops.blocks(a.numel(), h * 4 * (2 * c.numel() + D), reserve=kk.numel() * 4):
                rows = a[rs]
                # p / ratio = exp(s - lse - log ratio): one fused multiply-add, one in-place exp
                shift = -(lse_r[hs][:, rows] + ratio[hs][:, rows].log())[..., None]
                p = torch.baddbmm(shift, q[hs][:, img[rows]].float(), kt, alpha=scale).exp_()
                avg[rs] += p.sum(0)
        return avg / H

    @staticmethod
    def _links(img, a, c, cut) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The cut links ``cut`` (``|a| x |c|``: queries ``a`` on keys ``c``, positions among
        the masked rows) narrowed to the rows and keys that have one.

        Returns:
            ``(rows, keys, weights)``: the ``m`` query rows (positions among the masked rows),
            the key positions in the joint sequence, and the ``(m, keys)`` float 0/1 matrix.
        """
        has = cut.any(1).nonzero().squeeze(1)
        cols = cut.any(0).nonzero().squeeze(1)
        return a[has], img[c[cols]], cut[has][:, cols].to(torch.float32)

    @staticmethod
    def _cut(q, k, v, lse_r, img, links, scale, hs=slice(None), *, values=False):
        """Unedited probability mass (and value sum) of the cut ``links`` (from :meth:`_links`)
        for heads ``hs``.

        Returns:
            ``(mass (h, m), value sum (h, m, D) or None)`` over the links' ``m`` rows.
        """
        qa, keys, sub = links
        H = q[hs].shape[0]
        D = q.shape[-1]
        mass = torch.zeros(H, qa.numel(), device=q.device)
        # with values, a column of ones after them makes one product give both sums
        corr = torch.zeros(H, qa.numel(), D + 1, device=q.device) if values else None
        if qa.numel():
            kk = k[hs][:, keys].float()
            vv = None
            if values:
                ones = torch.ones(H, keys.numel(), 1, device=q.device)
                vv = torch.cat([v[hs][:, keys].float(), ones], -1)
            held = 4 * sum(t.numel() for t in (kk, vv, corr) if t is not None)
            kt = kk.transpose(-1, -2)
            for rs in ops.blocks(qa.numel(), H * 4 * (2 * keys.numel() + D), reserve=held):
                shift = -lse_r[hs][:, qa[rs], None]
                p = torch.baddbmm(shift, q[hs][:, img[qa[rs]]].float(), kt, alpha=scale)
                p = p.exp_().mul_(sub[rs])
                if values:
                    corr[:, rs] = p @ vv
                else:
                    mass[:, rs] = p.sum(-1)
        if values:
            return corr[..., D], corr[..., :D]
        return mass, corr

    @staticmethod
    def _recompute(out, q, k, v, img, tokens, s_cur, blocked, weak, scale) -> None:
        """Recompute rows ``weak`` (positions among the masked rows) with explicit attention."""
        H, L, D = q.shape
        dev = q.device
        for hs in ops.blocks(H, 2 * 4 * 2 * L * D):  # keys and values: half the working set
            h = hs.stop - hs.start
            kf, vf = k[hs].float(), v[hs].float()
            held = (kf.numel() + vf.numel()) * 4
            for sel in ops.blocks(weak.numel(), h * 4 * 3 * L, reserve=held):
                w = weak[sel]
                logits = (q[hs][:, img[w]].float() @ kf.transpose(-1, -2)) * scale
                logits[:, :, tokens] = s_cur[hs][:, w]
                if blocked is not None:
                    cut = torch.zeros(w.numel(), L, dtype=torch.bool, device=dev)
                    cut[:, img] = blocked[w]
                    logits = logits.masked_fill(cut, float("-inf"))
                out[hs, img[w]] = (torch.softmax(logits, -1) @ vf).to(out.dtype)

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
            # `is not None`, not `or`: an empty prompt must reach the check that names it
            given = (kwargs.get("prompt_2"), kwargs.get("prompt"), args[0] if args else None)
            prompt = next((p for p in given if p is not None), None)
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
