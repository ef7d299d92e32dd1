"""DeLeaker with explicit attention, step by step as the method specification describes it.

It materialises the logits and probabilities of every block (``batch x heads x L x L``) and keeps
the full post-softmax history, like the official code. It is slow and memory-hungry on purpose:
it is the oracle the fast processor is tested against, and the "official-style" side of
``benchmarks/deleaker_overhead.py``.
"""

from __future__ import annotations

import itertools

import torch

from . import ops
from .flux import FluxBlockProcessor


class ReferenceFluxProcessor(FluxBlockProcessor):
    """Explicit-attention DeLeaker processor for one FLUX block."""

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
                mean, count = st.history.get(b, (None, 0))
                st.history[b] = ops.running_mean_update(mean, count, ops.nan_to_mean(p_b))
            if in_edit:
                if cfg.use_history and b in st.history:
                    source = st.history[b][0]
                else:
                    source = p_b
                image_text = source[:, T:, :T]  # (H, N, T)
                masks = self.masks_from(
                    {e: ops.entity_scores(image_text, ts) for e, ts in spans.items()}
                )
                for e, m in masks.items():
                    st.record_mask(b, e, m)
                if cfg.any_edit:
                    _, p_b = pair_edits(logits[b].clone(), p_b, T, spans, masks, cfg)
            outs.append(p_b.to(value.dtype) @ value[b])
        return torch.stack(outs)


def pair_edits(s, p, T, spans, masks, cfg):
    """DeLeaker's pair loop on one item's logits, literally (spec §3.8).

    Args:
        s: ``(heads, L, L)`` pre-softmax logits, edited in place.
        p: ``(heads, L, L)`` their softmax (the block's unedited probabilities).
        T: Text length (image tokens follow the text).
        spans: ``{entity: text token positions}`` in entity order.
        masks: ``{entity: (L - T,) bool}`` image-token masks.
        cfg: The :class:`DeLeakerConfig`.

    Returns:
        ``(edited logits, edited probabilities)``.
    """
    neg_inf = float("-inf")
    rows = {e: T + masks[e].nonzero().squeeze(1) for e in spans}
    cols = {e: torch.tensor(ts, device=s.device) for e, ts in spans.items()}
    for i, j in itertools.combinations(list(spans), 2):
        ri, rj = rows[i], rows[j]
        if cfg.image_text_suppression:
            s[:, ri[:, None], cols[j][None, :]] += neg_inf
            s[:, rj[:, None], cols[i][None, :]] += neg_inf
        if cfg.self_identity:
            s[:, ri[:, None], cols[i][None, :]] *= cfg.alpha
            s[:, rj[:, None], cols[j][None, :]] *= cfg.alpha
        if cfg.text_text_suppression:
            a, c = spans[i][0], spans[j][0]
            s[:, a, c] = neg_inf
            s[:, c, a] = neg_inf
        if cfg.image_image_suppression:
            avg = p.mean(0)  # head-averaged current probabilities of this block
            for qa, kc in ((ri, rj), (rj, ri)):
                if qa.numel() and kc.numel():
                    hit = ops.abnormal_links(avg[qa][:, kc], cfg.beta2)
                    ra, cc = hit.nonzero(as_tuple=True)
                    s[:, qa[ra], kc[cc]] = neg_inf
        p = torch.softmax(s, dim=-1)
    return s, p
