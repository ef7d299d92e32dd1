"""``regional-prompting``: bind each entity to a region by masking FLUX joint attention.

A training-free layout baseline in the spirit of Regional Prompting FLUX and RAG-Diffusion's
hard binding. Each sample has a frozen layout (:mod:`slim_leakage.methods.layouts`): one box and
one sub-prompt per entity. The text sequence becomes ``[base prompt | sub-prompt 1 | ... |
sub-prompt N]`` (each encoded by T5 on its own; the pooled CLIP vector is the base prompt's),
and every attention call of the transformer gets a boolean mask:

============================  ==================================================================
query                         may attend to
============================  ==================================================================
base-prompt token             base prompt, every image token
sub-prompt *i* token          sub-prompt *i*, the image tokens of region *i*
image token in region *i*     base prompt, sub-prompt *i* (and of any other region it lies in),
                              every image token
image token in no region      base prompt, every image token
============================  ==================================================================

So an entity's region never sees another entity's sub-prompt, and a sub-prompt only writes into
its region. ``steps`` limits the binding to the first denoising steps, after which every
sub-prompt is hidden and the base prompt alone guides the rest (the step is read from the
timestep, so true CFG or extra transformer calls do not shift it); ``base_ratio`` blends in the
output of the same attention without sub-prompts, as Regional Prompting FLUX does.

The processor is our own, installed on the transformer for one generation by
:func:`regional_processors` and removed afterwards; diffusers is never patched. It runs the
stock projections, norms and rotary embedding before the attention and the output projections
after it (:mod:`slim_leakage.backbones.flux_attention`, shared with DeLeaker's FLUX processors)
and only changes the attention; without regions it matches diffusers' ``FluxAttnProcessor``
(checked in the tests).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from .._config import check_range
from ..errors import ConfigError, DatasetError, EntityNotFoundError
from ..records import Sample
from .base import Method, MethodOutput
from .layouts import Layout, read_layouts


@dataclasses.dataclass(frozen=True)
class RegionalConfig:
    """Options of ``regional-prompting``.

    Attributes:
        layouts: The frozen layout file (``slim-eval dataset layouts --out FILE``).
        steps: Bind regions during the first ``steps`` denoising steps only (0: every step);
            afterwards every sub-prompt is hidden, so later steps follow the base prompt.
        base_ratio: Weight of the unmasked attention output (without sub-prompts) blended into
            the image tokens' output, in ``[0, 1)``; 0 is pure hard binding.
        implementation: ``fast`` (fused attention, then the few blocked sub-prompt keys taken
            out of each image row in closed form) or ``reference`` (a dense ``L x L`` boolean
            mask given to ``scaled_dot_product_attention``). Both compute the same attention.
    """

    layouts: str = ""
    steps: int = 0
    base_ratio: float = 0.0
    implementation: str = "fast"

    def __post_init__(self) -> None:
        if self.implementation not in ("fast", "reference"):
            raise ConfigError(
                f"regional-prompting: implementation={self.implementation!r} is not known.",
                hint="Use implementation=fast (default) or implementation=reference.",
            )
        if not self.layouts:
            raise ConfigError(
                "method 'regional-prompting' needs layouts=FILE (a frozen layout file).",
                hint="Write one with `slim-eval dataset layouts --out layouts.jsonl`, then pass "
                "--method-arg layouts=layouts.jsonl.",
            )
        check_range("regional-prompting", "steps", self.steps, low=0)
        check_range("regional-prompting", "base_ratio", self.base_ratio, low=0, high=0.99)


def token_grid(pipe, height: int, width: int) -> tuple[int, int]:
    """Rows and columns of FLUX's packed image-token grid for an image of this size."""
    factor = int(pipe.vae_scale_factor) * 2
    return height // factor, width // factor


def region_masks(layout: Layout, rows: int, cols: int):
    """One boolean ``(rows * cols,)`` mask per entity: tokens whose centre lies in its box.

    Tokens are in FLUX's packing order (row-major). Every region gets at least the token
    nearest its box centre, so a box smaller than a token still binds somewhere.
    """
    import torch

    ys = (torch.arange(rows, dtype=torch.float64) + 0.5) / rows  # (rows,)
    xs = (torch.arange(cols, dtype=torch.float64) + 0.5) / cols  # (cols,)
    masks = []
    for x0, y0, x1, y1 in layout.boxes:
        inside_y = (ys >= y0) & (ys < y1)
        inside_x = (xs >= x0) & (xs < x1)
        mask = inside_y[:, None] & inside_x[None, :]  # (rows, cols)
        if not mask.any():
            r = min(int((y0 + y1) / 2 * rows), rows - 1)
            c = min(int((x0 + x1) / 2 * cols), cols - 1)
            mask[r, c] = True
        masks.append(mask.reshape(-1))  # (rows*cols,)
    return masks


def build_attention_mask(
    base_len: int, sub_lens: Sequence[int], regions: Sequence[Any], *, with_subprompts: bool = True
):
    """The ``(L, L)`` boolean mask (true: may attend) over ``[base | subs... | image]``.

    Args:
        base_len: Tokens of the base prompt.
        sub_lens: Tokens of each sub-prompt, in entity order.
        regions: One boolean ``(N_img,)`` mask per entity.
        with_subprompts: ``False`` gives the "base" mask of ``base_ratio`` blending: nobody
            attends to a sub-prompt (sub-prompt rows still see themselves, so no row is empty).
    """
    import torch

    n_img = int(regions[0].numel())
    text_len = base_len + sum(sub_lens)
    total = text_len + n_img
    allowed = torch.zeros(total, total, dtype=torch.bool)
    img = slice(text_len, total)
    allowed[:base_len, :base_len] = True
    allowed[:base_len, img] = True
    allowed[img, :base_len] = True
    allowed[img, img] = True
    start = base_len
    for length, region in zip(sub_lens, regions):
        sub = slice(start, start + length)
        allowed[sub, sub] = True
        if with_subprompts:
            allowed[sub, img] = region[None, :]
            rows = torch.nonzero(region).flatten() + text_len
            allowed[rows[:, None], torch.arange(start, start + length)[None, :]] = True
        else:
            allowed[sub, img] = region[None, :]
        start += length
    return allowed


@dataclasses.dataclass
class RegionalState:
    """What every installed processor reads during one generation.

    Attributes:
        mask: ``(1, 1, L, L)`` boolean mask with sub-prompts (or ``None``: plain attention).
        base_mask: The mask that hides every sub-prompt (``base_ratio`` blending, and every
            step after ``steps``).
        text_len: Text tokens at the front of the sequence.
        base_ratio: Blend weight of the base output for image tokens.
        steps: Bind during the first ``steps`` steps (0: all).
        step: The current denoising step (set from the timestep by a forward pre-hook).
        calls: Attention calls made with the mask (for tests and ``extra``).
        implementation: ``fast`` or ``reference`` (see :class:`RegionalConfig`).
        sub_tokens: ``(S,)`` positions of every sub-prompt token (fast path).
        sub_blocked: ``(N_img, S)`` true where an image token may not see a sub-prompt token.
    """

    mask: Any = None
    base_mask: Any = None
    text_len: int = 0
    base_ratio: float = 0.0
    steps: int = 0
    step: int = 0
    calls: int = 0
    implementation: str = "reference"
    sub_tokens: Any = None
    sub_blocked: Any = None

    @property
    def active(self) -> bool:
        """Whether the regional mask applies at the current step."""
        return self.mask is not None and (self.steps == 0 or self.step < self.steps)


class RegionalAttnProcessor:
    """FLUX joint attention with a per-generation boolean mask from :class:`RegionalState`.

    Works in double-stream blocks (text and image arrive separately) and single-stream blocks
    (already concatenated as ``[text | image]``).
    """

    def __init__(self, state: RegionalState) -> None:
        self.state = state

    def __call__(
        self,
        attn,
        hidden_states,
        encoder_hidden_states=None,
        attention_mask=None,
        image_rotary_emb=None,
    ):
        import torch.nn.functional as F

        from ..backbones.flux_attention import flux_finish, flux_qkv

        # the stock projections, norms, [text ; image] order and RoPE: (B, L, H, D)
        query, key, value = flux_qkv(attn, hidden_states, encoder_hidden_states, image_rotary_emb)
        # SDPA wants (B, H, L, D)
        q, k, v = (t.transpose(1, 2) for t in (query, key, value))
        state = self.state
        if state.mask is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        else:
            if state.mask.shape[-1] != q.shape[2]:
                raise ConfigError(
                    f"regional-prompting: the attention sequence has {q.shape[2]} tokens but the "
                    f"regional mask was built for {state.mask.shape[-1]}.",
                    hint="Generate through the method, with the backbone's height and width.",
                )
            binding = state.active
            state.calls += int(binding)
            if state.implementation == "fast":
                out = fast_regional_attention(q, k, v, state, binding=binding)
            else:
                out = reference_regional_attention(q, k, v, state, binding=binding)
        out = out.transpose(1, 2).flatten(2, 3).to(query.dtype)  # (B, L, H*D)
        return flux_finish(attn, out, encoder_hidden_states)


def _without_keys(out, lse, q, k, v, blocked, scale):
    """Remove blocked keys from finished softmax rows in closed form.

    With ``p_k = exp(q.k_k * scale - lse)`` the unmasked probabilities of the candidate keys,
    the attention restricted to the other keys is ``(out - sum_b p_b v_b) / (1 - sum_b p_b)``
    over the blocked keys ``b``.

    Args:
        out: ``(B, H, R, D)`` unmasked attention output of R query rows.
        lse: ``(B, H, R)`` their log-sum-exp (float32).
        q: ``(B, H, R, D)`` their queries.
        k: ``(B, H, S, D)`` candidate keys; v: their values.
        blocked: ``(R, S)`` boolean, true where the key is removed.
        scale: Logit scale.
    """
    import torch

    p = torch.exp((q.float() @ k.float().transpose(-1, -2)) * scale - lse[..., None])  # (B,H,R,S)
    p = p * blocked.to(p.dtype)
    kept = 1 - p.sum(-1, keepdim=True)  # (B, H, R, 1)
    return ((out.float() - p @ v.float()) / kept).to(out.dtype)


def reference_regional_attention(q, k, v, state: RegionalState, *, binding: bool = True):
    """Regional attention with the dense ``L x L`` masks: ``(B, H, L, D)`` in and out.

    While ``binding``, the regional mask (blended with the base mask by ``base_ratio`` for
    image rows); afterwards the base mask alone, which hides every sub-prompt.
    """
    import torch.nn.functional as F

    base_mask = state.base_mask.to(q.device)
    if not binding:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=base_mask)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=state.mask.to(q.device))
    if state.base_ratio > 0:
        base = F.scaled_dot_product_attention(q, k, v, attn_mask=base_mask)
        image = slice(state.text_len, None)
        out[:, :, image] = (1 - state.base_ratio) * out[:, :, image] + (
            state.base_ratio * base[:, :, image]
        )
    return out


def fast_regional_attention(q, k, v, state: RegionalState, *, binding: bool = True):
    """Regional attention without an ``L x L`` mask: ``(B, H, L, D)`` in and out.

    Image rows (most of the sequence) run the fused kernel over every key, then lose the few
    sub-prompt keys they may not see (:func:`_without_keys`); text rows, which may not see
    parts of the image, use the dense mask, but only their ``T x L`` slice of it. Computes
    what :func:`reference_regional_attention` computes.
    """
    import torch
    import torch.nn.functional as F

    from .deleaker import ops

    T = state.text_len
    scale = q.shape[-1] ** -0.5
    mask = (state.mask if binding else state.base_mask).to(q.device)
    text_out = F.scaled_dot_product_attention(
        q[:, :, :T], k, v, attn_mask=mask[..., :T, :]
    )  # (B, H, T, D)
    full, lse = ops.attention_with_lse(q[:, :, T:], k, v, scale)  # (B, H, N, D), (B, H, N)
    sub = state.sub_tokens.to(q.device)
    k_sub, v_sub = k[:, :, sub], v[:, :, sub]  # (B, H, S, D)
    q_img = q[:, :, T:]
    blocked = state.sub_blocked.to(q.device)
    if not binding:
        everything = blocked.new_ones(blocked.shape)
        image_out = _without_keys(full, lse, q_img, k_sub, v_sub, everything, scale)
        return torch.cat([text_out, image_out], dim=2)
    image_out = _without_keys(full, lse, q_img, k_sub, v_sub, blocked, scale)
    if state.base_ratio > 0:
        everything = blocked.new_ones(blocked.shape)
        base = _without_keys(full, lse, q_img, k_sub, v_sub, everything, scale)
        image_out = (1 - state.base_ratio) * image_out + state.base_ratio * base
    return torch.cat([text_out, image_out], dim=2)


def sub_prompt_blocking(base_len: int, sub_lens: Sequence[int], regions: Sequence[Any]):
    """Sub-prompt token positions and which image tokens may not see each of them.

    Returns:
        ``(tokens (S,), blocked (N_img, S))``: token ``s`` of entity ``i``'s sub-prompt is
        blocked for every image token outside region ``i``.
    """
    import torch

    tokens, columns = [], []
    start = base_len
    for length, region in zip(sub_lens, regions):
        tokens.extend(range(start, start + length))
        columns.extend([~region] * length)
        start += length
    return torch.tensor(tokens, dtype=torch.long), torch.stack(columns, dim=1)


@contextlib.contextmanager
def regional_processors(pipe, state: RegionalState) -> Iterator[RegionalState]:
    """Install :class:`RegionalAttnProcessor` on every attention of ``pipe.transformer``.

    The original processors and the step hook are restored on exit, also after an error.
    """
    transformer = pipe.transformer
    original = dict(transformer.attn_processors)
    processor = RegionalAttnProcessor(state)
    import torch

    from .deleaker.ops import nearest_step

    def hook(module, args, kwargs):
        timestep = kwargs.get("timestep", args[3] if len(args) > 3 else None)
        if timestep is not None and getattr(pipe.scheduler, "timesteps", None) is not None:
            # FLUX passes timestep / 1000; the scheduler keeps the undivided values.
            state.step = nearest_step(
                pipe.scheduler.timesteps,
                float(torch.as_tensor(timestep).flatten()[0]),
                scale=1000.0,
            )

    handle = transformer.register_forward_pre_hook(hook, with_kwargs=True)
    transformer.set_attn_processor(dict.fromkeys(original, processor))
    try:
        yield state
    finally:
        handle.remove()
        transformer.set_attn_processor(original)


class RegionalPrompting(Method):
    """Bind each entity to its layout region by masking FLUX joint attention.

    Needs ``entities`` and ``layout`` (a frozen layout file with one entry per sample); runs on
    FLUX-family backbones. Sources: Regional Prompting FLUX (region-masked joint attention with
    regional sub-prompts) and RAG-Diffusion (regional hard binding); written from their
    published descriptions, not their code. Samples are generated one at a time because each
    has its own text length and mask.
    """

    name = "regional-prompting"
    Config = RegionalConfig
    needs = ("entities", "layout")
    families = ("flux",)
    description = "regional attention masks from a frozen layout file (FLUX joint attention)"

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._layouts: dict[str, Layout] | None = None

    def layouts(self) -> dict[str, Layout]:
        """The layout file, read once."""
        if self._layouts is None:
            self._layouts = read_layouts(self.config.layouts)
        return self._layouts

    def layout_of(self, sample: Sample) -> Layout:
        """The layout of ``sample``, checked against its entities."""
        layout = self.layouts().get(sample.id)
        if layout is None:
            raise DatasetError(
                f"Sample {sample.id!r} has no layout in {self.config.layouts!r}.",
                hint="Regenerate the layout file for these samples (slim-eval dataset layouts).",
            )
        layout.check_sample(sample)
        return layout

    def prepare(self, backbone, samples: Sequence[Sample]) -> None:
        """Check the backbone, every sample's layout, and that the text fits the encoder."""
        super().prepare(backbone, samples)
        limit = getattr(backbone.tokenizer, "model_max_length", None) or 512
        limit = min(int(limit), 512)
        rows, cols = token_grid(backbone.pipe, backbone.settings.height, backbone.settings.width)
        if rows < 1 or cols < 1:
            raise ConfigError(
                f"regional-prompting: a {backbone.settings.width}x{backbone.settings.height} "
                "image has no image tokens.",
                hint="Generate at a larger size.",
            )
        for sample in samples:
            layout = self.layout_of(sample)
            for entity, prompt in zip(layout.entities, layout.prompts):
                n = len(backbone.tokenizer(prompt).input_ids)
                if n > limit:
                    raise EntityNotFoundError(
                        f"Sample {sample.id!r}: the sub-prompt of {entity!r} has {n} tokens, "
                        f"more than the text encoder's {limit}.",
                        hint="Shorten the sub-prompt in the layout file.",
                    )

    def _encode(self, backbone, sample: Sample, layout: Layout):
        import torch

        pipe = backbone.pipe
        device = backbone.device
        settings = backbone.settings
        with torch.no_grad():
            base, pooled, _ = pipe.encode_prompt(
                prompt=sample.prompt,
                prompt_2=None,
                device=device,
                max_sequence_length=settings.max_sequence_length,
            )
            parts, lengths = [base], []
            for sub in layout.prompts:
                n = len(backbone.tokenizer(sub).input_ids)
                embeds, _, _ = pipe.encode_prompt(
                    prompt=sub, prompt_2=None, device=device, max_sequence_length=n
                )
                parts.append(embeds)  # (1, n, D)
                lengths.append(int(embeds.shape[1]))
        return torch.cat(parts, dim=1), pooled, int(base.shape[1]), lengths

    def generate(self, backbone, samples: Sequence[Sample]) -> list[MethodOutput]:
        """Generate each sample with its layout's regions bound (one pipeline call each)."""
        settings = backbone.settings
        rows, cols = token_grid(backbone.pipe, settings.height, settings.width)
        outputs = []
        for sample in samples:
            layout = self.layout_of(sample)
            embeds, pooled, base_len, sub_lens = self._encode(backbone, sample, layout)
            regions = region_masks(layout, rows, cols)
            mask = build_attention_mask(base_len, sub_lens, regions)
            base_mask = build_attention_mask(base_len, sub_lens, regions, with_subprompts=False)
            tokens, blocked = sub_prompt_blocking(base_len, sub_lens, regions)
            device = backbone.device
            # moved once here: the processors run ~60 times per step and must not copy them
            state = RegionalState(
                mask=mask[None, None].to(device),  # (1, 1, L, L)
                base_mask=base_mask[None, None].to(device),
                text_len=base_len + sum(sub_lens),
                base_ratio=self.config.base_ratio,
                steps=self.config.steps,
                implementation=self.config.implementation,
                sub_tokens=tokens.to(device),
                sub_blocked=blocked.to(device),
            )
            kwargs = backbone.pipe_kwargs()
            kwargs.pop("max_sequence_length", None)
            with regional_processors(backbone.pipe, state):
                result = backbone.pipe(
                    prompt_embeds=embeds,
                    pooled_prompt_embeds=pooled,
                    generator=backbone.generators([sample.seed]),
                    output_type="pil",
                    **kwargs,
                )
            image = result.images[0]
            outputs.append(
                MethodOutput(
                    image=image,
                    extra={
                        "layout_planner": layout.planner,
                        "region_tokens": {
                            e: int(r.sum()) for e, r in zip(layout.entities, regions)
                        },
                        "masked_attention_calls": state.calls,
                    },
                    overlays={
                        entity: _region_overlay(region, rows, cols, image.size)
                        for entity, region in zip(layout.entities, regions)
                    },
                )
            )
        return outputs


def _region_overlay(region, rows: int, cols: int, size: tuple[int, int]):
    """A white-on-black image of one region at the image size."""
    from PIL import Image

    small = Image.new("L", (cols, rows))
    small.putdata([255 if bool(v) else 0 for v in region.tolist()])
    return small.resize(size, Image.Resampling.NEAREST)
