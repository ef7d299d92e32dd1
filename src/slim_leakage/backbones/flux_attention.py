"""FLUX joint attention split around the softmax, for methods that replace only the attention.

diffusers' ``FluxAttnProcessor.__call__`` (``diffusers/models/transformers/transformer_flux.py``)
projects, normalises, concatenates ``[text ; image]`` and rotates the queries and keys, calls the
attention, then splits text from image and applies the output projections. A method that edits
the attention (DeLeaker, regional prompting, or a plug-in) needs the steps before and after the
attention call unchanged: :func:`flux_qkv` and :func:`flux_finish` are those two halves, written
from that processor's behaviour so that with an unedited attention the output equals the stock
processor's (the methods' tests check it). :func:`block_offsets` names each attention call's
position in one transformer forward.

It lives with the backbones, below every method, because it describes the FLUX architecture and
nothing of any one method: methods import it, it imports no method. Torch and diffusers are
imported inside the functions, so listing backbones stays light.
"""

from __future__ import annotations

import re

from ..errors import ConfigError

_DOUBLE = re.compile(r"^transformer_blocks\.(\d+)\.attn\.processor$")
_SINGLE = re.compile(r"^single_transformer_blocks\.(\d+)\.attn\.processor$")


def flux_qkv(attn, hidden_states, encoder_hidden_states, image_rotary_emb):
    """Projections, RMS norms, ``[text ; image]`` concatenation and RoPE, as the stock processor.

    Args:
        attn: The block's ``FluxAttention`` module.
        hidden_states: ``(batch, N, dim)`` image tokens (double-stream blocks) or the joint
            ``[text ; image]`` sequence (single-stream blocks).
        encoder_hidden_states: ``(batch, T, dim)`` text tokens (double-stream blocks) or ``None``.
        image_rotary_emb: The rotary embedding the transformer passes to every block.

    Returns:
        ``query, key, value`` shaped ``(batch, L, heads, head_dim)``, text first.
    """
    import torch
    from diffusers.models.embeddings import apply_rotary_emb
    from diffusers.models.transformers.transformer_flux import _get_qkv_projections

    query, key, value, e_query, e_key, e_value = _get_qkv_projections(
        attn, hidden_states, encoder_hidden_states
    )
    # (B, N, H*D) -> (B, N, H, D)
    query = attn.norm_q(query.unflatten(-1, (-1, attn.head_dim)))
    key = attn.norm_k(key.unflatten(-1, (-1, attn.head_dim)))
    value = value.unflatten(-1, (-1, attn.head_dim))
    if attn.added_kv_proj_dim is not None:
        e_query = attn.norm_added_q(e_query.unflatten(-1, (-1, attn.head_dim)))
        e_key = attn.norm_added_k(e_key.unflatten(-1, (-1, attn.head_dim)))
        e_value = e_value.unflatten(-1, (-1, attn.head_dim))
        # text first: (B, T + N, H, D)
        query = torch.cat([e_query, query], dim=1)
        key = torch.cat([e_key, key], dim=1)
        value = torch.cat([e_value, value], dim=1)
    if image_rotary_emb is not None:
        query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
        key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
    return query, key, value


def flux_finish(attn, hidden_states, encoder_hidden_states):
    """Split text/image and apply the output projections, as the stock processor.

    Args:
        attn: The block's ``FluxAttention`` module.
        hidden_states: ``(batch, L, heads * head_dim)`` attention output.
        encoder_hidden_states: The block's text input (``None`` in single-stream blocks, which
            return the joint sequence unprojected).

    Returns:
        ``(image, text)`` outputs in double-stream blocks, the joint output in single-stream ones.
    """
    if encoder_hidden_states is None:
        return hidden_states
    text_len = encoder_hidden_states.shape[1]
    encoder_out, hidden_states = hidden_states.split_with_sizes(
        [text_len, hidden_states.shape[1] - text_len], dim=1
    )
    hidden_states = attn.to_out[1](attn.to_out[0](hidden_states.contiguous()))
    encoder_out = attn.to_add_out(encoder_out.contiguous())
    return hidden_states, encoder_out


def block_offsets(transformer) -> dict[str, int]:
    """Each attention processor's position among the attention calls of one forward.

    Double-stream blocks run first, then single-stream blocks, so on FLUX.1-dev the offsets run
    from 0 (``transformer_blocks.0``) to 56 (``single_transformer_blocks.37``).

    Args:
        transformer: A ``FluxTransformer2DModel``.

    Returns:
        ``{attn_processors key: offset}`` for every processor of the transformer.

    Raises:
        ConfigError: If a processor is not one of FLUX's block attentions.
    """
    n_double = len(transformer.transformer_blocks)
    offsets = {}
    for name in transformer.attn_processors:
        if m := _DOUBLE.match(name):
            offsets[name] = int(m.group(1))
        elif m := _SINGLE.match(name):
            offsets[name] = n_double + int(m.group(1))
        else:
            raise ConfigError(
                f"Unexpected attention processor {name!r} on a FLUX transformer.",
                hint="Expected transformer_blocks.<i>.attn or single_transformer_blocks.<i>.attn.",
            )
    return offsets
